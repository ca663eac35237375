"""Secrets ntd keeps for its partners, sealed with the deployment's keys (evidence.crypto), never in clear.

- A contact's webhook signing secret (Standard Webhooks, "whsec_" + base64 of 32 random bytes): ntd signs every
  webhook request with it; the partner verifies. It is made here, shown once to the admin, and opened only to sign.
- The API key a partner's own ntd issued to us (`Partner.ntd_api_key_sealed`), to file referrals there.

Each blob is bound to its row and purpose by the associated data, so a blob copied elsewhere does not open.
"""

from __future__ import annotations

import base64
from secrets import token_bytes
from typing import Any

from django.db import transaction

from evidence.crypto import open_sealed, seal
from evidence.keys import keyring_from_settings
from ntd import audit
from takedown.models import Partner, PartnerContact

WEBHOOK_SECRET_PREFIX = "whsec_"  # noqa: S105 (the Standard Webhooks prefix, not a secret)
WEBHOOK_SECRET_BYTES = 32


def _contact_aad(contact: PartnerContact) -> bytes:
    if contact.pk is None:
        raise ValueError("save the contact before giving it a secret: the secret is bound to its id")
    return f"takedown.partnercontact:{contact.pk}:webhook-secret".encode()


def _partner_aad(partner: Partner) -> bytes:
    if partner.pk is None:
        raise ValueError("save the partner before giving it a key: the key is bound to its id")
    return f"takedown.partner:{partner.pk}:ntd-api-key".encode()


def new_webhook_secret(contact: PartnerContact, *, actor: Any = "system") -> str:
    """Make a new signing secret for the contact (replacing any), store it sealed, audit it; return it to be
    shown once. The audit event names the contact, never the secret."""
    secret = WEBHOOK_SECRET_PREFIX + base64.b64encode(token_bytes(WEBHOOK_SECRET_BYTES)).decode("ascii")
    blob = seal(secret.encode(), aad=_contact_aad(contact), keyring=keyring_from_settings())
    with transaction.atomic():
        replaced = PartnerContact.objects.filter(pk=contact.pk, webhook_secret_sealed__isnull=False).exists()
        PartnerContact.objects.filter(pk=contact.pk).update(webhook_secret_sealed=blob)
        contact.webhook_secret_sealed = blob
        audit.record(actor=actor, action=audit.Action.WEBHOOK_SECRET_CREATED, target=contact,
                     data={"partner": contact.partner_id, "replaced": replaced})
    return secret


def webhook_secret(contact: PartnerContact) -> str | None:
    """The contact's signing secret in clear, to sign a request; None when it has none."""
    if contact.webhook_secret_sealed is None:
        return None
    return open_sealed(contact.webhook_secret_sealed, aad=_contact_aad(contact), keyring=keyring_from_settings()
                       ).decode()


def seal_ntd_api_key(partner: Partner, key: str | None) -> None:
    """Set (or, with None, forget) the API key the partner's ntd issued to us. The caller saves the partner."""
    partner.ntd_api_key_sealed = (None if key is None else
                                  seal(key.encode(), aad=_partner_aad(partner), keyring=keyring_from_settings()))


def ntd_api_key(partner: Partner) -> str | None:
    """Our API key at the partner's ntd, in clear, to call it; None when none is stored."""
    if partner.ntd_api_key_sealed is None:
        return None
    return open_sealed(partner.ntd_api_key_sealed, aad=_partner_aad(partner), keyring=keyring_from_settings()
                       ).decode()
