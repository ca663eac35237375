"""Signed, expiring, single-purpose links in notices: acknowledge, report removal, dispute (and, on a request
for police authorisation, authorise or hold). A link names its notice and its purpose; one made for one
purpose is refused for another, and it expires after NOTICE_LINK_DAYS."""

from __future__ import annotations

from django.conf import settings
from django.core import signing
from django.urls import reverse

from takedown.models import Notice

PURPOSES = ("acknowledge", "removed", "dispute", "authorise", "hold")


class BadLink(Exception):
    """A link that is forged, damaged, made for another purpose, or expired; the message says which."""


class LinkExpired(BadLink):
    """A genuine link past its time; `reference` names its notice (to record the refusal on it)."""

    def __init__(self, message: str, reference: str) -> None:
        super().__init__(message)
        self.reference = reference


def _signer(purpose: str) -> signing.TimestampSigner:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown link purpose {purpose!r}")
    return signing.TimestampSigner(salt=f"ntd.takedown.notice-link.{purpose}")


def token_for(notice: Notice, purpose: str) -> str:
    return _signer(purpose).sign(notice.reference)


def link_for(notice: Notice, purpose: str) -> str:
    """The absolute address a recipient opens (the page asks before it changes anything)."""
    path = reverse("notice_link", kwargs={"purpose": purpose, "token": token_for(notice, purpose)})
    return settings.NTD_PUBLIC_URL + path


def notice_reference_from(token: str, purpose: str) -> str:
    """The reference of the notice the token was made for, or BadLink."""
    try:
        return _signer(purpose).unsign(token, max_age=settings.NOTICE_LINK_DAYS * 86400)
    except signing.SignatureExpired:
        reference = _signer(purpose).unsign(token)  # genuine, only old
        raise LinkExpired("This link has expired. Use the API, or ask us for a new link.", reference) from None
    except signing.BadSignature:
        raise BadLink("This link is not valid: it may be incomplete or made for something else.") from None
