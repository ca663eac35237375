"""The partner notice API (takedown/api.py): GET /api/v1/notices/, GET /api/v1/notices/{reference}/, and the
answers POST /api/v1/notices/{reference}/acknowledge | removed | dispute | authorise | hold.

Each test calls it with a real partner API key (X-Api-Key). A partner sees and answers only its own notices:
another partner's is a 404. Bad input is a 400 and changes nothing; an answer the state does not allow, a 409.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from ntd import audit
from ntd.models import User
from reports.models import Case
from takedown.models import Notice, NoticeKind, Partner, PartnerAPIKey, PoliceAuthorisation
from tests.reports.factories import CaseFactory
from tests.takedown.test_responses import events, make_notice, make_partner, snapshot

# The API under api/v1/ before the rest of ntd (ntd.urls includes it too, once it is wired in).
urlpatterns = [path("api/v1/", include("takedown.api_urls")), path("", include("ntd.urls"))]
pytestmark = [pytest.mark.django_db, pytest.mark.urls(__name__)]

S = Case.Status
N = Notice.State
A = audit.Action
API = "/api/v1/notices/"


def call(client: Client, key: str | None, method: str, url: str, body: Any = None) -> Any:
    headers = {"X-Api-Key": key} if key else {}
    if method == "get":
        return client.get(url, headers=headers)
    if body is None:  # no body at all, as `curl -X POST` sends
        return client.generic("POST", url, headers=headers)
    return client.post(url, body, content_type="application/json", headers=headers)


@pytest.fixture
def host(partner_key: tuple[Partner, str]) -> tuple[Partner, str]:
    return partner_key


@pytest.fixture
def other(db: Any) -> tuple[Partner, str]:
    partner = make_partner("Host B")
    _, key = PartnerAPIKey.objects.create_key(name="b", partner=partner)
    return partner, key


class TestReading:
    def test_the_list_holds_the_partners_sent_notices_newest_first(self, client, host, other):
        partner, key = host
        older = make_notice(partner, count=1, created_at=timezone.now() - timedelta(hours=2))
        newer = make_notice(partner, count=2)
        make_notice(partner, state=N.QUEUED)  # not sent yet: not theirs to see
        make_notice(other[0])  # another partner's

        response = call(client, key, "get", API)

        assert response.status_code == 200, response.json()
        body = response.json()
        assert [n["reference"] for n in body["results"]] == [newer.reference, older.reference]
        assert body["next"] is None
        first = body["results"][0]
        assert first["state"] == "sent" and first["kind"] == "takedown"
        assert sorted(i["url"] for i in first["items"]) == sorted(c.url for c in newer.cases.all())
        assert "body" not in first and "issued_by" not in first and first["authorisation"] is None

    def test_the_list_comes_a_page_at_a_time(self, client, host):
        partner, key = host
        made = [make_notice(partner, count=1, created_at=timezone.now() - timedelta(minutes=i)) for i in range(5)]

        first = call(client, key, "get", f"{API}?size=2").json()
        second = client.get(first["next"], headers={"X-Api-Key": key}).json()
        third = client.get(second["next"], headers={"X-Api-Key": key}).json()

        pages = [[n["reference"] for n in page["results"]] for page in (first, second, third)]
        assert pages == [[made[0].reference, made[1].reference], [made[2].reference, made[3].reference],
                         [made[4].reference]]
        assert third["next"] is None

    def test_the_list_filters_by_state(self, client, host):
        partner, key = host
        make_notice(partner)
        acknowledged = make_notice(partner, state=N.ACKNOWLEDGED, acknowledged_at=timezone.now())

        body = call(client, key, "get", f"{API}?state=acknowledged").json()

        assert [n["reference"] for n in body["results"]] == [acknowledged.reference]

    @pytest.mark.parametrize("query", ["state=queued", "state=nonsense", "colour=red", "size=0", "size=201",
                                       "cursor=not-a-cursor"])
    def test_a_bad_query_is_a_400(self, client, host, query):
        response = call(client, host[1], "get", f"{API}?{query}")

        assert response.status_code == 400
        assert response.json()["detail"]

    def test_one_notice_with_its_text(self, client, host):
        partner, key = host
        notice = make_notice(partner, count=2)

        response = call(client, key, "get", f"{API}{notice.reference.lower()}/")

        assert response.status_code == 200
        body = response.json()
        assert (body["reference"], body["body"]) == (notice.reference, notice.body)
        assert sorted(i["case"] for i in body["items"]) == sorted(c.reference for c in notice.cases.all())
        assert all(i["removal_reported_at"] is None for i in body["items"])

    def test_another_partners_notice_is_a_404(self, client, host, other):
        theirs = make_notice(other[0])

        response = call(client, host[1], "get", f"{API}{theirs.reference}/")

        assert response.status_code == 404
        assert response.json() == {"detail": "No such notice."}

    def test_no_key_or_a_staff_session_gets_nothing(self, client, host, client_for):
        make_notice(host[0])

        assert call(client, None, "get", API).status_code == 403
        assert call(client, "not-a-key", "get", API).status_code == 403
        assert client_for("supervisor").get(API).status_code == 403

    def test_a_notice_never_names_who_issued_it(self, client, host):
        partner, key = host
        issuer = User.objects.create_user(username="alice.analyst", first_name="Alice", password="x" * 20)
        notice = make_notice(partner, issued_by=issuer)

        text = call(client, key, "get", f"{API}{notice.reference}/").content.decode()

        assert "alice" not in text.lower()


class TestAnswering:
    def test_acknowledge(self, client, host):
        partner, key = host
        notice = make_notice(partner)

        response = call(client, key, "post", f"{API}{notice.reference}/acknowledge")

        assert response.status_code == 200, response.json()
        assert response.json()["state"] == "acknowledged" and response.json()["acknowledged_at"]
        [event] = events(A.NOTICE_ACKNOWLEDGED)
        assert (event.actor_type, event.actor_id) == ("partner", str(partner.pk))
        before = snapshot()
        again = call(client, key, "post", f"{API}{notice.reference}/acknowledge/")  # with a slash too; a repeat
        assert again.status_code == 200 and snapshot() == before

    def test_removed_for_all_or_some(self, client, host):
        partner, key = host
        notice = make_notice(partner, count=3)
        first, *rest = notice.items.select_related("case").order_by("pk")

        some = call(client, key, "post", f"{API}{notice.reference}/removed", {"cases": [first.case.reference]})

        assert some.status_code == 200, some.json()
        assert some.json()["state"] == "acknowledged"
        reported = {i["case"]: i["removal_reported_at"] for i in some.json()["items"]}
        assert reported[first.case.reference] and not any(reported[i.case.reference] for i in rest)

        everything = call(client, key, "post", f"{API}{notice.reference}/removed")

        assert everything.status_code == 200 and everything.json()["state"] == "actioned"
        assert set(Case.objects.values_list("status", flat=True)) == {S.REMOVAL_OBSERVED}

    @pytest.mark.parametrize("body", [{"cases": ["C-0000-0000"]}, {"cases": []}, {"cases": "C-1"},
                                      {"cases": [None]}, {"reason": "x"}, ["C-1"]])
    def test_removed_with_bad_cases_is_a_400_and_changes_nothing(self, client, host, body):
        partner, key = host
        notice = make_notice(partner)
        before = snapshot()

        response = call(client, key, "post", f"{API}{notice.reference}/removed", body)

        assert response.status_code == 400, response.json()
        assert response.json()["detail"]
        assert snapshot() == before

    def test_dispute(self, client, host):
        partner, key = host
        notice = make_notice(partner)

        response = call(client, key, "post", f"{API}{notice.reference}/dispute", {"reason": "Lawful news."})

        assert response.status_code == 200, response.json()
        assert (response.json()["state"], response.json()["dispute_reason"]) == ("disputed", "Lawful news.")
        assert set(Case.objects.values_list("status", flat=True)) == {S.UNDER_DISPUTE}

    @pytest.mark.parametrize("body", [{}, {"reason": ""}, {"reason": "x" * 2001}, {"reason": 5, "extra": 1}])
    def test_a_dispute_without_a_fitting_reason_is_a_400(self, client, host, body):
        notice = make_notice(host[0])
        before = snapshot()

        response = call(client, host[1], "post", f"{API}{notice.reference}/dispute", body)

        assert response.status_code == 400 and response.json()["fields"]
        assert snapshot() == before

    def test_an_answer_the_state_does_not_allow_is_a_409(self, client, host):
        partner, key = host
        notice = make_notice(partner)
        call(client, key, "post", f"{API}{notice.reference}/dispute", {"reason": "Lawful."})
        before = snapshot()

        response = call(client, key, "post", f"{API}{notice.reference}/removed")

        assert response.status_code == 409
        assert "wait for our decision" in response.json()["detail"]
        assert snapshot() == before

    @pytest.mark.parametrize("answer", ["acknowledge", "removed", "dispute", "authorise", "hold"])
    def test_another_partners_notice_cannot_be_answered(self, client, host, other, answer):
        theirs = make_notice(other[0])
        before = snapshot()

        response = call(client, host[1], "post", f"{API}{theirs.reference}/{answer}", {"reason": "x", "note": ""})

        assert response.status_code == 404
        assert snapshot() == before

    def test_a_form_body_is_refused(self, client, host):
        notice = make_notice(host[0])

        response = client.post(f"{API}{notice.reference}/removed", {"cases": "x"}, headers={"X-Api-Key": host[1]})

        assert response.status_code == 415
        assert Notice.objects.get(pk=notice.pk).state == N.SENT

    def test_a_get_on_an_answer_is_refused(self, client, host):
        notice = make_notice(host[0])

        assert call(client, host[1], "get", f"{API}{notice.reference}/acknowledge").status_code == 405
        assert call(client, None, "post", f"{API}{notice.reference}/acknowledge").status_code == 403
        assert Notice.objects.get(pk=notice.pk).state == N.SENT


class TestAuthorisation:
    @pytest.fixture
    def police(self, db: Any) -> tuple[Partner, str]:
        partner = make_partner("National police", kind=Partner.Kind.LAW_ENFORCEMENT, country="NL")
        _, key = PartnerAPIKey.objects.create_key(name="police", partner=partner)
        return partner, key

    @pytest.fixture
    def request_notice(self, police: tuple[Partner, str]) -> Notice:
        case = CaseFactory(status=S.AWAITING_AUTHORISATION)
        authorisation = PoliceAuthorisation.objects.create(case=case, police=police[0], fallback="wait", pending=[],
                                                           answer_by=timezone.now() + timedelta(hours=4))
        return make_notice(police[0], [case], kind=NoticeKind.AUTHORISATION_REQUEST, authorisation=authorisation)

    def test_the_police_see_the_request_and_authorise(self, client, police, request_notice):
        seen = call(client, police[1], "get", f"{API}{request_notice.reference}/").json()
        assert seen["authorisation"]["state"] == "pending"

        response = call(client, police[1], "post", f"{API}{request_notice.reference}/authorise", {"note": "Go."})

        assert response.status_code == 200, response.json()
        assert response.json()["authorisation"]["state"] == "authorised"
        assert PoliceAuthorisation.objects.get().state == PoliceAuthorisation.State.AUTHORISED
        assert events(A.AUTHORISATION_GRANTED)[0].actor_id == str(police[0].pk)

    def test_the_police_hold(self, client, police, request_notice):
        response = call(client, police[1], "post", f"{API}{request_notice.reference}/hold",
                        {"note": "Investigation running."})

        assert response.status_code == 200, response.json()
        authorisation = PoliceAuthorisation.objects.get()
        assert (authorisation.state, authorisation.note) == (PoliceAuthorisation.State.HELD, "Investigation running.")

    def test_holding_after_authorising_is_a_409(self, client, police, request_notice):
        call(client, police[1], "post", f"{API}{request_notice.reference}/authorise")

        response = call(client, police[1], "post", f"{API}{request_notice.reference}/hold")

        assert response.status_code == 409
        assert PoliceAuthorisation.objects.get().state == PoliceAuthorisation.State.AUTHORISED

    def test_a_takedown_notice_has_nothing_to_authorise(self, client, host):
        notice = make_notice(host[0])

        response = call(client, host[1], "post", f"{API}{notice.reference}/authorise")

        assert response.status_code == 409
        assert response.json()["detail"] == "This notice asks for no authorisation."

    def test_a_long_note_is_a_400(self, client, police, request_notice):
        response = call(client, police[1], "post", f"{API}{request_notice.reference}/hold", {"note": "x" * 2001})

        assert response.status_code == 400
        assert PoliceAuthorisation.objects.get().state == PoliceAuthorisation.State.PENDING


def test_the_schema_names_the_answers_without_a_trailing_slash(client, host):
    schema = client.get("/api/schema/?format=json", headers={"X-Api-Key": host[1]})

    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for answer in ("acknowledge", "removed", "dispute", "authorise", "hold"):
        assert "post" in paths[f"/api/v1/notices/{{reference}}/{answer}"]
    assert "get" in paths["/api/v1/notices/"] and "get" in paths["/api/v1/notices/{reference}/"]
