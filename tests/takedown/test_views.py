"""The staff pages about notices (takedown/views.py, takedown/selectors.py) through Django's test client.

The case page's "Notices" section and its actions, and the notice dashboard of the team page and the staff home:
each action for each role (allowed, 403 without the permission, 404 outside the user's queues), the database
unchanged after every refusal, and the dashboard's query count. Notices are made through the services (issue,
mark sent, the recipient's answers), as delivery and the signed links make them; nothing of ours is mocked.
The browser journey is tests/journeys/test_notices.py.
"""

from __future__ import annotations

import html
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
from reports.models import Case
from takedown import responses, selectors, services
from takedown.models import (
    Notice,
    NoticeCase,
    NoticeKind,
    Partner,
    PoliceAuthorisation,
    RoutingRule,
    SupervisorTask,
)
from tests.reports.factories import CaseFactory, QueueFactory

pytestmark = pytest.mark.django_db

S = Case.Status
N = Notice.State
TAKEDOWN = NoticeKind.TAKEDOWN


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def signed_in(user: User, **kwargs: Any) -> Client:
    client = Client(**kwargs)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def messages_of(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]] if response.context else []


@pytest.fixture
def analyst(member: Callable[..., User]) -> User:
    return member(username="alice")


@pytest.fixture
def supervisor(member: Callable[..., User]) -> User:
    return member(roles.SUPERVISOR, username="sam")


@pytest.fixture
def auditor(make_staff: Callable[..., Any]) -> User:
    return make_staff(roles.AUDITOR, username="audrey").user


@pytest.fixture
def outsider(member: Callable[..., User]) -> User:
    """An analyst of another queue: the default queue's cases do not exist for them."""
    return member(username="olga", queue=QueueFactory())


@pytest.fixture
def outside_supervisor(member: Callable[..., User]) -> User:
    return member(roles.SUPERVISOR, username="oscar", queue=QueueFactory())


@pytest.fixture
def host() -> Partner:
    return Partner.objects.create(name="Example Hosting", kind=Partner.Kind.HOSTING_PROVIDER, country="GB")


@pytest.fixture
def police() -> Partner:
    return Partner.objects.create(name="National Police", kind=Partner.Kind.LAW_ENFORCEMENT, country="GB")


def sent_notice(partner: Partner, *cases: Case, kind: str = TAKEDOWN, ago: timedelta | None = None) -> Notice:
    """A notice about `cases`, issued and delivered (as delivery marks it), `ago` sent."""
    notice = services.issue_notice(partner=partner, kind=kind, cases=list(cases), actor=None)
    services.mark_sent(notice.pk)
    if ago is not None:
        Notice.objects.filter(pk=notice.pk).update(sent_at=timezone.now() - ago)
    notice.refresh_from_db()
    return notice


def actioning(**fields: Any) -> Case:
    return CaseFactory(status=S.ACTIONING, **fields)


@pytest.fixture
def awaiting(host: Partner) -> tuple[Case, Notice]:
    """A case whose takedown notice went out: awaiting removal."""
    case = actioning()
    notice = sent_notice(host, case)
    case.refresh_from_db()
    assert case.status == S.AWAITING_REMOVAL
    return case, notice


@pytest.fixture
def observed(awaiting: tuple[Case, Notice], host: Partner) -> tuple[Case, Notice]:
    """The host reported the material removed: removal observed, for an analyst to confirm."""
    case, notice = awaiting
    responses.report_removed(notice, actor=host)
    case.refresh_from_db()
    assert case.status == S.REMOVAL_OBSERVED
    return case, notice


@pytest.fixture
def disputed(awaiting: tuple[Case, Notice], host: Partner) -> tuple[Case, Notice]:
    case, notice = awaiting
    responses.dispute(notice, actor=host, reason="This is a news article about abuse, not abuse material.")
    case.refresh_from_db()
    notice.refresh_from_db()
    assert (case.status, notice.state) == (S.UNDER_DISPUTE, N.DISPUTED)
    return case, notice


