"""The staff case API: /api/v1/cases/… (reports.case_api).

The same permissions as the case pages: `reports.view_case` to read, `reports.work_case` to act, only in the
queues granted to the user (anything else is a 404, as if it did not exist). A partner's API key, a session
without the permission and an anonymous caller get DRF's 403. A person is only ever named by pseudonym.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ntd.audit import AuditEvent
from ntd.models import User
from ntd.roles import ADMIN, ANALYST, AUDITOR, SUPERVISOR, WELFARE_OFFICER
from reports.models import Assessment, Case, HostingTrace, Priority, Report, ReportURL, Verdict
from takedown.models import Partner
from tests.reports.factories import CaseFactory, QueueFactory, grant

pytestmark = pytest.mark.django_db

API = "/api/v1/cases/"
S = Case.Status
ITEM_FIELDS = {"reference", "url", "host", "registrable_domain", "status", "priority", "flags", "report_count",
               "sources", "first_reported_at", "hosting_country", "holder"}
DETAIL_FIELDS = ITEM_FIELDS | {"queue", "assessments", "reports", "hosting_trace"}
NOT_ILLEGAL = {"verdict": "not_illegal", "rationale": "Adult content, no minor."}
BASELINE = {"verdict": "illegal_baseline", "media_type": "images", "age_group": "prepubescent", "gender": "female",
            "site_type": "image_host", "commercial": False, "clause": "BL-1", "rationale": "Matches BL-1."}


@dataclass
class Signed:
    user: User
    client: Client

    def get(self, path: str, params: dict[str, Any] | None = None) -> Any:
        return self.client.get(path, params or {})

    def post(self, path: str, body: Any = None) -> Any:
        if body is None:
            return self.client.post(path)
        return self.client.post(path, body, content_type="application/json")


@pytest.fixture
def signed_in(make_staff: Any) -> Any:
    """A client signed in (both factors) as a new member of staff, with `queues` granted to them."""

    def make(role: str = ANALYST, *queues: Any, name: str | None = None, **fields: Any) -> Signed:
        user = make_staff(role, username=name, **fields).user
        for queue in queues:
            grant(user, queue)
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return Signed(user, client)

    return make


@pytest.fixture
def analyst(signed_in: Any, default_queue: Any) -> Signed:
    return signed_in(ANALYST, default_queue, name="alice.analyst", first_name="Alice", last_name="Quarrington")


def case_url(case: Case, action: str = "") -> str:
    return f"{API}{case.reference}/" + (f"{action}/" if action else "")


def report_of(case: Case, *, source_kind: str = "public", partner: Partner | None = None, **fields: Any) -> Report:
    channel = Report.Channel.API if partner else Report.Channel.WEB
    report = Report.objects.create(channel=channel, source_kind=source_kind, partner=partner, **fields)
    ReportURL.objects.create(report=report, case=case, position=0, as_reported=case.url, opened_case=True)
    return report


def state(case: Case) -> tuple[Any, ...]:
    case.refresh_from_db()
    return (case.status, case.assignee_id, case.claimed_at, Assessment.objects.count(), AuditEvent.objects.count())


def refs(response: Any) -> list[str]:
    return [item["reference"] for item in response.json()["results"]]


# --- GET cases/ ------------------------------------------------------------------------------------------------


class TestList:
    def test_lists_the_open_cases_of_granted_queues_most_urgent_first(self, analyst, default_queue, make_staff):
        # given
        now = timezone.now()
        old = CaseFactory(first_reported_at=now - timedelta(hours=2))
        urgent = CaseFactory(priority=Priority.CHILD_AT_RISK, child_at_risk=True, first_reported_at=now,
                             hosting_country="NL")
        holder = make_staff(ANALYST, username="bob.holder").user
        held = CaseFactory(first_reported_at=now - timedelta(hours=1), status=S.IN_REVIEW, assignee=holder,
                           claimed_at=now, known_url=True)
        CaseFactory(status=S.NOT_ILLEGAL, closed_at=now)  # closed: not in the default view
        CaseFactory(queue=QueueFactory())  # a queue not granted to the analyst
        report_of(urgent, source_kind="hotline")
        report_of(urgent)

        # when
        response = analyst.get(API)

        # then
        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["next"] is None
        assert [i["reference"] for i in body["results"]] == [urgent.reference, old.reference, held.reference]
        first = body["results"][0]
        assert set(first) == ITEM_FIELDS
        assert first == {
            "reference": urgent.reference, "url": urgent.url, "host": urgent.host,
            "registrable_domain": urgent.registrable_domain, "status": "received", "priority": 100,
            "flags": ["child_at_risk"], "report_count": 1, "sources": ["hotline", "public"],
            "first_reported_at": first["first_reported_at"], "hosting_country": "NL", "holder": None,
        }
        assert body["results"][2]["holder"] == holder.pseudonym
        assert body["results"][2]["flags"] == ["known_url"]
        assert "bob.holder" not in response.content.decode()

    @pytest.mark.parametrize(("params", "expected"), [
        ({"status": "in_review"}, ["held"]),
        ({"status": ["in_review", "not_illegal"]}, ["closed", "held"]),
        ({"child_at_risk": "true"}, ["urgent"]),
        ({"child_at_risk": "false"}, ["plain", "held", "other"]),
        ({"known_url": "1"}, ["held"]),
        ({"mine": "true"}, ["held"]),
        ({"source_kind": "hotline"}, ["urgent"]),
        ({"reported_country": "de"}, ["urgent"]),
        ({"hosting_country": "NL"}, ["plain"]),
        ({"hosting_asn": "64500"}, ["plain"]),
        ({"queue": "other"}, ["other"]),
        ({"queue": "default", "status": "received"}, ["urgent", "plain"]),
    ])
    def test_filters(self, analyst, default_queue, params, expected):
        # given
        now = timezone.now()
        other = QueueFactory()
        grant(analyst.user, other)
        cases = {
            "urgent": CaseFactory(priority=Priority.CHILD_AT_RISK, child_at_risk=True, first_reported_at=now),
            "plain": CaseFactory(hosting_country="NL", hosting_asn=64500, first_reported_at=now),
            "held": CaseFactory(status=S.IN_REVIEW, assignee=analyst.user, claimed_at=now, known_url=True,
                                first_reported_at=now + timedelta(seconds=1)),
            "closed": CaseFactory(status=S.NOT_ILLEGAL, closed_at=now, first_reported_at=now - timedelta(days=1)),
            "other": CaseFactory(queue=other, first_reported_at=now + timedelta(seconds=2)),
        }
        partner = Partner.objects.create(name="German hotline", kind=Partner.Kind.HOTLINE, country="DE")
        report_of(cases["urgent"], source_kind="hotline", partner=partner)
        params = {k: {"other": str(other.pk), "default": str(default_queue.pk)}.get(v, v) if k == "queue" else v
                  for k, v in params.items()}

        response = analyst.get(API, params)

        assert response.status_code == 200, response.json()
        assert refs(response) == [cases[name].reference for name in expected]

    def test_pages_by_keyset_and_next_is_a_link_to_follow(self, analyst):
        now = timezone.now()
        cases = [CaseFactory(first_reported_at=now + timedelta(minutes=i)) for i in range(5)]

        seen, url, pages = [], f"{API}?size=2&child_at_risk=false", 0
        while url:
            response = analyst.client.get(url)
            assert response.status_code == 200, response.json()
            seen += refs(response)
            url, pages = response.json()["next"], pages + 1
            if url:
                assert url.startswith("http://testserver/api/v1/cases/?") and "child_at_risk=false" in url

        assert pages == 3
        assert seen == [c.reference for c in cases]

    def test_fifty_a_page_unless_asked(self, analyst):
        CaseFactory.create_batch(52)

        first = analyst.get(API)
        larger = analyst.get(API, {"size": "200"})

        assert len(first.json()["results"]) == 50 and first.json()["next"]
        assert len(larger.json()["results"]) == 52 and larger.json()["next"] is None

    @pytest.mark.parametrize(("params", "field"), [
        ({"status": "lost"}, "status"),
        ({"status": ["received", "lost"]}, "status"),
        ({"source_kind": "journalist"}, "source_kind"),
        ({"source_kind": "public\x00"}, "source_kind"),
        ({"reported_country": "Germany"}, "reported_country"),
        ({"hosting_country": "N1"}, "hosting_country"),
        ({"hosting_asn": "AS64500"}, "hosting_asn"),
        ({"hosting_asn": "-1"}, "hosting_asn"),
        ({"hosting_asn": str(2**40)}, "hosting_asn"),
        ({"known_url": "perhaps"}, "known_url"),
        ({"child_at_risk": "2"}, "child_at_risk"),
        ({"queue": "general"}, "queue"),
        ({"queue": str(2**70)}, "queue"),
        ({"queue": ["1", "2"]}, "queue"),
        ({"queue": "ungranted"}, "queue"),  # as on the triage page: only a queue granted to you
        ({"mine": "me"}, "mine"),
        ({"size": "0"}, "size"),
        ({"size": "201"}, "size"),
        ({"cursor": "page-2"}, "cursor"),
        ({"cursor": "50~2026-01-01T00:00:00~7"}, "cursor"),  # no time zone
        ({"cursor": f"50~2026-01-01T00:00:00+00:00~{2**64}"}, "cursor"),
        ({"cursor": "99999~2026-01-01T00:00:00+00:00~7"}, "cursor"),
        ({"statuses": "received"}, "statuses"),  # a misspelt filter is not silently ignored
    ])
    def test_a_bad_parameter_is_a_400_naming_it(self, analyst, params, field):
        CaseFactory()
        if params.get("queue") == "ungranted":
            params = {"queue": str(QueueFactory().pk)}

        response = analyst.get(API, params)

        assert response.status_code == 400
        body = response.json()
        assert set(body["fields"]) == {field}
        assert field in body["detail"]

    def test_every_bad_parameter_is_named_at_once(self, analyst):
        response = analyst.get(API, {"status": ["received", "lost", "found"], "size": "500", "colour": "red"})

        assert response.status_code == 400
        assert response.json() == {
            "detail": "The request is not valid (status, size, colour).",
            "fields": {"status": ["“lost” is not a case status.", "“found” is not a case status."],
                       "size": ["Ensure this value is less than or equal to 200."],
                       "colour": ["Unknown parameter."]},
        }

    def test_the_query_count_does_not_grow_with_the_rows(self, analyst, make_staff):
        analyst.get(API)  # the session's first request marks the second factor as checked

        def queries() -> int:
            with CaptureQueriesContext(connection) as captured:
                assert analyst.get(API).status_code == 200
            return len(captured)

        CaseFactory(status=S.IN_REVIEW, assignee=analyst.user, claimed_at=timezone.now())
        few = queries()
        for i in range(20):
            case = CaseFactory(status=S.IN_REVIEW, assignee=make_staff(ANALYST).user, claimed_at=timezone.now())
            report_of(case, source_kind="public" if i % 2 else "hotline")
        many = queries()

        assert len(analyst.get(API).json()["results"]) == 21
        assert many == few


# --- GET cases/<reference>/ --------------------------------------------------------------------------------


class TestRetrieve:
    def test_the_case_with_its_assessments_reports_and_latest_trace(self, analyst, scheme, make_staff,
                                                                     default_queue):
        # given
        case = CaseFactory(status=S.AWAITING_SECOND_OPINION, hosting_country="NL")
        assessor = make_staff(ANALYST, username="carol.assessor").user
        Assessment.objects.create(case=case, assessor=assessor, kind=Assessment.Kind.FIRST,
                                  verdict=scheme.verdict("illegal_baseline"),
                                  media_type=scheme.option("media_type", "images"),
                                  age_group=scheme.option("age_group", "prepubescent"),
                                  clause=scheme.clause("INT", "BL-1"), commercial=True, rationale="BL-1 applies.")
        web = report_of(case, contact_sealed=b"sealed-contact-bytes", description="I found this.")
        HostingTrace.objects.create(case=case, host=case.host, outcome="resolved", source="old",
                                    traced_at=timezone.now() - timedelta(days=2))
        HostingTrace.objects.create(case=case, host=case.host, outcome="resolved", cname_chain=["cdn.example"],
                                    addresses=[{"ip": "192.0.2.1", "version": 4, "country": "NL", "asn": 64500,
                                                "network": "Example BV", "abuse_contact": "abuse@example.nl"}],
                                    source="test lookup", data_date="2026-11-01")

        # when
        response = analyst.get(case_url(case))

        # then
        assert response.status_code == 200, response.json()
        body = response.json()
        assert set(body) == DETAIL_FIELDS
        assert body["reference"] == case.reference and body["status"] == "awaiting_second_opinion"
        assert body["queue"] == {"id": default_queue.pk, "name": default_queue.name}
        assert body["sources"] == ["public"]
        [assessment] = body["assessments"]
        assert assessment == {
            "kind": "first",
            "verdict": {"code": "illegal_baseline", "label": "Illegal under the international baseline"},
            "media_type": "images", "age_group": "prepubescent", "gender": None, "site_type": None,
            "commercial": True, "clause": "BL-1", "rationale": "BL-1 applies.", "assessor": assessor.pseudonym,
            "created_at": assessment["created_at"],
        }
        assert body["reports"] == [{"reference": web.reference, "channel": "web", "source_kind": "public",
                                    "received_at": body["reports"][0]["received_at"]}]
        trace = body["hosting_trace"]
        assert trace["source"] == "test lookup" and trace["cname_chain"] == ["cdn.example"]
        assert trace["addresses"][0]["asn"] == 64500
        text = response.content.decode()
        assert "carol.assessor" not in text and "sealed-contact" not in text and "I found this" not in text

    def test_an_untraced_case_has_no_trace(self, analyst):
        case = CaseFactory()

        body = analyst.get(case_url(case)).json()

        assert body["hosting_trace"] is None and body["assessments"] == [] and body["holder"] is None

    def test_a_reference_as_read_aloud_finds_the_case(self, analyst):
        case = CaseFactory()

        response = analyst.get(f"{API}{case.reference.lower().replace('-', '')}/")

        assert response.status_code == 200 and response.json()["reference"] == case.reference

    @pytest.mark.parametrize("reference", ["C-0000-0000", "next-door", "%00", "x" * 300])
    def test_no_such_case_is_a_404(self, analyst, reference):
        response = analyst.client.get(f"{API}{reference}/")

        assert response.status_code == 404
        assert response.json() == {"detail": "No such case."}


# --- POST cases/next/, claim/, release/ --------------------------------------------------------------------


class TestNext:
    def test_hands_out_the_most_urgent_waiting_case_claimed(self, analyst):
        CaseFactory()
        urgent = CaseFactory(priority=Priority.PARTNER)

        response = analyst.post(f"{API}next/")

        assert response.status_code == 200, response.json()
        body = response.json()
        assert set(body) == DETAIL_FIELDS
        assert body["reference"] == urgent.reference
        assert body["status"] == "in_review" and body["holder"] == analyst.user.pseudonym
        urgent.refresh_from_db()
        assert urgent.assignee == analyst.user and urgent.status == S.IN_REVIEW

    def test_the_case_you_hold_comes_back_first(self, analyst):
        CaseFactory()
        first = analyst.post(f"{API}next/").json()
        CaseFactory(priority=Priority.CHILD_AT_RISK)

        again = analyst.post(f"{API}next/")

        assert again.json()["reference"] == first["reference"]

    def test_204_when_no_case_is_waiting(self, analyst, make_staff):
        CaseFactory(status=S.IN_REVIEW, assignee=make_staff(ANALYST).user, claimed_at=timezone.now())
        CaseFactory(queue=QueueFactory())

        response = analyst.post(f"{API}next/")

        assert response.status_code == 204 and response.content == b""


class TestClaimAndRelease:
    def test_claim_then_release(self, analyst):
        case = CaseFactory()

        claimed = analyst.post(case_url(case, "claim"))
        released = analyst.post(case_url(case, "release"))

        assert claimed.status_code == 200, claimed.json()
        assert claimed.json()["status"] == "in_review" and claimed.json()["holder"] == analyst.user.pseudonym
        assert released.status_code == 200, released.json()
        assert released.json()["status"] == "received" and released.json()["holder"] is None
        assert list(AuditEvent.objects.filter(case_id=case.pk).values_list("action", flat=True)) == [
            "case.claimed", "case.released"]

    def test_a_case_someone_else_holds_is_a_409_and_stays_theirs(self, analyst, signed_in, default_queue):
        other = signed_in(ANALYST, default_queue)
        case = CaseFactory()
        assert other.post(case_url(case, "claim")).status_code == 200
        before = state(case)

        claim = analyst.post(case_url(case, "claim"))
        release = analyst.post(case_url(case, "release"))

        assert (claim.status_code, claim.json()) == (409, {"detail": "Someone else holds this case."})
        assert release.status_code == 409
        assert release.json() == {"detail": "Only the analyst who holds the case or a supervisor can release it."}
        assert state(case) == before

    def test_a_supervisor_of_the_queue_releases_anyones_case(self, analyst, signed_in, default_queue):
        supervisor = signed_in(SUPERVISOR)
        grant(supervisor.user, default_queue, "supervise_queue")
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))

        response = supervisor.post(case_url(case, "release"))

        assert response.status_code == 200 and response.json()["holder"] is None

    def test_releasing_a_case_no_one_holds_is_a_409(self, analyst):
        case = CaseFactory()

        response = analyst.post(case_url(case, "release"))

        assert (response.status_code, response.json()) == (409, {"detail": "No one holds this case."})


# --- POST cases/<reference>/assess/ ----------------------------------------------------------------------------


class TestAssess:
    def test_a_verdict_without_four_eyes_concludes_the_review(self, analyst, scheme):
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))

        response = analyst.post(case_url(case, "assess"), NOT_ILLEGAL)

        assert response.status_code == 200, response.json()
        body = response.json()
        assert body["status"] == "not_illegal" and body["holder"] is None
        assert [a["verdict"]["code"] for a in body["assessments"]] == ["not_illegal"]
        assert body["assessments"][0]["assessor"] == analyst.user.pseudonym

    @pytest.mark.parametrize(("change", "field"), [
        ({"verdict": "probably_bad"}, "verdict"),
        ({"verdict": None}, "verdict"),
        ({"verdict": 7}, "verdict"),
        ({"media_type": "prepubescent"}, "media_type"),  # an age group is not a media type
        ({"age_group": "teen"}, "age_group"),
        ({"gender": "x"}, "gender"),
        ({"site_type": "darknet"}, "site_type"),
        ({"clause": "BL-9"}, "clause"),
        ({"commercial": "sometimes"}, "commercial"),
        ({"rationale": "x" * 1001}, "rationale"),
        ({"rationale": "nul \x00 byte"}, "rationale"),
        ({"rationale": "\ud800"}, "rationale"),
        ({"verdict_code": "illegal_baseline"}, "verdict_code"),  # an unknown field is refused, not ignored
    ])
    def test_an_unknown_code_is_a_400_naming_the_field_and_changes_nothing(self, analyst, scheme, change, field):
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))
        before = state(case)

        response = analyst.post(case_url(case, "assess"), {**BASELINE, **change})

        assert response.status_code == 400, response.json()
        assert set(response.json()["fields"]) == {field}
        assert field in response.json()["detail"]
        assert state(case) == before

    def test_a_clause_for_a_verdict_that_relies_on_none_is_a_400(self, analyst, scheme):
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))

        response = analyst.post(case_url(case, "assess"), {**NOT_ILLEGAL, "clause": "BL-1"})

        assert response.status_code == 400
        assert response.json()["fields"] == {"clause": ["The verdict “Not illegal” relies on no clause."]}

    def test_a_clause_is_looked_up_in_the_verdicts_jurisdiction(self, analyst, scheme):
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))

        response = analyst.post(case_url(case, "assess"), {**BASELINE, "verdict": "illegal_national"})

        assert response.status_code == 400
        assert response.json()["fields"] == {
            "clause": ["“BL-1” is not a clause in use for the verdict “Illegal under national law”."]}

    @pytest.mark.parametrize("body", ["{}", "[]", '"illegal_baseline"', "{not json", "[" * 100_000])
    def test_a_body_that_is_not_an_object_is_a_400(self, analyst, scheme, body):
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))
        before = state(case)

        response = analyst.client.post(case_url(case, "assess"), body, content_type="application/json")

        assert response.status_code == 400
        assert state(case) == before

    def test_assessing_a_case_you_do_not_hold_is_a_409(self, analyst, scheme):
        case = CaseFactory()
        before = state(case)

        response = analyst.post(case_url(case, "assess"), NOT_ILLEGAL)

        assert (response.status_code, response.json()) == (409, {"detail": "Claim the case before assessing it."})
        assert state(case) == before

    def test_what_policy_refuses_is_a_409_with_its_reason(self, analyst, scheme):
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))
        before = state(case)

        response = analyst.post(case_url(case, "assess"), {**BASELINE, "media_type": None})

        assert response.status_code == 409
        assert response.json() == {"detail": "An illegal verdict needs the media type and the apparent age group."}
        assert state(case) == before


class TestFourEyes:
    def test_next_assess_then_a_second_analyst_next_assess_and_the_case_is_actioned(self, analyst, signed_in,
                                                                                   scheme, default_queue):
        # given: the baseline verdict needs a second opinion
        Verdict.objects.filter(code="illegal_baseline").update(four_eyes=True)
        second = signed_in(ANALYST, default_queue, name="bruno.second", first_name="Bruno", last_name="Vellacott")
        case = CaseFactory()
        bodies = []

        # when: the first analyst takes it and assesses
        taken = analyst.post(f"{API}next/")
        first = analyst.post(case_url(case, "assess"), BASELINE)
        nothing_left = analyst.post(f"{API}next/")  # she may not give the second opinion herself
        # and a second analyst takes it and agrees
        listed = second.get(API, {"status": "awaiting_second_opinion"})
        taken_again = second.post(f"{API}next/")
        agreed = second.post(case_url(case, "assess"), {**BASELINE, "rationale": "Agree: BL-1."})
        shown = analyst.get(case_url(case))
        bodies = [taken, first, nothing_left, listed, taken_again, agreed, shown]

        # then
        assert taken.json()["reference"] == case.reference and taken.json()["status"] == "in_review"
        assert first.status_code == 200 and first.json()["status"] == "awaiting_second_opinion"
        assert first.json()["holder"] is None
        assert nothing_left.status_code == 204
        assert refs(listed) == [case.reference]
        assert taken_again.status_code == 200 and taken_again.json()["reference"] == case.reference
        assert taken_again.json()["holder"] == second.user.pseudonym
        assert agreed.status_code == 200, agreed.json()
        assert agreed.json()["status"] == "actioning" and agreed.json()["holder"] is None
        assert [(a["kind"], a["assessor"]) for a in shown.json()["assessments"]] == [
            ("first", analyst.user.pseudonym), ("second", second.user.pseudonym)]
        case.refresh_from_db()
        assert case.status == S.ACTIONING
        for response in bodies:
            text = response.content.decode()
            for name in ("alice.analyst", "Alice", "Quarrington", "bruno.second", "Bruno", "Vellacott"):
                assert name not in text, (name, text)

    def test_the_first_assessor_cannot_claim_the_second_opinion(self, analyst, scheme):
        Verdict.objects.filter(code="illegal_baseline").update(four_eyes=True)
        case = CaseFactory()
        analyst.post(case_url(case, "claim"))
        analyst.post(case_url(case, "assess"), BASELINE)

        response = analyst.post(case_url(case, "claim"))

        assert response.status_code == 409
        assert "second opinion must come from someone else" in response.json()["detail"]


# --- who may do what ---------------------------------------------------------------------------------------

ENDPOINTS = [("get", ""), ("get", "{ref}/"), ("post", "next/"), ("post", "{ref}/claim/"),
             ("post", "{ref}/release/"), ("post", "{ref}/assess/")]
REFERENCED = [e for e in ENDPOINTS if "{ref}" in e[1]]


def call(client: Client, method: str, path: str, case: Case, **extra: Any) -> Any:
    url = API + path.format(ref=case.reference)
    if method == "get":
        return client.get(url, **extra)
    return client.post(url, NOT_ILLEGAL, content_type="application/json", **extra)


class TestPermissions:
    @pytest.mark.parametrize("role", [WELFARE_OFFICER, ADMIN])
    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    def test_roles_without_the_permission_get_403_and_change_nothing(self, signed_in, default_queue, scheme, role,
                                                                     method, path):
        user = signed_in(role, default_queue)  # even with the queue granted: the role has no case permission
        case = CaseFactory()
        before = state(case)

        response = call(user.client, method, path, case)

        assert response.status_code == 403
        assert "detail" in response.json()
        assert state(case) == before

    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    def test_the_auditor_reads_every_case_and_changes_nothing(self, signed_in, default_queue, scheme, method, path):
        user = signed_in(AUDITOR, default_queue)
        case = CaseFactory(queue=QueueFactory())  # a queue no one granted the auditor
        before = state(case)

        response = call(user.client, method, path, case)

        assert response.status_code == (200 if method == "get" else 403)
        viewed = 1 if path == "{ref}/" else 0  # reading one case is itself an audit event; nothing else is
        assert AuditEvent.objects.filter(case_id=case.pk, action="case.viewed").count() == viewed
        assert state(case) == (*before[:4], before[4] + viewed)

    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    def test_a_partner_key_gets_nothing(self, partner_key, scheme, method, path):
        case = CaseFactory()
        before = state(case)

        response = call(Client(), method, path, case, headers={"X-Api-Key": partner_key[1]})

        assert response.status_code == 403
        assert state(case) == before

    @pytest.mark.parametrize(("method", "path"), ENDPOINTS)
    def test_an_anonymous_caller_gets_403(self, scheme, method, path):
        case = CaseFactory()

        response = call(Client(), method, path, case)

        assert response.status_code == 403
        assert response.json() == {"detail": "Authentication credentials were not provided."}

    @pytest.mark.parametrize(("method", "path"), REFERENCED)
    def test_a_case_in_a_queue_not_granted_is_a_404_everywhere(self, analyst, scheme, method, path):
        case = CaseFactory(queue=QueueFactory())
        before = state(case)

        response = call(analyst.client, method, path, case)

        assert (response.status_code, response.json()) == (404, {"detail": "No such case."})
        assert state(case) == before

    def test_a_case_in_a_queue_not_granted_is_neither_listed_nor_handed_out(self, analyst):
        CaseFactory(queue=QueueFactory())

        assert analyst.get(API).json() == {"results": [], "next": None}
        assert analyst.post(f"{API}next/").status_code == 204

    def test_reading_needs_view_case_and_acting_work_case(self, make_staff, default_queue):
        from django.contrib.auth.models import Permission

        user = make_staff(None).user
        user.user_permissions.add(Permission.objects.get(codename="view_case", content_type__app_label="reports"))
        grant(user, default_queue)
        client = Client()
        client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        case = CaseFactory()

        assert client.get(f"{API}{case.reference}/").status_code == 200
        assert client.post(f"{API}{case.reference}/claim/").status_code == 403
        assert client.post(f"{API}next/").json() == {"detail": "You may not work cases."}

    def test_a_post_without_the_csrf_token_is_refused(self, analyst):
        case = CaseFactory()
        client = Client(enforce_csrf_checks=True)
        client.force_login(analyst.user, backend="django.contrib.auth.backends.ModelBackend")
        before = state(case)

        refused = client.post(f"{API}next/", content_type="application/json")

        assert refused.status_code == 403
        assert refused.json()["detail"].startswith("CSRF Failed")
        assert state(case) == before
        # with the token, as a browser integration sends it, the same request goes through
        token = secrets.token_hex(16)
        client.cookies["csrftoken"] = token
        accepted = client.post(f"{API}next/", content_type="application/json", headers={"X-CSRFToken": token})
        assert accepted.status_code == 200, accepted.json()
        assert client.get(API).status_code == 200  # reads need no token
