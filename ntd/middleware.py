"""Session expiry and the mandatory second factor, for every page of the staff area."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils import timezone

from ntd import audit
from ntd.accounts import LOGIN_AT_SESSION_KEY, MFA_OK_SESSION_KEY, has_totp

# What a signed-in user without a second factor may still reach: the enrolment itself (and the password
# prompt allauth puts before it once the sign-in is a few minutes old) and the way out.
ENROLMENT_OPEN_PATHS = (
    "/accounts/2fa/totp/activate/",
    "/accounts/reauthenticate/",
    "/accounts/logout/",
    "/static/",
    "/healthz",
    "/readyz",
)


class SessionExpiryMiddleware:
    """Absolute limit from sign-in (the idle limit is the session cookie age, renewed on each request)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated:
            now = timezone.now().timestamp()
            login_at = request.session.setdefault(LOGIN_AT_SESSION_KEY, now)
            if now - login_at > settings.SESSION_ABSOLUTE_SECONDS:
                user = request.user
                with transaction.atomic():
                    audit.record(actor=user, action=audit.Action.USER_SESSION_EXPIRED, target=user)
                logout(request)
                messages.info(request, "Your session has expired. Please sign in again.")
                return redirect_to_login(request.get_full_path())
        return self.get_response(request)


class RequireTwoFactorMiddleware:
    """A signed-in user with no TOTP factor is sent to enrol before anything else."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and not request.session.get(MFA_OK_SESSION_KEY):
            if has_totp(user):
                request.session[MFA_OK_SESSION_KEY] = True
            elif not request.path.startswith(ENROLMENT_OPEN_PATHS):
                if request.path.startswith("/api/"):
                    return HttpResponse("A second factor is required: enrol at /accounts/2fa/totp/activate/",
                                        status=403, content_type="text/plain")
                messages.warning(request, "Set up your authenticator app before you continue.")
                return redirect("mfa_activate_totp")
        return self.get_response(request)