@pytest.fixture
def waiting_for_police(host: Partner, police: Partner) -> tuple[Case, PoliceAuthorisation]:
    case = CaseFactory(status=S.AWAITING_AUTHORISATION)
    request = PoliceAuthorisation.objects.create(
        case=case, police=police, fallback=RoutingRule.Fallback.WAIT, answer_by=timezone.now() + timedelta(hours=4),
        pending=[{"partner": host.pk, "kind": TAKEDOWN, "immediate": False}])
    return case, request


@pytest.fixture
def no_route() -> tuple[Case, SupervisorTask]:
    case = actioning()
    task = services.open_supervisor_task(SupervisorTask.Kind.NO_ROUTE, case=case,
                                         detail="No hosting provider is known for AS64511.")
    return case, task


def snapshot() -> tuple[Any, ...]:
    """Everything the actions here could change: compared before and after a refused one."""
    return (
        sorted(Case.objects.values_list("pk", "status", "closed_at")),
        sorted(Notice.objects.values_list("pk", "state", "acknowledged_at", "actioned_at", "withdrawn_at")),
        sorted(NoticeCase.objects.values_list("pk", "removal_reported_at")),
        sorted(PoliceAuthorisation.objects.values_list("pk", "state", "note")),
        sorted(SupervisorTask.objects.values_list("pk", "resolved_at")),
        AuditEvent.objects.count(),
    )


def page(case: Case) -> str:
    return f"/cases/{case.reference}/"


# --- the case page's "Notices" section ------------------------------------------------------------------------


class TestCaseNoticesSection:
    def test_shows_each_notice_with_its_recipient_state_times_and_deadline(self, analyst, host, awaiting):
        case, notice = awaiting
        other = actioning()
        services.issue_notice(partner=host, kind=TAKEDOWN, cases=[other], actor=None)  # not this case's

        response = signed_in(analyst).get(page(case))

        assert response.status_code == 200
        body = text(response)
        section = body[body.index('id="notices"'):body.index('id="h-reports"')]
        assert notice.reference in section and "Example Hosting" in section and "Takedown notice" in section
        assert "Sent" in section and notice.sent_at.strftime("%Y-%m-%d %H:%M") in section
        assert notice.deadline_at.strftime("%Y-%m-%d %H:%M") in section
        assert "acknowledgement overdue" not in section
        assert section.count('<tr id="notice-') == 1

    def test_an_acknowledgement_overdue_is_flagged(self, analyst, host, settings):
        case = actioning()
        sent_notice(host, case, ago=timedelta(hours=settings.NOTICE_ACK_HOURS, minutes=1))

        assert "acknowledgement overdue" in text(signed_in(analyst).get(page(case)))

    def test_shows_the_dispute_reason_and_only_a_supervisor_gets_the_decision(self, analyst, supervisor, disputed):
        case, notice = disputed

        for_analyst = text(signed_in(analyst).get(page(case)))
        for_supervisor = text(signed_in(supervisor).get(page(case)))

        assert "This is a news article about abuse" in for_analyst
        assert "Uphold the notice" not in for_analyst
        assert "Uphold the notice" in for_supervisor and "Withdraw the notice" in for_supervisor

    def test_shows_the_time_from_notice_to_removal(self, analyst, observed):
        case, notice = observed
        removed_at = NoticeCase.objects.get(notice=notice).removal_reported_at
        Notice.objects.filter(pk=notice.pk).update(sent_at=removed_at - timedelta(hours=3, minutes=5))

        body = text(signed_in(analyst).get(page(case)))

        assert "3\xa0hours, 5\xa0minutes after the notice" in body
        assert "Confirm removal" in body and "Still there" in body

    def test_shows_the_pending_police_authorisation_with_its_answer_by_time(self, analyst, supervisor,
                                                                             waiting_for_police):
        case, request = waiting_for_police

        for_analyst = text(signed_in(analyst).get(page(case)))
        for_supervisor = text(signed_in(supervisor).get(page(case)))

        assert "Waiting for the police" in for_analyst
        assert f"answer by {request.answer_by:%Y-%m-%d %H:%M} UTC" in for_analyst
        assert "Police authorised: send the notices" not in for_analyst
        assert "Police authorised: send the notices" in for_supervisor

    def test_the_auditor_sees_the_notices_and_no_action(self, auditor, disputed):
        case, notice = disputed

        body = text(signed_in(auditor).get(page(case)))

        assert notice.reference in body and "This is a news article about abuse" in body
        for action in ("Uphold the notice", "I checked: the material is gone", "Resolve", "Send notice"):
            assert action not in body

    def test_the_analyst_gets_the_removal_check_while_removal_is_awaited(self, analyst, auditor, awaiting):
        case, _ = awaiting

        assert "I checked: the material is gone" in text(signed_in(analyst).get(page(case)))
        assert "I checked: the material is gone" not in text(signed_in(auditor).get(page(case)))

    def test_a_supervisor_gets_the_form_for_a_notice_by_hand_with_an_open_no_route_task(self, supervisor, analyst,
                                                                                       no_route, host):
        case, task = no_route

        body = text(signed_in(supervisor).get(page(case)))

        assert "Send a notice by hand" in body and "Example Hosting (Hosting provider, GB)" in body
        assert "No hosting provider is known for AS64511." in body
        assert "Send notice" not in text(signed_in(analyst).get(page(case)))


