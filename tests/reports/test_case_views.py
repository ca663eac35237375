"""The analysts' and supervisors' pages (reports/case_views.py) through Django's test client.

The browser journey (tests/journeys/test_review.py) walks next case → assessment → second opinion; these tests
pin what it does not: the list's query count, its filters and paging, the htmx partials, every refusal, and the
actions of the case page and the team page. Cases are made with factories; reports that need an encrypted
contact go through intake.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ntd import audit, roles
from ntd.audit import AuditEvent
from ntd.models import User
from reports import intake, services
from reports.models import Assessment, Case, HostingTrace, Priority, Report, ReportURL
from reports.normalise import normalise
from reports.services import AssessmentInput
from tests.reports.factories import CaseFactory, QueueFactory, Scheme, grant

pytestmark = pytest.mark.django_db

S = Case.Status
EMAIL = "reporter@example.org"
HTMX = {"HX-Request": "true"}
ABSENT = "C-UUUU-UUUU"  # well formed, and never issued: references have no U


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_passwords(settings: Any) -> None:
    """Users sign in with force_login here: a cheap hasher keeps the many users these tests make cheap."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def analyst(member: Callable[..., User]) -> User:
    return member(username="alice")


@pytest.fixture
def other_analyst(member: Callable[..., User]) -> User:
    return member(username="bob")


@pytest.fixture
def supervisor(member: Callable[..., User]) -> User:
    return member(roles.SUPERVISOR, username="sam")


@pytest.fixture
def four_eyes(scheme: Scheme) -> None:
    verdict = scheme.verdict("illegal_baseline")
    verdict.four_eyes = True
    verdict.save(update_fields=["four_eyes"])


def signed_in(user: User, **kwargs: Any) -> Client:
    """A client past both factors (the user has TOTP, so the middleware lets a forced login through)."""
    client = Client(**kwargs)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def text(response: Any) -> str:
    """The response body with HTML entities decoded, so messages with apostrophes compare as written."""
    return html.unescape(response.content.decode())


def row_refs(response: Any) -> list[str]:
    return re.findall(r'<tr id="row-([A-Z0-9-]+)"', response.content.decode())


def fresh(case: Case) -> Case:
    return Case.objects.get(pk=case.pk)


def case_events(case: Case, action: str | None = None) -> list[AuditEvent]:
    events = AuditEvent.objects.filter(case_id=case.pk)
    return list(events.filter(action=action) if action else events.order_by("seq"))


def state(case: Case) -> tuple[Any, ...]:
    """Everything an action could change about a case: compared before and after a refused one."""
    case = fresh(case)
    return (case.status, case.assignee_id, case.claimed_at, case.claim_expires_at, case.closed_at,
            case.duplicate_of_id, Assessment.objects.filter(case=case).count(), len(case_events(case)))


def report_of(case: Case, source_kind: str = "public", position: int = 0) -> Report:
    """A report from `source_kind` naming the case (made directly: intake is not what these tests are about)."""
    channel = Report.Channel.WEB if source_kind == "public" else Report.Channel.API
    report = Report.objects.create(channel=channel, source_kind=source_kind, url_count=1)
    ReportURL.objects.create(report=report, case=case, position=position, as_reported=case.url, opened_case=True)
    return report


def held_by(user: User, **fields: Any) -> Case:
    case = CaseFactory(**fields)
    return services.claim_case(case.pk, actor=user)


def identified_report(url: str = "https://gallery.example/albums/4471?page=2") -> tuple[Case, Report]:
    """A public report whose reporter left an e-mail address (stored encrypted)."""
    filed = intake.file_public_report(urls=[intake.ReportedURL(url, normalise(url))],
                                      details=intake.ReportDetails(material_kind="images"), contact_email=EMAIL)
    return Case.objects.get(pk=filed.outcomes[0].case_id), filed.report


def illegal(scheme: Scheme) -> AssessmentInput:
    return AssessmentInput(verdict=scheme.verdict("illegal_baseline"), media_type=scheme.option("media_type", "images"),
                           age_group=scheme.option("age_group", "prepubescent"), clause=scheme.clause("INT", "BL-1"))


# --- the triage dashboard: its query count ------------------------------------------------------------------

SOURCES = ("public", "hotline", "law_enforcement", "trusted_flagger")


