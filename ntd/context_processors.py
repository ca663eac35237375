from typing import Any

from django.conf import settings
from django.http import HttpRequest

from ntd.navigation import navigation_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    return {
        "deployment_name": settings.NTD_DEPLOYMENT_NAME,
        # An error page drawn before the auth middleware ran (a bad Host header) has no user yet.
        "nav_items": navigation_for(getattr(request, "user", None)),
    }