# --- actions: removal -----------------------------------------------------------------------------------------


class TestRemovalActions:
    def test_the_analyst_records_that_the_material_is_gone(self, analyst, awaiting):
        case, _ = awaiting

        response = signed_in(analyst).post(f"{page(case)}removal/verified/", follow=True)

        assert response.redirect_chain[-1][0] == f"{page(case)}#notices"
        case.refresh_from_db()
        assert case.status == S.REMOVAL_OBSERVED
        assert "Recorded: the material is gone." in text(response)
        assert AuditEvent.objects.filter(case_id=case.pk, action=audit.Action.CASE_REMOVAL_OBSERVED).exists()

    def test_confirm_removal_closes_the_case(self, analyst, observed):
        case, _ = observed

        response = signed_in(analyst).post(f"{page(case)}removal/confirm/")

        assert response.status_code == 302
        case.refresh_from_db()
        assert (case.status, case.close_reason) == (S.CLOSED, "Removed")

    def test_still_there_sends_the_case_back_to_waiting_for_removal(self, analyst, observed):
        case, notice = observed

        signed_in(analyst).post(f"{page(case)}removal/reject/", {"note": "The gallery still loads."})

        case.refresh_from_db()
        notice.refresh_from_db()
        assert case.status == S.AWAITING_REMOVAL
        assert notice.state == N.ACKNOWLEDGED
        event = AuditEvent.objects.get(case_id=case.pk, action=audit.Action.CASE_REMOVAL_REJECTED)
        assert event.data["reason"] == "The gallery still loads."

    @pytest.mark.parametrize("data", [{}, {"note": "   "}, {"note": "x" * 2001}, {"note": "nul\x00"}],
                             ids=["none", "blank", "too-long", "nul"])
    def test_still_there_without_a_usable_reason_changes_nothing(self, analyst, observed, data):
        case, _ = observed
        before = snapshot()

        response = signed_in(analyst).post(f"{page(case)}removal/reject/", data, follow=True)

        assert response.status_code == 200
        assert snapshot() == before
        assert any(m for m in messages_of(response))

    def test_an_action_that_does_not_fit_the_status_is_a_message_and_changes_nothing(self, analyst, awaiting):
        case, _ = awaiting  # awaiting removal: nothing to confirm yet
        before = snapshot()

        response = signed_in(analyst).post(f"{page(case)}removal/confirm/", follow=True)

        assert snapshot() == before
        assert "has no removal to confirm" in " ".join(messages_of(response))

    @pytest.mark.parametrize("action", ["verified", "confirm", "reject"])
    def test_the_auditor_and_roles_without_work_are_refused(self, make_staff, auditor, observed, action):
        case, _ = observed
        before = snapshot()
        for user in (auditor, make_staff(roles.WELFARE_OFFICER).user, make_staff(roles.ADMIN).user):
            assert signed_in(user).post(f"{page(case)}removal/{action}/", {"note": "x"}).status_code == 403
        assert snapshot() == before

    @pytest.mark.parametrize("action", ["verified", "confirm", "reject"])
    def test_outside_the_users_queues_the_case_does_not_exist(self, outsider, observed, action):
        case, _ = observed
        before = snapshot()

        assert signed_in(outsider).post(f"{page(case)}removal/{action}/", {"note": "x"}).status_code == 404
        assert signed_in(outsider).post("/cases/C-UUUU-UUUU/removal/confirm/").status_code == 404
        assert snapshot() == before

    @pytest.mark.parametrize("action", ["verified", "confirm", "reject"])
    def test_a_get_changes_nothing(self, analyst, observed, action):
        case, _ = observed
        before = snapshot()

        assert signed_in(analyst).get(f"{page(case)}removal/{action}/").status_code == 405
        assert snapshot() == before

    def test_anonymous_visitors_are_sent_to_sign_in(self, observed):
        case, _ = observed
        before = snapshot()

        response = Client().post(f"{page(case)}removal/confirm/")

        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert snapshot() == before

    def test_a_post_without_the_csrf_token_is_refused(self, analyst, observed):
        case, _ = observed
        before = snapshot()

        response = signed_in(analyst, enforce_csrf_checks=True).post(f"{page(case)}removal/confirm/")

        assert response.status_code == 403
        assert snapshot() == before