def populate(count: int, holders: list[User]) -> None:
    """`count` open cases, each reported by two kinds of source; every other one held, by several holders."""
    now = timezone.now()
    for i in range(count):
        holder = holders[i % len(holders)] if i % 2 else None
        case = CaseFactory(priority=(Priority.PUBLIC, Priority.PARTNER, Priority.CHILD_AT_RISK)[i % 3],
                           first_reported_at=now - timedelta(minutes=i), status=S.IN_REVIEW if holder else S.RECEIVED,
                           assignee=holder, claimed_at=now if holder else None,
                           claim_expires_at=now + timedelta(minutes=30) if holder else None)
        report_of(case, SOURCES[i % 4])
        report_of(case, SOURCES[(i + 1) % 4])


class TestTriageQueryCount:
    # Both: the session, the user, their user and group permissions, their queue grants, the cases with their
    # holders, the cases' sources, the user's roles (navigation), and the session saved again (a savepoint, the
    # UPDATE, its release). The full page adds the counts per status and the queue choices of the filter form.
    PAGE_QUERIES = 13
    PARTIAL_QUERIES = 11

    @staticmethod
    def queries(client: Client, headers: dict[str, str], rows: int) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = client.get("/cases/", headers=headers)
        assert response.status_code == 200
        assert len(row_refs(response)) == rows
        return len(captured)

    @pytest.mark.parametrize(("headers", "expected"), [({}, PAGE_QUERIES), (HTMX, PARTIAL_QUERIES)],
                             ids=["page", "htmx-partial"])
    def test_is_the_same_for_three_rows_and_for_fifty(self, analyst, member, headers, expected):
        # given: a signed-in analyst whose first request has marked the session's second factor done
        client = signed_in(analyst)
        holders = [analyst, member(), member()]
        populate(3, holders)
        client.get("/cases/")

        # when: the list with 3 rows, then with 50 (several sources each, several holders)
        few = self.queries(client, headers, rows=3)
        populate(47, holders)
        many = self.queries(client, headers, rows=50)

        # then
        assert (few, many) == (expected, expected)


# --- the triage dashboard ---------------------------------------------------------------------------------


