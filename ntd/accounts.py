"""Staff sign-in: allauth with forced TOTP, axes lockout by username, and the audit of each step."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import user_logged_in, user_logged_out
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authenticator_added
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from ntd import audit

LOGIN_AT_SESSION_KEY = "ntd_login_at"
MFA_OK_SESSION_KEY = "ntd_mfa_ok"


def no_client_address(request: HttpRequest) -> None:
    """django-axes asks for the client address; ntd gives it none (lockout is keyed by username)."""
    return None


class StaffAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False  # staff accounts are created by an administrator


class StaffMFAAdapter(DefaultMFAAdapter):
    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # The TOTP factor is mandatory; an admin resets it, the user cannot switch it off.
        return authenticator.type != Authenticator.Type.TOTP


def has_totp(user: Any) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def _user_for_username(username: str | None) -> Any:
    if not username:
        return None
    return get_user_model().objects.filter(username=username).first()


@receiver(user_logged_in)
def _on_login(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    request.session[LOGIN_AT_SESSION_KEY] = timezone.now().timestamp()
    with transaction.atomic():
        audit.record(actor=user, action=audit.Action.USER_LOGIN, target=user)


@receiver(user_logged_out)
def _on_logout(sender: Any, request: HttpRequest, user: Any, **kwargs: Any) -> None:
    if user is not None:
        with transaction.atomic():
            audit.record(actor=user, action=audit.Action.USER_LOGOUT, target=user)


@receiver(user_login_failed)
def _on_login_failed(sender: Any, credentials: dict[str, Any], request: Any = None, **kwargs: Any) -> None:
    user = _user_for_username(credentials.get("username"))
    if user is not None:
        with transaction.atomic():
            audit.record(actor="system", action=audit.Action.USER_LOGIN_FAILED, target=user)


@receiver(user_locked_out)
def _on_locked_out(sender: Any, request: Any = None, username: str | None = None, **kwargs: Any) -> None:
    user = _user_for_username(username)
    if user is not None:
        with transaction.atomic():
            audit.record(actor="system", action=audit.Action.USER_LOCKED_OUT, target=user)


@receiver(authenticator_added)
def _on_authenticator_added(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
    if authenticator.type == Authenticator.Type.TOTP:
        with transaction.atomic():
            audit.record(actor=user, action=audit.Action.USER_MFA_ENROLLED, target=user, data={"type": "totp"})