# --- actions: disputes ----------------------------------------------------------------------------------------


class TestDisputeDecisions:
    def test_a_supervisor_upholds_the_notice(self, supervisor, disputed):
        case, notice = disputed

        response = signed_in(supervisor).post(f"{page(case)}notices/{notice.reference}/uphold/",
                                              {"note": "The page shows the material; the notice stands."},
                                              follow=True)

        assert f"Notice {notice.reference} upheld" in text(response)
        case.refresh_from_db()
        notice.refresh_from_db()
        assert (case.status, notice.state) == (S.AWAITING_REMOVAL, N.ACKNOWLEDGED)  # disputing acknowledged it
        assert Notice.objects.filter(kind=NoticeKind.DISPUTE_OUTCOME, partner=notice.partner).count() == 1
        assert not SupervisorTask.objects.filter(kind=SupervisorTask.Kind.DISPUTE, resolved_at=None).exists()

    def test_a_supervisor_withdraws_the_notice(self, supervisor, disputed):
        case, notice = disputed

        signed_in(supervisor).post(f"{page(case)}notices/{notice.reference}/withdraw/",
                                   {"note": "You are right: we withdraw the notice."})

        case.refresh_from_db()
        notice.refresh_from_db()
        assert (case.status, notice.state) == (S.CLOSED, N.WITHDRAWN)

    @pytest.mark.parametrize("decision", ["uphold", "withdraw"])
    def test_without_a_note_nothing_changes(self, supervisor, disputed, decision):
        case, notice = disputed
        before = snapshot()

        response = signed_in(supervisor).post(f"{page(case)}notices/{notice.reference}/{decision}/", {"note": ""},
                                              follow=True)

        assert snapshot() == before
        assert "Write a note for the recipient" in " ".join(messages_of(response))

    def test_a_notice_that_is_not_disputed_is_a_message(self, supervisor, awaiting):
        case, notice = awaiting
        before = snapshot()

        response = signed_in(supervisor).post(f"{page(case)}notices/{notice.reference}/uphold/", {"note": "x"},
                                              follow=True)

        assert snapshot() == before
        assert "Only a disputed notice waits for a decision." in messages_of(response)

    def test_a_notice_of_another_case_is_a_404(self, supervisor, disputed):
        _, notice = disputed
        other = actioning()
        before = snapshot()

        client = signed_in(supervisor)
        assert client.post(f"{page(other)}notices/{notice.reference}/uphold/", {"note": "x"}).status_code == 404
        assert client.post(f"{page(other)}notices/N-NO-SUCH/uphold/", {"note": "x"}).status_code == 404
        assert client.post(f"{page(other)}notices/N-\x00/uphold/", {"note": "x"}).status_code == 404
        assert snapshot() == before

    @pytest.mark.parametrize("decision", ["uphold", "withdraw"])
    def test_analysts_and_auditors_get_403_and_other_queues_404(self, analyst, auditor, outside_supervisor,
                                                                disputed, decision):
        case, notice = disputed
        url = f"{page(case)}notices/{notice.reference}/{decision}/"
        before = snapshot()

        assert signed_in(analyst).post(url, {"note": "x"}).status_code == 403
        assert signed_in(auditor).post(url, {"note": "x"}).status_code == 403
        assert signed_in(outside_supervisor).post(url, {"note": "x"}).status_code == 404
        assert signed_in(analyst).get(url).status_code == 403
        assert snapshot() == before


