"""Staff sign-in: allauth with forced TOTP, axes lockout by username, and the audit of each step."""

from __future__ import annotations

import base64
from typing import Any

from allauth.account import app_settings as account_settings
from allauth.account.adapter import DefaultAccountAdapter
from allauth.account.signals import user_logged_in, user_logged_out
from allauth.core import context
from allauth.mfa.adapter import DefaultMFAAdapter
from allauth.mfa.models import Authenticator
from allauth.mfa.signals import authentication_failed, authenticator_added
from axes.signals import user_locked_out
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_login_failed
from django.db import transaction
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils import timezone

from evidence.crypto import open_sealed, seal
from evidence.keys import keyring_from_settings
from ntd import audit

LOGIN_AT_SESSION_KEY = "ntd_login_at"
MFA_OK_SESSION_KEY = "ntd_mfa_ok"


def no_client_address(request: HttpRequest) -> None:
    """django-axes asks for the client address; ntd gives it none (lockout is keyed by username)."""
    return None


def lockout_username(request: HttpRequest, credentials: dict[str, Any] | None) -> str | None:
    """The name axes counts failures under, the way allauth matches it: case-insensitively.

    allauth calls authenticate() with `username`; axes' own success handler passes `login`
    (AXES_USERNAME_FORM_FIELD); a bare request has the form's `login` field.
    """
    source = credentials or getattr(request, "data", request.POST)
    name = source.get("username") or source.get("login")
    return name.strip().lower() if isinstance(name, str) and name.strip() else None


class StaffAccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        return False  # staff accounts are created by an administrator

    def is_reauthentication_required(self, *, app: str, **kwargs: Any) -> bool:
        """A sign-in minutes ago counts as a reauthentication on the second factor's own pages.

        allauth asks for the password again before any of them, however fresh the sign-in. The forced first
        enrolment would ask twice in a row for the password just typed: before the QR code, and again before
        the recovery codes the enrolment produces. Past the window, allauth asks as usual.
        """
        request = context.request
        if app == "allauth.mfa" and request is not None and request.user.is_authenticated:
            signed_in_at = request.session.get(LOGIN_AT_SESSION_KEY)
            if signed_in_at is not None:
                age = timezone.now().timestamp() - signed_in_at
                if 0 <= age < account_settings.REAUTHENTICATION_TIMEOUT:
                    return False
        return super().is_reauthentication_required(app=app, **kwargs)


class StaffMFAAdapter(DefaultMFAAdapter):
    """TOTP secrets and recovery-code seeds are stored sealed with the deployment's keys (evidence/crypto)."""

    _SEALED = "sealed:v1:"
    _AAD = b"allauth.mfa.authenticator:secret"

    def encrypt(self, text: str) -> str:
        blob = seal(text.encode(), aad=self._AAD, keyring=keyring_from_settings())
        return self._SEALED + base64.urlsafe_b64encode(blob).decode("ascii")

    def decrypt(self, encrypted_text: str) -> str:
        if not encrypted_text.startswith(self._SEALED):
            return encrypted_text  # written before secrets were sealed
        blob = base64.urlsafe_b64decode(encrypted_text.removeprefix(self._SEALED))
        return open_sealed(blob, aad=self._AAD, keyring=keyring_from_settings()).decode()

    def can_delete_authenticator(self, authenticator: Authenticator) -> bool:
        # The TOTP factor is mandatory; an admin resets it, the user cannot switch it off.
        return authenticator.type != Authenticator.Type.TOTP


def has_totp(user: Any) -> bool:
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def _user_for_username(username: str | None) -> Any:
    if not username:
        return None
    # allauth matches usernames case-insensitively, so a failure for "ALICE" is a failure for alice
    return get_user_model().objects.filter(username__iexact=username).first()


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


@receiver(authentication_failed)
def _on_code_failed(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
    """A wrong second-factor code: the password was right, so this is worth an analyst's attention."""
    with transaction.atomic():
        audit.record(actor="system", action=audit.Action.USER_LOGIN_FAILED, target=user,
                     data={"factor": authenticator.type})


@receiver(user_locked_out)
def _on_locked_out(sender: Any, request: Any = None, username: str | None = None, **kwargs: Any) -> None:
    user = _user_for_username(username)
    if user is not None:
        with transaction.atomic():
            audit.record(actor="system", action=audit.Action.USER_LOCKED_OUT, target=user)


@receiver(authenticator_added)
def _on_authenticator_added(sender: Any, request: Any, user: Any, authenticator: Any, **kwargs: Any) -> None:
    # allauth sends its wrapper (TOTP, RecoveryCodes) here, not the Authenticator row; the row is `.instance`
    authenticator = getattr(authenticator, "instance", authenticator)
    if authenticator.type == Authenticator.Type.TOTP:
        with transaction.atomic():
            audit.record(actor=user, action=audit.Action.USER_MFA_ENROLLED, target=user, data={"type": "totp"})