class TestTriage:
    def test_lists_only_cases_of_the_queues_granted_to_the_user(self, analyst):
        mine = CaseFactory()
        CaseFactory(queue=QueueFactory(), priority=Priority.CHILD_AT_RISK)

        response = signed_in(analyst).get("/cases/")

        assert response.status_code == 200
        assert row_refs(response) == [mine.reference]

    def test_lists_open_cases_most_urgent_first(self, analyst):
        # given: cases created out of order
        now = timezone.now()
        old_public = CaseFactory(priority=Priority.PUBLIC, first_reported_at=now - timedelta(days=3))
        child = CaseFactory(priority=Priority.CHILD_AT_RISK, first_reported_at=now)
        newer_partner = CaseFactory(priority=Priority.PARTNER, first_reported_at=now - timedelta(hours=1))
        older_partner = CaseFactory(priority=Priority.PARTNER, first_reported_at=now - timedelta(hours=2))
        known = CaseFactory(priority=Priority.KNOWN_URL, first_reported_at=now - timedelta(days=1))
        CaseFactory(priority=Priority.CHILD_AT_RISK, status=S.NOT_ILLEGAL, closed_at=now)

        response = signed_in(analyst).get("/cases/")

        assert row_refs(response) == [c.reference for c in (child, known, older_partner, newer_partner, old_public)]

    def test_shows_the_open_cases_per_status(self, analyst, other_analyst):
        CaseFactory.create_batch(2)
        held_by(other_analyst)
        CaseFactory(status=S.AWAITING_SECOND_OPINION)
        CaseFactory(status=S.CLOSED, closed_at=timezone.now())
        CaseFactory(queue=QueueFactory())  # not the analyst's queue

        response = signed_in(analyst).get("/cases/")

        counts = re.search(r'<ul class="counts">(.*?)</ul>', response.content.decode(), re.S).group(1)
        shown = dict(re.findall(r'href="\?status=(\w+)">[^<]*<strong>([\d,]+)</strong>', counts))
        assert shown == {"received": "2", "in_review": "1", "awaiting_second_opinion": "1"}

    @pytest.fixture
    def assorted(self, other_analyst: User) -> dict[str, Case]:
        """Cases that differ in one thing each, by name."""
        cases = {
            "known": CaseFactory(known_url=True, hosting_country="NL", hosting_asn=64500),
            "child": held_by(other_analyst, child_at_risk=True, hosting_country="DE"),
            "plain": CaseFactory(),
            "closed": CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now()),
        }
        report_of(cases["known"], "hotline")
        report_of(cases["child"], "public")
        report_of(cases["plain"], "public")
        report_of(cases["plain"], "law_enforcement", position=1)
        return cases

    @pytest.mark.parametrize(("query", "expected"), [
        ("", {"known", "child", "plain"}),
        ("status=in_review", {"child"}),
        ("status=received&status=in_review", {"known", "child", "plain"}),
        ("status=not_illegal", {"closed"}),
        ("known_url=yes", {"known"}),
        ("known_url=no", {"child", "plain"}),
        ("child_at_risk=yes", {"child"}),
        ("child_at_risk=no", {"known", "plain"}),
        ("hosting_country=nl", {"known"}),
        ("hosting_asn=64500", {"known"}),
        ("source_kind=hotline", {"known"}),
        ("source_kind=law_enforcement", {"plain"}),
        ("source_kind=public&child_at_risk=no", {"plain"}),
        ("mine=on", set()),
    ])
    def test_filters_narrow_the_list(self, analyst, assorted, query, expected):
        response = signed_in(analyst).get(f"/cases/?{query}")

        assert response.status_code == 200
        assert set(row_refs(response)) == {assorted[name].reference for name in expected}

    @pytest.mark.parametrize(("query", "message"), [
        ("hosting_country=NLD", "Ensure this value has at most 2 characters"),
        ("hosting_country=N1", "Use the two-letter country code, e.g. NL."),
        ("hosting_asn=x", "Enter a whole number."),
        ("hosting_asn=-1", "Ensure this value is greater than or equal to 0."),
        ("status=bogus", "Select a valid choice."),
        ("cursor=garbage", "That page link is not valid: start again from the first page."),
        ("cursor=10~yesterday~1", "That page link is not valid"),
        ("cursor=10~2025-01-01T00:00:00~1", "That page link is not valid"),  # no time zone
        ("cursor=10~2025-01-01T00:00:00%2B00:00~x", "That page link is not valid"),
    ])
    def test_bad_filter_input_is_a_400_with_the_message(self, analyst, query, message):
        CaseFactory()

        response = signed_in(analyst).get(f"/cases/?{query}")

        assert response.status_code == 400
        assert message in text(response)
        assert "Correct the filters to see cases." in text(response)
        assert row_refs(response) == []

    def test_a_bad_filter_through_htmx_comes_back_as_the_list_partial_with_the_message(self, analyst):
        """The filter form submits itself with htmx on every change; htmx swaps only what it is given for its
        target (#case-list), and does not swap a 4xx unless configured to: a whole page, or an error it does not
        swap, leaves the analyst looking at the old list with no word about the bad filter."""
        CaseFactory()

        response = signed_in(analyst).get("/cases/?hosting_country=NLD", headers=HTMX)

        body = text(response)
        assert response.status_code == 400
        assert "<html" not in body
        assert body.lstrip().startswith('<section id="case-list"')
        assert "Ensure this value has at most 2 characters" in body

    def test_next_page_continues_where_the_first_ended(self, analyst):
        # given: 55 open cases with many ties in priority and time (the id breaks them), and one filtered out
        now = timezone.now()
        for i in range(55):
            CaseFactory(priority=(Priority.PUBLIC, Priority.PARTNER, Priority.CHILD_AT_RISK)[i % 3],
                        first_reported_at=now - timedelta(hours=i % 4))
        CaseFactory(known_url=True)
        expected = list(Case.objects.filter(known_url=False).order_by("-priority", "first_reported_at", "id")
                        .values_list("reference", flat=True))
        client = signed_in(analyst)

        # when: the first page, then the page its "Next page" link names
        first = client.get("/cases/?known_url=no")
        link = re.search(r'<a href="(\?[^"]+)"[^>]*>Next page', first.content.decode())
        assert link is not None
        second = client.get("/cases/" + html.unescape(link.group(1)))

        # then: 50 and then the other 5, in order, none twice, the filter kept, and no third page
        assert second.status_code == 200
        assert len(row_refs(first)) == 50
        assert row_refs(first) + row_refs(second) == expected
        assert "Next page" not in second.content.decode()

    def test_the_reported_url_is_text_and_never_a_link(self, analyst, other_analyst):
        url = "https://gallery.example/albums/4471?page=2&sort=new"
        CaseFactory(url=url)
        held_by(other_analyst, url="https://other.example/x")
        client = signed_in(analyst)

        for response in (client.get("/cases/"), client.get("/cases/", headers=HTMX)):
            body = response.content.decode()
            assert "<code>https://gallery.example/albums/4471?page=2&amp;sort=new</code>" in body
            linked = re.findall(r'(?:href|src|action|hx-get|hx-post)="([^"]*)"', body)
            assert linked
            assert not [target for target in linked if "gallery.example" in target or "other.example" in target]

    def test_htmx_gets_only_the_case_list(self, analyst):
        case = CaseFactory()

        response = signed_in(analyst).get("/cases/?known_url=no", headers=HTMX)

        body = response.content.decode()
        assert response.status_code == 200
        assert body.lstrip().startswith('<section id="case-list"')
        assert body.rstrip().endswith("</section>")
        assert "<html" not in body
        assert 'class="counts"' not in body
        assert row_refs(response) == [case.reference]

    def test_an_analyst_without_a_queue_is_told_so(self, member):
        CaseFactory()

        response = signed_in(member(queue=None)).get("/cases/")

        assert response.status_code == 200
        assert "You have no queue yet" in text(response)
        assert row_refs(response) == []


