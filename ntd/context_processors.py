from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ntd.navigation import navigation_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    return {
        "deployment_name": settings.NTD_DEPLOYMENT_NAME,
        "nav_items": navigation_for(request.user),
    }