# --- actions: a notice by hand, supervisor tasks, police consent -------------------------------------------------


class TestNoticeByHand:
    def test_a_supervisor_sends_a_notice_routing_could_not_address(self, supervisor, no_route, host):
        case, task = no_route

        response = signed_in(supervisor).post(f"{page(case)}notices/send/",
                                              {"partner": host.pk, "kind": TAKEDOWN}, follow=True)

        notice = Notice.objects.get(partner=host, kind=TAKEDOWN)
        assert list(notice.cases.all()) == [case]
        assert notice.issued_by == supervisor
        assert f"Notice {notice.reference} to Example Hosting is on its way." in text(response)
        task.refresh_from_db()
        assert task.resolved_by == supervisor

    @pytest.mark.parametrize("data", [
        {},
        {"partner": "", "kind": TAKEDOWN},
        {"partner": "not-a-number", "kind": TAKEDOWN},
        {"partner": "999999", "kind": TAKEDOWN},
        {"partner": "HOST", "kind": "dispute_outcome"},
        {"partner": "HOST", "kind": "nonsense\x00"},
        {"partner": "INACTIVE", "kind": TAKEDOWN},
    ], ids=["empty", "no-partner", "not-a-number", "no-such-partner", "not-a-material-kind", "nul",
            "inactive-partner"])
    def test_bad_input_is_a_message_and_changes_nothing(self, supervisor, no_route, host, data):
        case, _ = no_route
        inactive = Partner.objects.create(name="Gone Hosting", kind=Partner.Kind.HOSTING_PROVIDER, is_active=False)
        data = {k: {"HOST": host.pk, "INACTIVE": inactive.pk}.get(v, v) for k, v in data.items()}
        before = snapshot()

        response = signed_in(supervisor).post(f"{page(case)}notices/send/", data, follow=True)

        assert snapshot() == before
        assert "Choose a recipient and a kind of notice." in " ".join(messages_of(response))

    def test_the_same_recipient_twice_is_refused_with_the_reason(self, supervisor, awaiting, host):
        case, _ = awaiting
        before = snapshot()

        response = signed_in(supervisor).post(f"{page(case)}notices/send/", {"partner": host.pk, "kind": TAKEDOWN},
                                              follow=True)

        assert snapshot() == before
        assert "Example Hosting already has a takedown notice about this case." in messages_of(response)

    def test_a_case_that_gets_no_notices_is_refused(self, supervisor, host):
        case = CaseFactory(status=S.IN_REVIEW)
        before = snapshot()

        response = signed_in(supervisor).post(f"{page(case)}notices/send/", {"partner": host.pk, "kind": TAKEDOWN},
                                              follow=True)

        assert snapshot() == before
        assert "gets no new notices" in " ".join(messages_of(response))

    def test_analysts_and_auditors_get_403_and_other_queues_404(self, analyst, auditor, outside_supervisor,
                                                                no_route, host):
        case, _ = no_route
        url, data = f"{page(case)}notices/send/", {"partner": host.pk, "kind": TAKEDOWN}
        before = snapshot()

        assert signed_in(analyst).post(url, data).status_code == 403
        assert signed_in(auditor).post(url, data).status_code == 403
        assert signed_in(outside_supervisor).post(url, data).status_code == 404
        assert snapshot() == before