# --- next case and claims ---------------------------------------------------------------------------------


class TestNextCase:
    def test_claims_the_most_urgent_case_and_opens_it(self, analyst):
        CaseFactory(priority=Priority.PUBLIC)
        urgent = CaseFactory(priority=Priority.CHILD_AT_RISK)

        response = signed_in(analyst).post("/cases/next/")

        assert response.status_code == 302
        assert response["Location"] == f"/cases/{urgent.reference}/"
        assert (fresh(urgent).status, fresh(urgent).assignee_id) == (S.IN_REVIEW, analyst.pk)

    def test_with_nothing_waiting_goes_back_to_the_list_with_a_message(self, analyst, other_analyst):
        held_by(other_analyst)
        CaseFactory(queue=QueueFactory())

        response = signed_in(analyst).post("/cases/next/", follow=True)

        assert response.redirect_chain == [("/cases/", 302)]
        assert "No case is waiting in your queues." in text(response)
        assert not Case.objects.filter(assignee=analyst).exists()


class TestClaim:
    def test_through_htmx_returns_the_row_held_by_the_user(self, analyst):
        case = CaseFactory()

        response = signed_in(analyst).post(f"/cases/{case.reference}/claim/", headers=HTMX)

        body = text(response)
        assert response.status_code == 200
        assert body.lstrip().startswith(f'<tr id="row-{case.reference}">')
        assert "<html" not in body
        assert "held by you" in body
        assert ">Claim</button>" not in body
        assert (fresh(case).status, fresh(case).assignee_id) == (S.IN_REVIEW, analyst.pk)

    def test_without_htmx_opens_the_case(self, analyst):
        case = CaseFactory()

        response = signed_in(analyst).post(f"/cases/{case.reference}/claim/")

        assert response["Location"] == f"/cases/{case.reference}/"
        assert fresh(case).assignee_id == analyst.pk

    def test_a_case_someone_else_holds_is_refused_with_a_message(self, analyst, other_analyst):
        case = held_by(other_analyst)
        before = state(case)

        response = signed_in(analyst).post(f"/cases/{case.reference}/claim/", follow=True)

        assert response.redirect_chain == [(f"/cases/{case.reference}/", 302)]
        assert "Someone else holds this case." in text(response)
        assert state(case) == before

    def test_a_refused_claim_through_htmx_is_not_a_redirect_htmx_would_swap_into_the_row(self, analyst,
                                                                                         other_analyst):
        """htmx follows a 302 inside its XHR and swaps whatever comes back into the row's place: a redirect to
        the case page puts a whole page inside the table. The refusal must answer htmx with the row itself, or
        tell htmx to navigate (HX-Redirect / HX-Refresh) so the message is shown."""
        case = held_by(other_analyst)
        before = state(case)

        response = signed_in(analyst).post(f"/cases/{case.reference}/claim/", headers=HTMX)

        assert state(case) == before
        assert response.status_code == 200
        navigates = "HX-Redirect" in response.headers or "HX-Refresh" in response.headers
        if not navigates:
            assert text(response).lstrip().startswith(f'<tr id="row-{case.reference}">')
            assert "held by bob" in text(response)

    def test_release_gives_the_case_back_to_the_queue(self, analyst):
        case = held_by(analyst)

        response = signed_in(analyst).post(f"/cases/{case.reference}/release/", follow=True)

        assert response.redirect_chain == [("/cases/", 302)]
        assert "The case is back in the queue." in text(response)
        assert (fresh(case).status, fresh(case).assignee_id) == (S.RECEIVED, None)

    def test_another_analyst_may_not_release_it(self, analyst, other_analyst):
        case = held_by(other_analyst)
        before = state(case)

        response = signed_in(analyst).post(f"/cases/{case.reference}/release/", follow=True)

        assert "Only the analyst who holds the case or a supervisor can release it." in text(response)
        assert state(case) == before


# --- a case outside the user's queues does not exist for them ----------------------------------------------

ACTIONS = ["claim", "release", "assess", "decide", "reopen", "trace", "reveal", "reassign"]


