"""The pages behind a notice's signed links (the notices issue fills these in)."""

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest, HttpResponse


@login_not_required
def notice_link(request: HttpRequest, purpose: str, token: str) -> HttpResponse:
    raise Http404
