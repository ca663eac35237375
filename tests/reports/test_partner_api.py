"""The partner API: POST /api/v1/reports/ (one URL or thousands) and GET /api/v1/reports/{reference}.

A partner authenticates with its API key in X-Api-Key and nothing else: no key, a bad key or a staff session
gets DRF's 403 (ntd authenticates API callers with the session only, which sends no WWW-Authenticate
challenge, so DRF answers 403 rather than 401).
"""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from ntd.audit import AuditEvent
from reports.models import Case, Priority, Report, ReportURL
from takedown.models import Partner, PartnerAPIKey

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/"
CASE_REFERENCE = re.compile(r"C-[0-9A-Z]{4}-[0-9A-Z]{4}")


def post(client: Client, key: str | None, body: Any) -> Any:
    headers = {"X-Api-Key": key} if key else {}
    return client.post(URL, body, content_type="application/json", headers=headers)


def get(client: Client, key: str | None, reference: str) -> Any:
    headers = {"X-Api-Key": key} if key else {}
    return client.get(f"{URL}{reference}", headers=headers)


def written() -> dict[str, int]:
    return {"reports": Report.objects.count(), "cases": Case.objects.count(), "urls": ReportURL.objects.count(),
            "audit": AuditEvent.objects.count()}


def other_partner(name: str = "Other hotline") -> tuple[Partner, str]:
    partner = Partner.objects.create(name=name, kind=Partner.Kind.TRUSTED_FLAGGER)
    _, key = PartnerAPIKey.objects.create_key(name="other", partner=partner)
    return partner, key


class TestFiling:
    def test_one_url_opens_a_case_and_answers_with_its_reference(self, client, partner_key):
        partner, key = partner_key

        response = post(client, key, {"urls": ["https://Example.com:443/a#x"], "partner_reference": "HL-1",
                                      "material_kind": "images"})

        assert response.status_code == 201, response.json()
        body = response.json()
        report = Report.objects.get()
        assert body["reference"] == report.reference and body["partner_reference"] == "HL-1"
        assert body["created"] is True
        assert body["urls"] == [{"position": 0, "url": "https://Example.com:443/a#x",
                                 "case": Case.objects.get().reference, "outcome": "new"}]
        assert report.partner == partner and report.channel == "api" and report.source_kind == "hotline"
        assert Case.objects.get().url == "https://example.com/a"
        assert AuditEvent.objects.filter(action="report.received", actor_type="partner",
                                         actor_id=str(partner.pk)).count() == 1

    def test_two_thousand_urls_in_one_request_each_get_their_own_case(self, client, partner_key):
        _, key = partner_key
        urls = [f"https://host{i % 7}.example/item/{i}" for i in range(2000)]

        response = post(client, key, {"urls": urls, "partner_reference": "batch-1"})

        assert response.status_code == 201
        outcomes = response.json()["urls"]
        assert [o["position"] for o in outcomes] == list(range(2000))
        assert [o["url"] for o in outcomes] == urls
        assert {o["outcome"] for o in outcomes} == {"new"}
        assert all(CASE_REFERENCE.fullmatch(o["case"]) for o in outcomes)
        assert len({o["case"] for o in outcomes}) == 2000
        assert written() == {"reports": 1, "cases": 2000, "urls": 2000, "audit": 2001}

    def test_a_second_batch_joins_the_open_cases_and_opens_the_rest(self, client, partner_key):
        _, key = partner_key
        first = post(client, key, {"urls": [f"https://example.com/{i}" for i in range(300)]}).json()

        # every other URL of the first batch, spelled differently, then 200 new ones
        second = post(client, key, {"urls": [f"HTTPS://EXAMPLE.com:443/{i}#x" for i in range(0, 300, 2)]
                                    + [f"https://example.net/{i}" for i in range(200)]})

        assert second.status_code == 201
        outcomes = second.json()["urls"]
        assert [o["outcome"] for o in outcomes] == ["joined"] * 150 + ["new"] * 200
        assert [o["case"] for o in outcomes[:150]] == [o["case"] for o in first["urls"][::2]]
        assert Case.objects.count() == 500
        assert Case.objects.filter(report_count=2).count() == 150


