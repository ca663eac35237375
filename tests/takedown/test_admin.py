"""The partner admin: a partner with its contacts and senders on one page, validated and audited; API keys."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import time
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from evidence.crypto import DecryptionError
from ntd.audit import AuditEvent
from ntd.roles import ADMIN
from takedown.models import Partner, PartnerAPIKey, PartnerContact, WhitelistedSender
from takedown.secrets import new_webhook_secret, ntd_api_key, seal_ntd_api_key, webhook_secret

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


CONTACT = {"channel": "email", "email": "notices@hotline.example", "language": "NL", "around_the_clock": "on",
           "working_days": "0,1,2,3,4", "time_zone": "UTC", "is_active": "on"}


class TestPartnerAdmin:
    def test_an_admin_creates_a_partner_with_a_contact_and_a_whitelisted_domain(self, admin_client):
        response = admin_client.post("/admin/takedown/partner/add/",
                                     partner_form([CONTACT], [{"address": " @Hotline.Example "}]))

        assert response.status_code == 302, response.content.decode()[:3000]
        partner = Partner.objects.get()
        assert (partner.country, partner.languages) == ("BE", "nl,fr")
        contact = PartnerContact.objects.get()
        assert (contact.partner, contact.email, contact.language) == (partner, "notices@hotline.example", "nl")
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
        ({"contacts": [CONTACT | {"email": "notices at hotline"}]}, "Enter a valid e-mail address"),
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


WEBHOOK = CONTACT | {"channel": "webhook", "email": "", "webhook_url": "https://hotline.example/ntd-hook"}
SECRET = re.compile(r"The signing secret for the webhook (\S+) is (whsec_[A-Za-z0-9+/=]+) ")


def secrets_shown(response: Any) -> dict[str, str]:
    return dict(SECRET.findall(response.content.decode()))


def contact_row(contact: PartnerContact, **changes: str) -> dict[str, str]:
    """A saved contact as the change page posts it back."""
    row = {"id": str(contact.pk), "partner": str(contact.partner_id), "channel": contact.channel,
           "email": contact.email, "webhook_url": contact.webhook_url, "language": contact.language,
           "working_days": contact.working_days, "time_zone": contact.time_zone, "is_active": "on",
           "around_the_clock": "on"} | changes
    return {name: value for name, value in row.items() if value is not None}


class TestContacts:
    @pytest.mark.parametrize(("contact", "message"), [
        ({"email": ""}, "A contact that receives e-mail needs an e-mail address."),
        ({"webhook_url": "https://hotline.example/hook"},
         "This contact receives e-mail only: leave the webhook URL empty"),
        ({"channel": "webhook", "email": ""}, "A contact that receives webhooks needs a webhook URL."),
        ({"channel": "webhook", "webhook_url": "https://hotline.example/hook"},
         "This contact receives webhooks only: leave the e-mail address empty"),
        ({"channel": "webhook", "email": "", "webhook_url": "http://hotline.example/hook"},
         "The webhook URL must start with https://."),
        ({"channel": "webhook", "email": "", "webhook_url": "ftp://hotline.example/hook"},
         "The webhook URL must start with https://."),
        ({"channel": "both"}, "A contact that receives webhooks needs a webhook URL."),
        ({"channel": "both", "email": "", "webhook_url": "https://hotline.example/hook"},
         "A contact that receives e-mail needs an e-mail address."),
        ({"channel": "email", "new_webhook_secret": "on"}, "This contact receives no webhooks"),
        ({"around_the_clock": ""}, "Give the business hours, or tick"),
        ({"hours_start": "09:00"}, "Give both the start and the end of business hours, or neither."),
        ({"hours_end": "17:00"}, "Give both the start and the end of business hours, or neither."),
        ({"around_the_clock": "", "hours_start": "17:00", "hours_end": "09:00"},
         "Business hours must end after they start"),
        ({"around_the_clock": "", "hours_start": "09:00", "hours_end": "17:00", "working_days": ""},
         "Name at least one working day"),
        ({"working_days": "1-5"}, "Give the working days as digits from 0 (Monday) to 6 (Sunday)"),
        ({"working_days": "0,7"}, "Give the working days as digits from 0 (Monday) to 6 (Sunday)"),
        ({"time_zone": "Europe/Nowhere"}, "Unknown time zone: use an IANA name"),
        ({"time_zone": "../etc/passwd"}, "Unknown time zone: use an IANA name"),
        ({"holidays_country": "XX"}, "The public holidays of XX are not known to ntd."),
        ({"holidays_country": "G1"}, "Use the two-letter ISO 3166-1 code"),
        ({"holidays_subdivision": "ENG"}, "Choose the country of the subdivision too."),
        ({"holidays_country": "GB", "holidays_subdivision": "XYZ"}, "GB has no subdivision XYZ"),
        ({"language": "dutch"}, "at most 2 characters"),
        ({"language": "n1"}, "Use a two-letter ISO 639-1 code, e.g. en."),
    ])
    def test_invalid_contacts_are_refused_with_a_message_and_nothing_is_saved(self, admin_client, contact, message):
        response = admin_client.post("/admin/takedown/partner/add/", partner_form([CONTACT | contact]))

        assert response.status_code == 200
        assert message in response.content.decode()
        assert not Partner.objects.exists() and not PartnerContact.objects.exists()
        assert not AuditEvent.objects.exists()

    def test_business_hours_are_saved_normalised(self, admin_client):
        response = admin_client.post("/admin/takedown/partner/add/", partner_form([CONTACT | {
            "around_the_clock": "", "hours_start": "08:30", "hours_end": "17:00", "working_days": "4, 0,1,1",
            "time_zone": "Europe/Brussels", "holidays_country": "de", "holidays_subdivision": "by",
            "out_of_hours": "on"}]))

        assert response.status_code == 302, response.content.decode()[:3000]
        contact = PartnerContact.objects.get()
        assert (contact.around_the_clock, str(contact.hours_start), str(contact.hours_end)) == (
            False, "08:30:00", "17:00:00")
        assert (contact.working_days, contact.time_zone) == ("0,1,4", "Europe/Brussels")
        assert (contact.holidays_country, contact.holidays_subdivision, contact.out_of_hours) == ("DE", "BY", True)

    def test_an_http_webhook_is_accepted_where_allowed(self, admin_client, settings):
        settings.NOTICE_ALLOW_HTTP = True

        response = admin_client.post("/admin/takedown/partner/add/", partner_form(
            [WEBHOOK | {"webhook_url": "http://127.0.0.1:8999/hook"}]), follow=True)

        assert response.redirect_chain and PartnerContact.objects.get().webhook_url == "http://127.0.0.1:8999/hook"


class TestWebhookSecrets:
    def test_a_webhook_contact_gets_a_secret_shown_once_and_stored_sealed(self, admin_client):
        response = admin_client.post("/admin/takedown/partner/add/", partner_form([WEBHOOK, CONTACT]), follow=True)

        shown = secrets_shown(response)
        assert list(shown) == ["https://hotline.example/ntd-hook"]
        secret = shown["https://hotline.example/ntd-hook"]
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
        contact = PartnerContact.objects.get(channel="webhook")
        assert webhook_secret(contact) == secret
        assert PartnerContact.objects.get(channel="email").webhook_secret_sealed is None
        row = bytes(PartnerContact.objects.values_list("webhook_secret_sealed", flat=True).get(pk=contact.pk))
        assert secret.encode() not in row and base64.b64decode(secret.removeprefix("whsec_")) not in row
        # It signs what the partner verifies with the secret they were given (Standard Webhooks).
        now = int(time.time())
        signature = Webhook(webhook_secret(contact)).sign("msg_1", dt.datetime.fromtimestamp(now, dt.UTC), '{"a":1}')
        assert Webhook(secret).verify('{"a":1}', {"webhook-id": "msg_1", "webhook-signature": signature,
                                                  "webhook-timestamp": str(now)}) == {"a": 1}
        # Never again: not on the change page, not on the next save, not in the audit log.
        page = admin_client.get(f"/admin/takedown/partner/{contact.partner_id}/change/").content.decode()
        assert secret not in page and "It was shown once" in page
        again = admin_client.post(f"/admin/takedown/partner/{contact.partner_id}/change/", partner_form(
            [contact_row(contact), contact_row(PartnerContact.objects.get(channel="email"))])
            | {"contacts-INITIAL_FORMS": "2"}, follow=True)
        assert again.redirect_chain and not secrets_shown(again) and webhook_secret(contact) == secret
        event = AuditEvent.objects.get(action="webhook_secret.created")
        assert (event.target_type, event.target_id, event.actor_id) == (
            "takedown.partnercontact", str(contact.pk), str(response.wsgi_request.user.pk))
        assert event.data == {"partner": contact.partner_id, "replaced": False}
        logged = json.dumps(list(AuditEvent.objects.values()), default=str)
        assert secret not in logged and secret.removeprefix("whsec_") not in logged

    def test_a_new_secret_replaces_the_old_one_when_asked(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", country="BE", languages="nl,fr")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook",
                                                webhook_url="https://hotline.example/ntd-hook")
        old = new_webhook_secret(contact)

        response = admin_client.post(f"/admin/takedown/partner/{partner.pk}/change/", partner_form(
            [contact_row(contact, new_webhook_secret="on")]) | {"contacts-INITIAL_FORMS": "1"}, follow=True)

        new = secrets_shown(response)["https://hotline.example/ntd-hook"]
        contact.refresh_from_db()
        assert new != old and webhook_secret(contact) == new
        assert [e.data["replaced"] for e in AuditEvent.objects.filter(action="webhook_secret.created")] == [
            False, True]
        assert not AuditEvent.objects.filter(action="partner.changed").exists()  # only the secret changed

    def test_a_contact_switched_to_a_webhook_gets_its_secret_then(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", country="BE", languages="nl,fr")
        contact = PartnerContact.objects.create(partner=partner, channel="email", email="a@hotline.example")

        response = admin_client.post(f"/admin/takedown/partner/{partner.pk}/change/", partner_form(
            [contact_row(contact, channel="both", webhook_url="https://hotline.example/h")])
            | {"contacts-INITIAL_FORMS": "1"}, follow=True)

        assert list(secrets_shown(response)) == ["https://hotline.example/h"]
        event = AuditEvent.objects.get(action="partner.changed")
        assert event.data["inlines"]["contacts"]["changed"] == [[contact.pk, ["channel", "webhook_url"]]]
        assert "secret" not in json.dumps(event.data)

    def test_a_contact_without_a_saved_id_has_no_secret(self):
        with pytest.raises(ValueError, match="save the contact"):
            new_webhook_secret(PartnerContact(channel="webhook", webhook_url="https://x.example/"))


class TestTheirNtd:
    def test_their_api_key_is_write_only_and_sealed(self, admin_client):
        response = admin_client.post("/admin/takedown/partner/add/", partner_form(
            runs_ntd="on", ntd_url="https://ntd.hotline.example/", ntd_api_key="theirs.Sup3rSecret"))

        assert response.status_code == 302, response.content.decode()[:3000]
        partner = Partner.objects.get()
        assert partner.ntd_url == "https://ntd.hotline.example"
        assert ntd_api_key(partner) == "theirs.Sup3rSecret"
        assert b"Sup3rSecret" not in bytes(partner.ntd_api_key_sealed)
        page = admin_client.get(f"/admin/takedown/partner/{partner.pk}/change/").content.decode()
        assert "Sup3rSecret" not in page and "Yes (sealed, never shown)" in page
        event = AuditEvent.objects.get(action="partner.created")
        assert "ntd_api_key_sealed" in event.data["fields"] and "runs_ntd" in event.data["fields"]
        assert "Sup3rSecret" not in json.dumps(list(AuditEvent.objects.values()), default=str)

    def test_a_save_without_a_key_keeps_the_key_and_a_new_one_replaces_it(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", country="BE", languages="nl,fr",
                                         runs_ntd=True, ntd_url="https://ntd.hotline.example")
        seal_ntd_api_key(partner, "old-key")
        partner.save()
        url = f"/admin/takedown/partner/{partner.pk}/change/"
        form = partner_form(runs_ntd="on", ntd_url="https://ntd.hotline.example")

        assert admin_client.post(url, form).status_code == 302
        partner.refresh_from_db()
        assert ntd_api_key(partner) == "old-key" and not AuditEvent.objects.exists()

        assert admin_client.post(url, form | {"ntd_api_key": "new-key"}).status_code == 302
        partner.refresh_from_db()
        assert ntd_api_key(partner) == "new-key"
        assert AuditEvent.objects.get(action="partner.changed").data == {"fields": ["ntd_api_key_sealed"]}

    def test_a_partner_that_stops_running_ntd_loses_the_key(self, admin_client):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline", country="BE", languages="nl,fr",
                                         runs_ntd=True, ntd_url="https://ntd.hotline.example")
        seal_ntd_api_key(partner, "old-key")
        partner.save()

        response = admin_client.post(f"/admin/takedown/partner/{partner.pk}/change/",
                                     partner_form(ntd_url="https://ntd.hotline.example"))

        assert response.status_code == 302
        partner.refresh_from_db()
        assert partner.ntd_api_key_sealed is None and ntd_api_key(partner) is None
        assert AuditEvent.objects.get(action="partner.changed").data == {"fields": ["ntd_api_key_sealed",
                                                                                    "runs_ntd"]}

    def test_a_sealed_key_opens_for_its_own_partner_only(self):
        first = Partner.objects.create(name="One", kind="hotline")
        second = Partner.objects.create(name="Two", kind="hotline")
        seal_ntd_api_key(first, "key-of-one")
        second.ntd_api_key_sealed = first.ntd_api_key_sealed

        with pytest.raises(DecryptionError):
            ntd_api_key(second)

    @pytest.mark.parametrize(("fields", "message"), [
        ({"runs_ntd": "on", "ntd_api_key": "k"}, "A partner that runs ntd needs the address of their ntd."),
        ({"runs_ntd": "on", "ntd_url": "https://ntd.hotline.example"},
         "A partner that runs ntd needs the API key their ntd issued to us."),
        ({"runs_ntd": "on", "ntd_url": "http://ntd.hotline.example", "ntd_api_key": "k"},
         "The address of their ntd must start with https://."),
        ({"runs_ntd": "on", "ntd_url": "https://ntd.hotline.example/?x=1", "ntd_api_key": "k"},
         "without ? or #"),
        ({"ntd_url": "https://ntd.hotline.example", "ntd_api_key": "k"},
         "Only a partner that runs ntd has an API key for us"),
    ])
    def test_invalid_exchange_settings_are_refused(self, admin_client, fields, message):
        response = admin_client.post("/admin/takedown/partner/add/", partner_form(**fields))

        assert response.status_code == 200
        assert message in response.content.decode()
        assert not Partner.objects.exists() and not AuditEvent.objects.exists()

    @pytest.mark.parametrize("role", ["analyst", "supervisor", "welfare_officer", "auditor"])
    def test_only_the_admin_role_gets_the_partner_pages(self, make_staff, role):
        partner = Partner.objects.create(name="Hotline BE", kind="hotline")
        client = Client()
        client.force_login(make_staff(role).user, backend="django.contrib.auth.backends.ModelBackend")

        for path in ("", "add/", f"{partner.pk}/change/"):
            assert client.get(f"/admin/takedown/partner/{path}", follow=True).status_code == 403
        assert client.post("/admin/takedown/partner/add/", partner_form(), follow=True).status_code == 403
        assert Partner.objects.count() == 1


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
