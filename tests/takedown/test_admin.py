"""The partner admin: a partner with its contacts and senders on one page, validated and audited; API keys."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from ntd.audit import AuditEvent
from ntd.roles import ADMIN
from takedown.models import Partner, PartnerAPIKey, PartnerContact, WhitelistedSender

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(make_staff: Any) -> Client:
    client = Client()
    client.force_login(make_staff(ADMIN).user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def inline(prefix: str, rows: list[dict[str, str]], initial: int = 0) -> dict[str, str]:
    data = {f"{prefix}-TOTAL_FORMS": str(len(rows)), f"{prefix}-INITIAL_FORMS": str(initial),
            f"{prefix}-MIN_NUM_FORMS": "0", f"{prefix}-MAX_NUM_FORMS": "1000"}
    for number, row in enumerate(rows):
        data |= {f"{prefix}-{number}-{name}": value for name, value in row.items()}
    return data


def partner_form(contacts: list[dict[str, str]] = (), senders: list[dict[str, str]] = (), **fields: str
                 ) -> dict[str, str]:
    return {"name": "Hotline BE", "kind": "hotline", "country": "be", "languages": "NL, fr", "is_active": "on",
            **fields, **inline("contacts", list(contacts)), **inline("senders", list(senders))}


CONTACT = {"channel": "email", "address": "notices@hotline.example", "language": "NL"}


class TestPartnerAdmin:
    def test_an_admin_creates_a_partner_with_a_contact_and_a_whitelisted_domain(self, admin_client):
        response = admin_client.post("/admin/takedown/partner/add/",
                                     partner_form([CONTACT], [{"address": " @Hotline.Example "}]))

        assert response.status_code == 302, response.content.decode()[:3000]
        partner = Partner.objects.get()
        assert (partner.country, partner.languages) == ("BE", "nl,fr")
        contact = PartnerContact.objects.get()
        assert (contact.partner, contact.address, contact.language) == (partner, "notices@hotline.example", "nl")
        assert list(WhitelistedSender.objects.values_list("partner", "address")) == [(partner.pk, "@hotline.example")]

        event = AuditEvent.objects.get(action="partner.created")
        assert (event.target_type, event.target_id, event.actor_type) == ("takedown.partner", str(partner.pk), "user")
        assert event.data["fields"] == ["country", "kind", "languages", "name"]  # is_active: as by default
        assert event.data["inlines"]["contacts"]["added"] == [contact.pk]
        assert "@" not in json.dumps(event.data)  # field names and ids only, never an address

    def test_a_change_is_audited_with_the_fields_that_changed(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", country="BE", languages="nl,fr")
        sender = WhitelistedSender.objects.create(partner=partner, address="@hotline.example")

        response = admin_client.post(f"/admin/takedown/partner/{partner.pk}/change/", partner_form(
            senders=[{"id": str(sender.pk), "partner": str(partner.pk), "address": "@hotline.example",
                      "DELETE": "on"}], country="NL",
        ) | {"senders-INITIAL_FORMS": "1"})

        assert response.status_code == 302, response.content.decode()[:3000]
        assert not WhitelistedSender.objects.exists()
        event = AuditEvent.objects.get(action="partner.changed")
        assert event.data == {"fields": ["country"],
                              "inlines": {"senders": {"added": [], "changed": [], "deleted": [sender.pk]}}}

    @pytest.mark.parametrize(("change", "message"), [
        ({"country": "N1"}, "Use the two-letter ISO 3166-1 code"),
        ({"country": "NLD"}, "at most 2 characters"),
        ({"languages": "dutch"}, "Use two-letter ISO 639-1 codes"),
        ({"senders": [{"address": "not an address"}]}, "Enter an e-mail address, or @domain"),
        ({"senders": [{"address": "@not a domain"}]}, "Enter a valid email address"),
        ({"senders": [{"address": "a@hotline.example"}, {"address": "A@Hotline.Example"}]}, "Please correct the"),
        ({"contacts": [CONTACT | {"address": "notices at hotline"}]}, "Enter an e-mail address."),
        ({"contacts": [{"channel": "webhook", "address": "http://hotline.example/hook"}]}, "starting with https://"),
    ])
    def test_invalid_input_is_refused_with_a_message_and_nothing_is_saved(self, admin_client, change, message):
        senders, contacts = change.pop("senders", []), change.pop("contacts", [])

        response = admin_client.post("/admin/takedown/partner/add/", partner_form(contacts, senders, **change))

        assert response.status_code == 200
        assert message in response.content.decode()
        assert not Partner.objects.exists() and not AuditEvent.objects.exists()

    def test_a_sender_already_whitelisted_for_another_partner_is_refused(self, admin_client):
        other = Partner.objects.create(name="Other", kind="hotline")
        WhitelistedSender.objects.create(partner=other, address="@hotline.example")

        response = admin_client.post("/admin/takedown/partner/add/",
                                     partner_form(senders=[{"address": "@HOTLINE.example"}]))

        assert response.status_code == 200 and "already exists" in response.content.decode()
        assert Partner.objects.count() == 1

    def test_a_save_without_changes_writes_no_event(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", country="BE", languages="nl,fr")

        response = admin_client.post(f"/admin/takedown/partner/{partner.pk}/change/", partner_form())

        assert response.status_code == 302
        assert not AuditEvent.objects.exists()

    def test_the_auditor_sees_no_admin(self, make_staff):
        client = Client()
        client.force_login(make_staff("auditor").user, backend="django.contrib.auth.backends.ModelBackend")

        assert client.get("/admin/takedown/partner/add/", follow=True).status_code == 403


def whoami(key: str) -> int:
    return Client(headers={"X-Api-Key": key}).get("/api/v1/partner/whoami/").status_code


class TestAPIKeys:
    def test_a_key_is_shown_once_on_creation_and_works(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline")

        response = admin_client.post("/admin/takedown/partnerapikey/add/", {
            "name": "production", "partner": str(partner.pk), "expiry_date_0": "", "expiry_date_1": "",
        }, follow=True)

        key = re.search(r"The API key for production is: ([\w.]+)\.", response.content.decode()).group(1)
        assert whoami(key) == 200
        assert key not in admin_client.get("/admin/takedown/partnerapikey/").content.decode()
        event = AuditEvent.objects.get(action="partner_api_key.created")
        assert event.data == {"fields": ["name", "partner"]}
        assert key.split(".")[1] not in json.dumps(list(AuditEvent.objects.values()), default=str)

    def test_revoking_a_key_through_the_admin_is_audited_and_refused_by_the_api(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline")
        api_key, key = PartnerAPIKey.objects.create_key(name="production", partner=partner)
        assert whoami(key) == 200

        response = admin_client.post(f"/admin/takedown/partnerapikey/{api_key.pk}/change/", {
            "name": "production", "partner": str(partner.pk), "expiry_date_0": "", "expiry_date_1": "",
            "revoked": "on",
        })

        assert response.status_code == 302
        assert AuditEvent.objects.get(action="partner_api_key.revoked").data == {"fields": ["revoked"]}
        assert whoami(key) == 403

    def test_an_expired_key_is_refused(self):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline")
        _, expired = PartnerAPIKey.objects.create_key(name="old", partner=partner,
                                                      expiry_date=timezone.now() - dt.timedelta(minutes=1))
        _, current = PartnerAPIKey.objects.create_key(name="new", partner=partner,
                                                      expiry_date=timezone.now() + dt.timedelta(days=30))

        assert (whoami(expired), whoami(current)) == (403, 200)

    def test_a_key_of_an_inactive_partner_is_refused(self):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", is_active=False)
        _, key = PartnerAPIKey.objects.create_key(name="k", partner=partner)

        assert whoami(key) == 403


def test_a_deletion_through_the_admin_is_audited(make_staff):
    client = Client()
    root = make_staff(None, username="root", is_superuser=True, is_staff=True).user
    client.force_login(root, backend="django.contrib.auth.backends.ModelBackend")
    partner = Partner.objects.create(name="Gone", kind="hotline")
    api_key, _ = PartnerAPIKey.objects.create_key(name="k", partner=partner)

    response = client.post(f"/admin/takedown/partner/{partner.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302 and not Partner.objects.exists() and not PartnerAPIKey.objects.exists()
    event = AuditEvent.objects.get(action="partner.deleted")
    assert (event.target_type, event.target_id, event.actor_id) == ("takedown.partner", str(partner.pk), str(root.pk))