class TestOutsideTheUsersQueues:
    @pytest.fixture
    def case(self, analyst: User) -> Case:
        """A case held in the default queue, with a reporter's contact: every action could do something."""
        case, _ = identified_report()
        return services.claim_case(case.pk, actor=analyst)

    def data(self, action: str, case: Case, to_user: User) -> dict[str, str]:
        report = Report.objects.get(cases=case)
        return {"assess": {"verdict": "not_illegal"}, "decide": {"decision-verdict": "not_illegal"},
                "reopen": {"reopen-reason": "Fresh review"}, "reveal": {"report": report.reference, "reason": "Why"},
                "reassign": {"to_user": to_user.username, "reason": "Cover"}}.get(action, {})

    def test_the_case_page_is_a_404_like_a_missing_case(self, member, case):
        # a supervisor, with every permission of the role, granted only another queue
        client = signed_in(member(roles.SUPERVISOR, queue=QueueFactory()))

        assert client.get(f"/cases/{case.reference}/").status_code == 404
        assert client.get(f"/cases/{ABSENT}/").status_code == 404

    @pytest.mark.parametrize("action", ACTIONS)
    def test_every_action_is_a_404_and_changes_nothing(self, scheme, member, analyst, case, action):
        outsider = member(roles.SUPERVISOR, queue=QueueFactory())
        someone = member(queue=None)
        before = state(case)
        revealed = AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED).count()

        response = signed_in(outsider).post(f"/cases/{case.reference}/{action}/",
                                            self.data(action, case, someone))

        assert response.status_code == 404
        assert EMAIL not in text(response)
        assert state(case) == before
        assert AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED).count() == revealed


# --- the case page ---------------------------------------------------------------------------------------------


class TestCasePage:
    def test_shows_the_url_reports_assessments_trace_and_history(self, scheme, analyst):
        # given: a reported case, assessed, and traced
        url = "https://gallery.example/albums/4471?page=2"
        filed = intake.file_public_report(
            urls=[intake.ReportedURL(url, normalise(url))], contact_email=None,
            details=intake.ReportDetails(material_kind="images", description="Linked from a forum thread."))
        case = Case.objects.get(pk=filed.outcomes[0].case_id)
        services.claim_case(case.pk, actor=analyst)
        services.assess_case(case.pk, actor=analyst, assessment=AssessmentInput(
            verdict=scheme.verdict("not_illegal"), rationale="Adults only, verified."))
        HostingTrace.objects.create(
            case=case, host="gallery.example", outcome="resolved", cname_chain=["cdn.gallery.example"],
            addresses=[{"ip": "192.0.2.10", "version": 4, "country": "NL", "asn": 64500, "network": "EXAMPLE-NET",
                        "abuse_contact": "abuse@hoster.example"}],
            source="test lookup", data_date="2025-06-01")

        # when
        response = signed_in(analyst).get(f"/cases/{case.reference}/")

        # then
        body = text(response)
        assert response.status_code == 200
        assert f'<code id="case-url" class="url">{url}</code>' in body
        assert filed.report.reference in body
        assert "Linked from a forum thread." in body
        assert "anonymous" in body
        assert "Not illegal" in body and "Adults only, verified." in body and analyst.username in body
        assert "192.0.2.10" in body and "AS64500 EXAMPLE-NET" in body and "abuse@hoster.example" in body
        assert "cdn.gallery.example" in body and "data of 2025-06-01" in body
        history = body.split('id="h-history"', 1)[1]
        for label in ("Case opened", "Case claimed", "Case assessed", "Case closed"):
            assert label in history
        assert "Not traced yet." not in body and "Not assessed yet." not in body

    def test_opening_it_keeps_the_holders_claim_alive(self, analyst):
        case = held_by(analyst)
        Case.objects.filter(pk=case.pk).update(claim_expires_at=timezone.now() + timedelta(minutes=1))
        before = timezone.now()

        response = signed_in(analyst).get(f"/cases/{case.reference}/")

        assert response.status_code == 200
        assert fresh(case).claim_expires_at >= before + services.claim_idle_time()

    def test_someone_else_opening_it_does_not(self, analyst, other_analyst):
        case = held_by(analyst)
        soon = timezone.now() + timedelta(minutes=1)
        Case.objects.filter(pk=case.pk).update(claim_expires_at=soon)

        response = signed_in(other_analyst).get(f"/cases/{case.reference}/")

        assert response.status_code == 200
        assert "held by alice" in text(response)
        assert fresh(case).claim_expires_at == soon

    @pytest.mark.parametrize("role", [roles.WELFARE_OFFICER, roles.ADMIN])  # the auditor reads: test_auditor.py
    def test_roles_that_do_not_review_cases_get_403(self, member, role):
        case = CaseFactory()
        client = signed_in(member(role))  # even granted the queue: the role decides

        assert client.get(f"/cases/{case.reference}/").status_code == 403
        assert client.get("/cases/").status_code == 403
        assert client.post(f"/cases/{case.reference}/claim/").status_code == 403
        assert fresh(case).assignee_id is None

    def test_trace_again_is_audited_and_runs_after_commit(self, analyst, django_capture_on_commit_callbacks):
        case = CaseFactory()

        with django_capture_on_commit_callbacks() as callbacks:
            response = signed_in(analyst).post(f"/cases/{case.reference}/trace/")

        assert response["Location"] == f"/cases/{case.reference}/"
        assert len(callbacks) == 1
        assert len(case_events(case, audit.Action.CASE_TRACE_REQUESTED)) == 1