class TestSupervisorTasks:
    def test_a_supervisor_resolves_a_task_and_returns_where_they_were(self, supervisor, no_route):
        case, task = no_route

        response = signed_in(supervisor).post(f"/cases/tasks/{task.pk}/resolve/",
                                              {"note": "Asked the registrar instead.", "next": "/cases/team/"})

        assert response.status_code == 302 and response["Location"] == "/cases/team/"
        task.refresh_from_db()
        assert task.resolved_by == supervisor
        event = AuditEvent.objects.get(action=audit.Action.SUPERVISOR_TASK_RESOLVED)
        assert event.data["note"] == "Asked the registrar instead."

    @pytest.mark.parametrize("next_url", ["https://evil.example/", "//evil.example/", "", "javascript:alert(1)"])
    def test_a_next_address_elsewhere_is_ignored(self, supervisor, no_route, next_url):
        case, task = no_route

        response = signed_in(supervisor).post(f"/cases/tasks/{task.pk}/resolve/", {"next": next_url})

        assert response["Location"] == f"{page(case)}#notices"

    def test_a_task_without_a_case_is_any_supervisors(self, supervisor, outside_supervisor):
        task = services.open_supervisor_task(SupervisorTask.Kind.NOTICE_FAILED, detail="No case attached.")

        response = signed_in(outside_supervisor).post(f"/cases/tasks/{task.pk}/resolve/")

        assert response["Location"] == "/cases/team/"
        task.refresh_from_db()
        assert task.resolved_by == outside_supervisor

    def test_a_resolved_task_is_not_resolved_again(self, supervisor, no_route):
        _, task = no_route
        services.resolve_supervisor_task(task.pk, actor=supervisor, note="done")
        before = snapshot()

        response = signed_in(supervisor).post(f"/cases/tasks/{task.pk}/resolve/", follow=True)

        assert snapshot() == before
        assert "That task was resolved already." in messages_of(response)

    def test_refusals(self, analyst, auditor, outside_supervisor, supervisor, no_route):
        _, task = no_route
        url = f"/cases/tasks/{task.pk}/resolve/"
        before = snapshot()

        assert signed_in(analyst).post(url).status_code == 403
        assert signed_in(auditor).post(url).status_code == 403
        assert signed_in(outside_supervisor).post(url).status_code == 404
        assert signed_in(supervisor).post("/cases/tasks/999999/resolve/").status_code == 404
        assert signed_in(supervisor).get(url).status_code == 405
        assert signed_in(supervisor).post(url, {"note": "x" * 2001}).status_code == 302
        assert snapshot() == before


class TestPoliceByPhone:
    def test_a_supervisor_records_the_police_authorising_and_the_notices_go(self, supervisor, waiting_for_police,
                                                                           host):
        case, request = waiting_for_police

        response = signed_in(supervisor).post(f"{page(case)}authorisations/{request.pk}/authorise/",
                                              {"note": "DS Patel, by phone at 10:40."}, follow=True)

        assert "Police authorisation recorded" in text(response)
        request.refresh_from_db()
        case.refresh_from_db()
        assert (request.state, request.note) == (PoliceAuthorisation.State.AUTHORISED, "DS Patel, by phone at 10:40.")
        assert case.status == S.ACTIONING
        assert Notice.objects.filter(partner=host, kind=TAKEDOWN, items__case=case).exists()

    def test_a_supervisor_records_the_police_asking_to_hold(self, supervisor, waiting_for_police, host):
        case, request = waiting_for_police

        signed_in(supervisor).post(f"{page(case)}authorisations/{request.pk}/hold/", {"note": "Operation running."})

        request.refresh_from_db()
        assert request.state == PoliceAuthorisation.State.HELD
        assert not Notice.objects.filter(partner=host).exists()

    def test_hold_after_the_notices_went_is_refused_with_the_reason(self, supervisor, waiting_for_police):
        case, request = waiting_for_police
        services.authorise(request, actor=supervisor, note="by phone")
        before = snapshot()

        response = signed_in(supervisor).post(f"{page(case)}authorisations/{request.pk}/hold/", {"note": "late"},
                                              follow=True)

        assert snapshot() == before
        assert "The notices have already gone out; they can no longer be held." in messages_of(response)

    @pytest.mark.parametrize("answer", ["authorise", "hold"])
    def test_refusals(self, analyst, auditor, outside_supervisor, supervisor, waiting_for_police, answer):
        case, request = waiting_for_police
        url = f"{page(case)}authorisations/{request.pk}/{answer}/"
        other = CaseFactory(status=S.AWAITING_AUTHORISATION)
        before = snapshot()

        assert signed_in(analyst).post(url, {"note": "x"}).status_code == 403
        assert signed_in(auditor).post(url, {"note": "x"}).status_code == 403
        assert signed_in(outside_supervisor).post(url, {"note": "x"}).status_code == 404
        client = signed_in(supervisor)
        assert client.post(f"{page(other)}authorisations/{request.pk}/{answer}/", {"note": "x"}).status_code == 404
        response = client.post(url, {"note": ""}, follow=True)
        assert "Note who at the police answered, and when." in messages_of(response)
        assert snapshot() == before