class TestRetries:
    def test_the_same_reference_and_body_again_is_a_no_op(self, client, partner_key):
        _, key = partner_key
        body = {"partner_reference": "HL-2026-0001", "urls": ["https://a.example/1", "https://b.example/2"],
                "description": "Forwarded from our hotline.", "child_at_risk": False,
                "content_hashes": [{"type": "sha256", "value": "ab" * 32}]}
        first = post(client, key, body)
        before = written()

        retry = post(client, key, body)

        assert first.status_code == 201 and retry.status_code == 200
        assert retry.json() == {**first.json(), "created": False}
        assert written() == before

    def test_a_retry_may_order_its_keys_differently(self, client, partner_key):
        _, key = partner_key
        post(client, key, {"partner_reference": "HL-2", "urls": ["https://a.example/1"], "material_kind": "videos"})
        before = written()

        retry = post(client, key, {"material_kind": "videos", "urls": ["https://a.example/1"],
                                   "partner_reference": "HL-2"})

        assert retry.status_code == 200 and retry.json()["created"] is False
        assert written() == before

    def test_the_same_reference_with_another_body_is_a_conflict(self, client, partner_key):
        _, key = partner_key
        post(client, key, {"partner_reference": "HL-3", "urls": ["https://a.example/1"]})
        before = written()

        response = post(client, key, {"partner_reference": "HL-3", "urls": ["https://a.example/2"]})

        assert response.status_code == 409
        assert "partner_reference" in response.json()["detail"]
        assert written() == before

    def test_references_are_per_partner(self, client, partner_key):
        _, key = partner_key
        _, other_key = other_partner()
        post(client, key, {"partner_reference": "shared-ref", "urls": ["https://a.example/1"]})

        response = post(client, other_key, {"partner_reference": "shared-ref", "urls": ["https://a.example/9"]})

        assert response.status_code == 201
        assert Report.objects.count() == 2

    def test_without_a_reference_every_request_is_a_new_report(self, client, partner_key):
        _, key = partner_key
        post(client, key, {"urls": ["https://a.example/1"]})

        response = post(client, key, {"urls": ["https://a.example/1"]})

        assert response.status_code == 201
        assert response.json()["urls"][0]["outcome"] == "joined"
        assert Report.objects.count() == 2

    @pytest.mark.django_db(transaction=True)
    def test_two_simultaneous_retries_file_one_report(self, partner_key):
        _, key = partner_key
        body = {"partner_reference": "HL-race", "urls": [f"https://race.example/{i}" for i in range(200)]}
        start = threading.Barrier(2)
        statuses: list[int] = []

        def send() -> None:
            try:
                start.wait()
                statuses.append(post(Client(), key, body).status_code)
            finally:
                connection.close()

        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        assert sorted(statuses) == [200, 201]
        assert Report.objects.count() == 1 and Case.objects.count() == 200


class TestValidation:
    def test_invalid_urls_are_listed_by_position_and_nothing_is_filed(self, client, partner_key):
        _, key = partner_key
        urls = ["https://ok.example/1", "javascript:alert(1)", "https://ok.example/2",
                "http://user:secret@bank.example/", "not a url", "https://ok.example/" + "a" * 2100]

        response = post(client, key, {"urls": urls, "partner_reference": "bad-batch"})

        assert response.status_code == 400
        body = response.json()
        assert body["detail"] == "4 of 6 URLs are not valid; nothing was filed."
        assert [(e["position"], e["code"]) for e in body["errors"]] == [
            (1, "scheme"), (3, "credentials"), (4, "no_scheme"), (5, "too_long")]
        assert all(e["message"] for e in body["errors"])
        assert written() == {"reports": 0, "cases": 0, "urls": 0, "audit": 0}

    def test_one_invalid_url_in_ten_thousand_stops_the_whole_batch(self, client, partner_key):
        _, key = partner_key
        urls = [f"https://example.com/{i}" for i in range(10_000)]
        urls[9_999] = "ftp://example.com/x"

        response = post(client, key, {"urls": urls})

        assert response.status_code == 400
        assert response.json()["errors"] == [
            {"position": 9_999, "code": "scheme", "message": response.json()["errors"][0]["message"]}]
        assert written() == {"reports": 0, "cases": 0, "urls": 0, "audit": 0}

    @pytest.mark.parametrize(("body", "field"), [
        ({"urls": ["https://a.example/"], "material_kind": "photos"}, "material_kind"),
        ({"urls": ["https://a.example/"], "encountered_via": "tv"}, "encountered_via"),
        ({"urls": ["https://a.example/"], "description": "x" * 2001}, "description"),
        ({"urls": [f"https://a.example/{i}" for i in range(10_001)]}, "urls"),
        ({"urls": []}, "urls"),
        ({"urls": "https://a.example/"}, "urls"),
        ({"urls": {"0": "https://a.example/"}}, "urls"),
        ({"urls": [""]}, "urls"),
        ({}, "urls"),
        (["https://a.example/"], "non_field_errors"),
        ('"https://a.example/"', "non_field_errors"),
        ({"urls": ["https://a.example/"], "content_hashes": [{"type": "crc32", "value": "1234"}]}, "content_hashes"),
        ({"urls": ["https://a.example/"], "content_hashes": [{"type": "md5"}]}, "content_hashes"),
        ({"urls": ["https://a.example/"], "content_hashes": "md5:abc"}, "content_hashes"),
        ({"urls": ["https://a.example/"], "encountered_at": "last tuesday"}, "encountered_at"),
        ({"urls": ["https://a.example/"], "child_at_risk": "perhaps"}, "child_at_risk"),
        ({"urls": ["https://a.example/"], "partner_reference": "r" * 129}, "partner_reference"),
    ], ids=["material_kind", "encountered_via", "description", "too-many-urls", "no-urls", "urls-a-string",
            "urls-an-object", "blank-url", "empty-body", "body-a-list", "body-a-string",
            "hash-type", "hash-without-value", "hashes-a-string", "encountered_at", "child_at_risk",
            "partner_reference"])
    def test_bad_fields_get_a_machine_readable_400_and_nothing_is_filed(self, client, partner_key, body, field):
        _, key = partner_key

        response = post(client, key, body)

        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        assert set(response.json()) == {"detail", "fields"}
        assert field in response.json()["fields"]
        assert written() == {"reports": 0, "cases": 0, "urls": 0, "audit": 0}

    def test_a_body_that_is_not_json_is_refused(self, client, partner_key):
        _, key = partner_key

        response = client.post(URL, "urls=https://a.example/", content_type="application/x-www-form-urlencoded",
                               headers={"X-Api-Key": key})

        assert response.status_code == 415
        assert not Report.objects.exists()