class TestAssess:
    @pytest.mark.parametrize(("data", "message"), [
        ({}, "Choose a verdict."),
        ({"verdict": "illegal_baseline", "media_type": "images", "age_group": "prepubescent"},
         "Choose the clause of illegal under the international baseline that the verdict relies on."),
        ({"verdict": "illegal_baseline"}, "An illegal verdict needs the media type and the apparent age group."),
        ({"verdict": "no-such-verdict"}, "Select a valid choice."),
    ])
    def test_an_invalid_assessment_is_a_400_with_the_reason_and_changes_nothing(self, scheme, analyst, data,
                                                                                message):
        case = held_by(analyst)
        before = state(case)

        response = signed_in(analyst).post(f"/cases/{case.reference}/assess/", data)

        assert response.status_code == 400
        assert message in text(response)
        assert 'class="assessment-form"' in text(response)
        assert state(case) == before

    def test_assessing_a_case_the_user_does_not_hold_is_refused(self, scheme, analyst, other_analyst):
        case = held_by(other_analyst)
        before = state(case)

        response = signed_in(analyst).post(f"/cases/{case.reference}/assess/", {"verdict": "not_illegal"})

        assert response.status_code == 400
        assert "Claim the case before assessing it." in text(response)
        assert state(case) == before

    @pytest.mark.parametrize(("data", "status", "said"), [
        ({"verdict": "not_illegal", "rationale": "Adults only."}, S.NOT_ILLEGAL, "closed: not illegal"),
        ({"verdict": "illegal_baseline", "clause": "BL-1", "media_type": "images", "age_group": "prepubescent"},
         S.ACTIONING, "actioning"),
    ])
    def test_a_valid_assessment_moves_the_case_on(self, scheme, analyst, data, status, said):
        case = held_by(analyst)
        if "clause" in data:
            data = {**data, "clause": scheme.clause("INT", data["clause"]).pk}

        response = signed_in(analyst).post(f"/cases/{case.reference}/assess/", data, follow=True)

        assert response.redirect_chain == [(f"/cases/{case.reference}/", 302)]
        assert f"Assessment recorded: the case is now {said}." in text(response)
        assert fresh(case).status == status
        assert Assessment.objects.get(case=case).assessor_id == analyst.pk

    def test_a_supervisor_decides_between_assessments_that_disagree(self, scheme, four_eyes, analyst,
                                                                    other_analyst, supervisor):
        # given: the first analyst finds it illegal, the second does not
        case = held_by(analyst)
        services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))
        services.claim_case(case.pk, actor=other_analyst)
        services.assess_case(case.pk, actor=other_analyst, assessment=AssessmentInput(scheme.verdict("not_illegal")))
        client = signed_in(supervisor)
        assert "The assessments disagree: your decision" in text(client.get(f"/cases/{case.reference}/"))

        # when
        response = client.post(f"/cases/{case.reference}/decide/", {"decision-verdict": "not_illegal"}, follow=True)

        # then
        assert response.redirect_chain == [(f"/cases/{case.reference}/", 302)]
        assert "Decision recorded." in text(response)
        assert fresh(case).status == S.NOT_ILLEGAL


# --- revealing a reporter's contact -----------------------------------------------------------------------------