# --- the dashboard --------------------------------------------------------------------------------------------


def populate_dashboard(host: Partner, police: Partner, queue: Any = None, *, each: int = 1) -> None:
    """`each` of every kind of thing the dashboard shows, in `queue` (the default one unless told)."""
    extra = {"queue": queue} if queue is not None else {}
    for _ in range(each):
        sent_notice(host, actioning(**extra), ago=timedelta(hours=30))  # overdue
        failed = services.issue_notice(partner=host, kind=TAKEDOWN, cases=[actioning(**extra)], actor=None)
        services.mark_failed(failed.pk, reason="550 mailbox unavailable")  # failed, with a task
        case = actioning(**extra)
        responses.dispute(sent_notice(host, case), actor=host, reason="Not ours.")  # disputed, with a task
        observed = actioning(**extra)
        responses.report_removed(sent_notice(host, observed), actor=host)  # removal observed
        PoliceAuthorisation.objects.create(case=CaseFactory(status=S.AWAITING_AUTHORISATION, **extra),
                                           police=police, fallback="wait",
                                           answer_by=timezone.now() + timedelta(hours=1))


class TestDashboard:
    def test_the_team_page_shows_what_waits_with_links_to_the_cases(self, supervisor, host, police):
        populate_dashboard(host, police)
        overdue = Notice.objects.get(state=N.SENT)
        failed = Notice.objects.get(state=N.FAILED)
        dispute = Notice.objects.get(state=N.DISPUTED)

        body = text(signed_in(supervisor).get("/cases/team/"))

        section = body[body.index('id="notice-dashboard"'):body.index('id="h-held"')]
        for notice in (overdue, failed, dispute):
            assert notice.reference in section
            case = notice.cases.get()
            assert f'href="/cases/{case.reference}/#notices"' in section
        assert "550 mailbox unavailable" in section and "Not ours." in section
        assert "Notice could not be delivered" in section and "Recipient disputes a notice" in section
        assert section.count('action="/cases/tasks/') == 2
        assert "Waiting for police authorisation" in section and "National Police" in section
        observed = Case.objects.get(status=S.REMOVAL_OBSERVED)
        assert f'href="/cases/{observed.reference}/#notices"' in section

    def test_the_staff_home_shows_it_too_and_an_analyst_cannot_resolve_tasks(self, analyst, host, police):
        populate_dashboard(host, police)

        body = text(signed_in(analyst).get("/"))

        section = body[body.index('id="notice-dashboard"'):]
        assert Notice.objects.get(state=N.SENT).reference in section
        assert "Acknowledgements overdue" in section
        assert "Notice could not be delivered" in section
        assert 'action="/cases/tasks/' not in section

    def test_an_empty_dashboard_says_so(self, supervisor):
        assert "Nothing about notices waits in your queues." in text(signed_in(supervisor).get("/cases/team/"))

    def test_roles_that_read_no_cases_get_no_dashboard(self, make_staff, host, police):
        populate_dashboard(host, police)

        body = text(signed_in(make_staff(roles.WELFARE_OFFICER).user).get("/"))

        assert 'id="notice-dashboard"' not in body

    def test_only_the_users_queues_count(self, analyst, outsider, auditor, host, police):
        populate_dashboard(host, police, queue=QueueFactory())

        mine = selectors.notice_dashboard(analyst)
        for_auditor = selectors.notice_dashboard(auditor)

        assert mine is not None and mine.is_empty
        assert for_auditor is not None
        assert [s.count for s in (for_auditor.overdue, for_auditor.failed, for_auditor.disputed,
                                  for_auditor.tasks, for_auditor.authorisation,
                                  for_auditor.removal_observed)] == [1, 1, 1, 2, 1, 1]

    def test_a_notice_shows_only_the_cases_in_the_users_queues(self, analyst, host):
        hidden = actioning(queue=QueueFactory())
        visible = actioning()
        notice = sent_notice(host, visible, hidden, ago=timedelta(hours=30))

        dashboard = selectors.notice_dashboard(analyst)

        assert [line.notice for line in dashboard.overdue.rows] == [notice]
        assert dashboard.overdue.rows[0].cases == [visible]

    def test_counts_stop_at_the_cap(self, supervisor, host, police):
        populate_dashboard(host, police, each=3)

        dashboard = selectors.notice_dashboard(supervisor, rows=2, cap=2)

        assert dashboard.overdue.count is None and len(dashboard.overdue.rows) == 2 and dashboard.overdue.more
        assert dashboard.tasks.count is None and len(dashboard.tasks.rows) == 2

    def test_its_query_count_does_not_grow_with_what_it_shows(self, supervisor, host, police):
        populate_dashboard(host, police)
        supervisor = User.objects.get(pk=supervisor.pk)
        with CaptureQueriesContext(connection) as few:
            selectors.notice_dashboard(supervisor)
        populate_dashboard(host, police, each=12)
        supervisor = User.objects.get(pk=supervisor.pk)
        with CaptureQueriesContext(connection) as many:
            dashboard = selectors.notice_dashboard(supervisor)

        assert len(dashboard.overdue.rows) == 10
        assert len(few) == len(many)

    def test_it_takes_few_queries(self, supervisor, host, police, django_assert_max_num_queries):
        populate_dashboard(host, police, each=3)
        supervisor = User.objects.get(pk=supervisor.pk)
        # the user's and their groups' permissions, the queues they read, every count (one query), three sections
        # of notices and one query for the cases of all of them, the tasks, the queues they supervise (who may
        # resolve), the requests to the police, the cases whose removal waits for confirmation
        with django_assert_max_num_queries(12):
            selectors.notice_dashboard(supervisor)

    def test_a_user_without_queues_costs_no_query_for_rows(self, make_staff, django_assert_max_num_queries):
        lonely = make_staff(roles.ANALYST).user  # no queue granted
        with django_assert_max_num_queries(4):  # permissions (2), queues (1), the counts (1)
            dashboard = selectors.notice_dashboard(lonely)
        assert dashboard is not None and dashboard.is_empty