class TestPriority:
    def test_partner_reports_come_before_the_publics_and_a_child_at_risk_before_all(
            self, client, partner_key, report_form):
        _, key = partner_key
        report_form("https://public.example/1")
        post(client, key, {"urls": ["https://partner.example/1"]})
        post(client, key, {"urls": ["https://urgent.example/1"], "child_at_risk": True})

        queue = list(Case.objects.order_by("-priority", "first_reported_at").values_list("host", "priority"))

        assert queue == [("urgent.example", Priority.CHILD_AT_RISK), ("partner.example", Priority.PARTNER),
                         ("public.example", Priority.PUBLIC)]
        assert Case.objects.get(host="urgent.example").police_referral

    def test_a_partner_report_raises_an_open_public_case_and_never_lowers_one(self, client, partner_key, report_form):
        _, key = partner_key
        report_form("https://example.com/x")
        report_form("https://example.com/y", child_at_risk="on")

        post(client, key, {"urls": ["https://example.com/x", "https://example.com/y"]})

        assert dict(Case.objects.values_list("url", "priority")) == {
            "https://example.com/x": Priority.PARTNER, "https://example.com/y": Priority.CHILD_AT_RISK}


class TestReadBack:
    def test_a_partner_reads_its_own_report(self, client, partner_key):
        _, key = partner_key
        filed = post(client, key, {"urls": ["https://a.example/1", "https://b.example/2"]}).json()

        response = get(client, key, filed["reference"])

        assert response.status_code == 200
        assert response.json() == {**filed, "created": False}

    def test_a_reference_read_aloud_is_found(self, client, partner_key):
        _, key = partner_key
        reference = post(client, key, {"urls": ["https://a.example/1"]}).json()["reference"]

        response = get(client, key, reference.lower().replace("-", "").replace("0", "o").replace("1", "l"))

        assert response.status_code == 200 and response.json()["reference"] == reference

    def test_another_partners_report_is_as_missing_as_an_unknown_one(self, client, partner_key):
        _, key = partner_key
        _, other_key = other_partner()
        theirs = post(client, other_key, {"urls": ["https://a.example/1"]}).json()["reference"]

        foreign, unknown = get(client, key, theirs), get(client, key, "R-0000-0000")

        assert foreign.status_code == unknown.status_code == 404
        assert foreign.json() == unknown.json() == {"detail": "No such report."}

    def test_a_public_report_is_not_readable_through_the_api(self, client, partner_key, report_form):
        _, key = partner_key
        report_form("https://a.example/1")

        assert get(client, key, Report.objects.get().reference).status_code == 404


def _revoked(key_obj: PartnerAPIKey) -> None:
    key_obj.revoked = True
    key_obj.save()


def _expired(key_obj: PartnerAPIKey) -> None:
    key_obj.expiry_date = timezone.now() - timedelta(minutes=1)
    key_obj.save()