class TestRevealContact:
    @pytest.fixture
    def identified(self) -> tuple[Case, Report]:
        return identified_report()

    def reveals(self) -> list[AuditEvent]:
        return list(AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED))

    def test_a_supervisor_sees_the_reveal_form_and_not_the_address(self, supervisor, identified):
        case, report = identified

        response = signed_in(supervisor).get(f"/cases/{case.reference}/")

        body = text(response)
        assert "Reveal (recorded)" in body
        assert f'<input type="hidden" name="report" value="{report.reference}">' in body
        assert EMAIL not in body

    def test_without_a_reason_nothing_is_revealed(self, supervisor, identified):
        case, report = identified

        response = signed_in(supervisor).post(f"/cases/{case.reference}/reveal/",
                                              {"report": report.reference, "reason": "  "}, follow=True)

        assert response.redirect_chain == [(f"/cases/{case.reference}/", 302)]
        assert "Give a reason for revealing the reporter's contact." in text(response)
        assert EMAIL not in text(response)
        assert self.reveals() == []

    def test_with_a_reason_the_address_is_shown_on_that_response_only_and_audited(self, supervisor, identified):
        case, report = identified
        client = signed_in(supervisor)

        response = client.post(f"/cases/{case.reference}/reveal/",
                               {"report": report.reference, "reason": "Police asked for the reporter"})

        assert response.status_code == 200
        assert EMAIL in text(response)
        assert "no-store" in response["Cache-Control"]
        [event] = self.reveals()
        assert (event.actor_type, event.actor_id) == ("user", str(supervisor.pk))
        assert event.data == {"report": report.reference, "reason": "Police asked for the reporter"}
        assert EMAIL not in json.dumps(event.data)
        # and the next visit to the page shows it no more
        assert EMAIL not in text(client.get(f"/cases/{case.reference}/"))

    @pytest.mark.parametrize("named", ["another case's report", "R-UUUU-UUUU", "", "R-\x00"])
    def test_only_a_report_of_this_case_can_be_named(self, supervisor, identified, named):
        case, _ = identified
        if named == "another case's report":
            named = identified_report("https://other.example/y")[1].reference

        response = signed_in(supervisor).post(f"/cases/{case.reference}/reveal/", {"report": named, "reason": "Why"})

        assert response.status_code == 404
        assert EMAIL not in text(response)
        assert self.reveals() == []

    def test_an_anonymous_report_has_nothing_to_reveal(self, supervisor):
        url = "https://anon.example/x"
        filed = intake.file_public_report(urls=[intake.ReportedURL(url, normalise(url))],
                                          details=intake.ReportDetails(), contact_email=None)
        case = Case.objects.get(pk=filed.outcomes[0].case_id)

        response = signed_in(supervisor).post(f"/cases/{case.reference}/reveal/",
                                              {"report": filed.report.reference, "reason": "Why"}, follow=True)

        assert "The reporter chose to stay anonymous." in text(response)
        assert self.reveals() == []

    def test_an_analyst_may_not_reveal_and_never_sees_the_address(self, analyst, identified):
        case, report = identified
        client = signed_in(analyst)

        page = client.get(f"/cases/{case.reference}/")
        refused = client.post(f"/cases/{case.reference}/reveal/", {"report": report.reference, "reason": "Curious"})

        assert page.status_code == 200
        assert "identified (hidden)" in text(page)
        assert "Reveal (recorded)" not in text(page)
        assert EMAIL not in text(page)
        assert refused.status_code == 403
        assert EMAIL not in text(refused)
        assert self.reveals() == []


# --- the team page ----------------------------------------------------------------------------------------------