class TestCaseNoticesSelector:
    def test_one_query_for_a_case_in_several_notices(self, host, police, django_assert_num_queries):
        case = actioning()
        sent_notice(host, case, actioning())
        sent_notice(police, case, kind=NoticeKind.POLICE_INFORMATION)

        with django_assert_num_queries(1):
            rows = selectors.case_notices(case)

        assert [(r.notice.partner.name, r.case_count) for r in rows] == [("Example Hosting", 2),
                                                                        ("National Police", 1)]

    def test_overdue_is_sent_and_unacknowledged_past_the_hours(self, host, settings):
        late, fresh, acknowledged = actioning(), actioning(), actioning()
        hours = timedelta(hours=settings.NOTICE_ACK_HOURS, seconds=1)
        sent_notice(host, late, ago=hours)
        sent_notice(host, fresh, ago=timedelta(hours=settings.NOTICE_ACK_HOURS) - timedelta(minutes=5))
        responses.acknowledge(sent_notice(host, acknowledged, ago=hours), actor=host)

        assert [r.overdue for r in selectors.case_notices(late)] == [True]
        assert [r.overdue for r in selectors.case_notices(fresh)] == [False]
        assert [r.overdue for r in selectors.case_notices(acknowledged)] == [False]

    def test_time_to_removal_is_from_sending_to_the_removal_reported(self, host):
        case = actioning()
        notice = sent_notice(host, case, ago=timedelta(hours=5))
        responses.report_removed(notice, actor=host)

        (row,) = selectors.case_notices(case)

        assert timedelta(hours=5) <= row.time_to_removal < timedelta(hours=5, minutes=1)