def _partner_deactivated(key_obj: PartnerAPIKey) -> None:
    Partner.objects.filter(pk=key_obj.partner_id).update(is_active=False)


class TestAccess:
    @pytest.mark.parametrize("spoil", [None, _revoked, _expired, _partner_deactivated],
                             ids=["valid", "revoked", "expired", "partner-inactive"])
    def test_a_key_that_is_no_longer_good_gets_403(self, client, partner_key, spoil):
        _, key = partner_key
        reference = post(client, key, {"urls": ["https://a.example/1"]}).json()["reference"]
        if spoil:
            spoil(PartnerAPIKey.objects.get_from_key(key))
        before = written()

        posted, read = post(client, key, {"urls": ["https://a.example/2"]}), get(client, key, reference)

        if spoil is None:
            assert (posted.status_code, read.status_code) == (201, 200)
        else:
            assert (posted.status_code, read.status_code) == (403, 403)
            assert posted.json() == {"detail": "Authentication credentials were not provided."}
            assert written() == before

    @pytest.mark.parametrize("key", [None, "", "not-a-key", "AbCdEfGh.0123456789abcdef0123456789abcdef"],
                             ids=["no-header", "empty", "garbage", "well-formed-unknown"])
    def test_without_a_valid_key_the_api_is_closed(self, client, partner_key, key):
        response = post(client, key, {"urls": ["https://a.example/1"]})

        assert response.status_code == 403
        assert response.json() == {"detail": "Authentication credentials were not provided."}
        assert not Report.objects.exists()

    def test_a_staff_session_cannot_use_the_partner_endpoints(self, client_for, partner_key):
        _, key = partner_key
        reference = post(Client(), key, {"urls": ["https://a.example/1"]}).json()["reference"]
        staff = client_for("admin")

        posted = staff.post(URL, {"urls": ["https://b.example/1"]}, content_type="application/json")
        read = staff.get(f"{URL}{reference}")

        assert (posted.status_code, read.status_code) == (403, 403)
        assert Report.objects.count() == 1


class TestSchemaAndDocs:
    def test_the_schema_is_for_staff_and_partners(self, client, client_for, partner_key):
        _, key = partner_key

        anonymous = client.get("/api/schema/")
        partner = client.get("/api/schema/", headers={"X-Api-Key": key})
        staff = client_for("analyst").get("/api/schema/")

        assert anonymous.status_code == 403
        assert staff.status_code == 200 and partner.status_code == 200
        assert "/api/v1/reports/" in staff.content.decode()

    def test_the_docs_are_for_staff_only_and_load_nothing_from_elsewhere(self, client, client_for):
        staff = client_for("analyst")

        anonymous = client.get("/api/docs/")
        page = staff.get("/api/docs/")

        assert anonymous.status_code == 403
        assert page.status_code == 200
        html = page.content.decode()
        assert not re.search(r"(?:https?:)?//[a-z0-9]", html, re.IGNORECASE), "the docs page names another host"
        assets = re.findall(r'(?:src|href)="([^"]+)"', html)
        assert any("swagger-ui-bundle" in asset for asset in assets)
        assert all(asset.startswith("/") for asset in assets), assets
        for asset in assets:  # each is served here (whitenoise for the sidecar files, the view for its script)
            assert staff.get(asset).status_code == 200, asset
        script = staff.get(next(a for a in assets if "script=" in a)).content.decode()
        assert not re.search(r"https?://", script)


@pytest.mark.django_db
def test_a_url_repeated_in_a_batch_is_answered_at_every_position(client, partner_key):
    _, key = partner_key
    body = {"partner_reference": "dup-1", "urls": ["https://dup.example/a", "https://dup.example/b",
                                                   "HTTPS://DUP.example/a#x"]}
    first = client.post("/api/v1/reports/", body, content_type="application/json", HTTP_X_API_KEY=key).json()
    again = client.post("/api/v1/reports/", body, content_type="application/json", HTTP_X_API_KEY=key).json()

    assert [u["outcome"] for u in first["urls"]] == ["new", "new", "duplicate"]
    assert first["urls"][2]["case"] == first["urls"][0]["case"]
    assert again["urls"] == first["urls"] and again["created"] is False


@pytest.mark.django_db
def test_a_key_with_a_nul_byte_is_refused_not_a_server_error(client, partner_key):
    _, key = partner_key
    response = client.get("/api/v1/reports/R-0000-0000", HTTP_X_API_KEY=key[:4] + "\x00" + key[4:])
    assert response.status_code == 403