class TestTeam:
    def test_lists_who_holds_what_and_what_waits_for_a_supervisor(self, supervisor, analyst, other_analyst):
        held = held_by(analyst)
        second = CaseFactory(status=S.AWAITING_SECOND_OPINION)
        disputed = CaseFactory(status=S.AWAITING_DECISION)
        elsewhere = CaseFactory(queue=QueueFactory(), status=S.AWAITING_DECISION)

        response = signed_in(supervisor).get("/cases/team/")

        body = text(response)
        assert response.status_code == 200
        holding, waiting = body.split('id="h-waiting"', 1)
        assert re.search(rf"<td>alice</td>\s*<td><a href=\"/cases/{held.reference}/\">", holding)
        assert '<option value="bob">bob</option>' in holding  # the other analyst can take it over
        assert second.reference in waiting and disputed.reference in waiting
        assert elsewhere.reference not in body

    def test_an_analyst_may_not_see_it(self, analyst):
        assert signed_in(analyst).get("/cases/team/").status_code == 403

    def test_reassign_with_a_reason_moves_the_claim(self, supervisor, analyst, other_analyst):
        case = held_by(analyst)

        response = signed_in(supervisor).post(f"/cases/{case.reference}/reassign/",
                                              {"to_user": "bob", "reason": "Alice is on leave"}, follow=True)

        assert response.redirect_chain == [("/cases/team/", 302)]
        assert f"{case.reference} now belongs to bob." in text(response)
        assert fresh(case).assignee_id == other_analyst.pk
        [event] = case_events(case, audit.Action.CASE_REASSIGNED)
        assert event.data["reason"] == "Alice is on leave"

    @pytest.mark.parametrize(("data", "message"), [
        ({"to_user": "bob", "reason": ""}, "Give a reason: it goes into the case's history."),
        ({"to_user": "nobody", "reason": "Cover"}, "Choose an analyst from the list."),
        ({"to_user": "carol", "reason": "Cover"}, "carol may not work cases in the queue"),
    ])
    def test_a_refused_reassignment_changes_nothing(self, member, supervisor, analyst, other_analyst, data, message):
        member(username="carol", queue=QueueFactory())  # an analyst of another queue
        case = held_by(analyst)
        before = state(case)

        response = signed_in(supervisor).post(f"/cases/{case.reference}/reassign/", data, follow=True)

        assert message in text(response)
        assert state(case) == before

    def test_close_duplicates_closes_the_listed_cases(self, supervisor):
        original, first, second, other = CaseFactory(), CaseFactory(), CaseFactory(), CaseFactory()

        response = signed_in(supervisor).post("/cases/team/duplicates/", {
            "duplicate_of": original.reference, "references": f"{first.reference}\n{second.reference.lower()}",
            "reason": "Same album"}, follow=True)

        assert response.redirect_chain == [("/cases/team/", 302)]
        assert f"Closed 2 cases as duplicates of {original.reference}." in text(response)
        for case in (first, second):
            case = fresh(case)
            assert (case.status, case.duplicate_of_id) == (S.CLOSED, original.pk)
            assert case.closed_at is not None
        assert fresh(original).closed_at is None and fresh(other).closed_at is None

    @pytest.mark.parametrize("unknown", [ABSENT, "in-another-queue"])
    def test_an_unknown_reference_closes_nothing(self, supervisor, unknown):
        original, listed = CaseFactory(), CaseFactory()
        if unknown == "in-another-queue":
            unknown = CaseFactory(queue=QueueFactory()).reference
        before = state(listed)

        response = signed_in(supervisor).post("/cases/team/duplicates/", {
            "duplicate_of": original.reference, "references": f"{listed.reference} {unknown}"})

        assert response.status_code == 400
        assert "One of those references is not a case in your queues; nothing was closed." in text(response)
        assert state(listed) == before

    def test_reopen_a_closed_case_with_a_reason(self, supervisor):
        case = CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now(), close_reason="Not illegal")
        client = signed_in(supervisor)
        assert 'name="reopen-reason"' in text(client.get(f"/cases/{case.reference}/"))

        response = client.post(f"/cases/{case.reference}/reopen/", {"reopen-reason": "New evidence"}, follow=True)

        assert response.redirect_chain == [(f"/cases/{case.reference}/", 302)]
        assert "The case is open again and back in the queue." in text(response)
        case = fresh(case)
        assert (case.status, case.closed_at, case.close_reason) == (S.RECEIVED, None, "")
        assert case_events(case, audit.Action.CASE_REOPENED)[0].data["reason"] == "New evidence"

    def test_reopen_without_a_reason_changes_nothing(self, supervisor):
        case = CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now())
        before = state(case)

        response = signed_in(supervisor).post(f"/cases/{case.reference}/reopen/", {"reopen-reason": ""},
                                              follow=True)

        assert "Give a reason: it goes into the case's history." in text(response)
        assert state(case) == before


# --- methods and CSRF -----------------------------------------------------------------------------------------


POSTS = ["/cases/next/", "/cases/team/duplicates/", *[f"/cases/{{ref}}/{action}/" for action in ACTIONS]]


@pytest.mark.parametrize("path", POSTS)
def test_every_action_refuses_get(member, default_queue, path):
    user = member(roles.SUPERVISOR)  # supervises the default queue
    grant(user, default_queue)  # and works it: every permission is there, so the method is what refuses
    case = CaseFactory()
    before = state(case)

    response = signed_in(user).get(path.format(ref=case.reference))

    assert response.status_code == 405
    assert state(case) == before


def test_actions_need_the_csrf_token(analyst):
    case = CaseFactory()
    client = signed_in(analyst, enforce_csrf_checks=True)

    refused = client.post("/cases/next/")

    assert refused.status_code == 403
    assert fresh(case).assignee_id is None
    # with the token the page gives, the same request goes through
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', client.get("/cases/").content.decode()).group(1)
    assert client.post("/cases/next/", {"csrfmiddlewaretoken": token}).status_code == 302
    assert fresh(case).assignee_id == analyst.pk
