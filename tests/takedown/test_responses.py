"""The recipient's answers and what staff make of them (takedown/responses.py): acknowledgement, reported
removal, disputes and their senior decision, and an analyst's own check of removal.

Notices are built directly (a Notice and its NoticeCase rows, as delivery leaves them: sent, the cases
awaiting removal) by `make_notice`, which the link and API tests use too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.utils import timezone

from ntd import audit, roles
from ntd.audit import AuditEvent
from ntd.models import User
from reports import intake
from reports.models import Case, Report
from reports.normalise import normalise
from reports.services import ReviewError
from takedown import responses
from takedown.models import (
    Notice,
    NoticeCase,
    NoticeKind,
    OutboxEntry,
    Partner,
    PoliceAuthorisation,
    SupervisorTask,
)
from tests.concurrency import run_at_once
from tests.reports.factories import CaseFactory, QueueFactory

S = Case.Status
N = Notice.State
A = audit.Action


# --- building notices as delivery leaves them ------------------------------------------------------------------


def make_partner(name: str = "Host A", kind: str = Partner.Kind.HOSTING_PROVIDER, **fields: Any) -> Partner:
    return Partner.objects.create(name=name, kind=kind, **fields)


def make_notice(partner: Partner, cases: Sequence[Case] | None = None, *, count: int = 2,
                kind: str = NoticeKind.TAKEDOWN, state: str = N.SENT, case_status: str = S.AWAITING_REMOVAL,
                **fields: Any) -> Notice:
    """A notice to `partner` about `cases` (else `count` new cases in `case_status`), sent unless told."""
    now = timezone.now()
    sent = state not in (N.QUEUED, N.FAILED)
    notice = Notice.objects.create(
        partner=partner, kind=kind, channel=Notice.Channel.EMAIL, state=state, due_at=now, sealed_at=now,
        sent_at=now if sent else None, deadline_at=now + timedelta(hours=48) if sent else None,
        subject=f"{NoticeKind(kind).label} about {count} URLs", body="Please remove the material at these URLs.",
        email_to="abuse@host.example", **fields)
    OutboxEntry.objects.create(notice=notice, due_at=now, done_at=now if sent else None)
    cases = list(cases) if cases is not None else [CaseFactory(status=case_status) for _ in range(count)]
    NoticeCase.objects.bulk_create([NoticeCase(notice=notice, case=case, partner=partner, kind=kind)
                                    for case in cases])
    return notice


def events(action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def statuses(notice: Notice) -> list[str]:
    return [item.case.status for item in responses.notice_items(notice)]


def snapshot() -> tuple[Any, ...]:
    """Everything an answer could change: nothing must differ after a refused one."""
    return (list(Notice.objects.order_by("pk").values()), list(NoticeCase.objects.order_by("pk").values()),
            list(Case.objects.order_by("pk").values()), SupervisorTask.objects.count(), AuditEvent.objects.count())


@pytest.fixture(autouse=True)
def _cheap_passwords(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def partner(db: Any) -> Partner:
    return make_partner()


@pytest.fixture
def other_partner(db: Any) -> Partner:
    return make_partner("Host B")


@pytest.fixture
def supervisor(member: Callable[..., User]) -> User:
    return member(roles.SUPERVISOR)


@pytest.fixture
def analyst(member: Callable[..., User]) -> User:
    return member(roles.ANALYST)


def refused(call: Callable[[], Any], error: type[Exception], match: str | None = None) -> None:
    """The call raises `error` and changes nothing at all."""
    before = snapshot()
    with pytest.raises(error, match=match):
        call()
    assert snapshot() == before


# --- acknowledgement -----------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestAcknowledge:
    def test_the_recipient_acknowledges_a_sent_notice(self, partner):
        notice = make_notice(partner)

        responses.acknowledge(notice, actor=partner)

        notice.refresh_from_db()
        assert notice.state == N.ACKNOWLEDGED and notice.acknowledged_at is not None
        [event] = events(A.NOTICE_ACKNOWLEDGED)
        assert (event.actor_type, event.actor_id) == ("partner", str(partner.pk))
        assert (event.target_type, event.target_id, event.data) == ("takedown.notice", str(notice.pk),
                                                                    {"notice": notice.reference})
        assert statuses(notice) == [S.AWAITING_REMOVAL] * 2  # acknowledging is not removal

    def test_a_second_acknowledgement_changes_nothing(self, partner):
        notice = make_notice(partner)
        first = responses.acknowledge(notice, actor=partner).acknowledged_at
        before = snapshot()

        again = responses.acknowledge(notice, actor=partner)

        assert again.acknowledged_at == first
        assert snapshot() == before

    def test_another_partner_gets_a_404_and_changes_nothing(self, partner, other_partner):
        notice = make_notice(partner)

        refused(lambda: responses.acknowledge(notice, actor=other_partner), Http404)

    def test_a_member_of_staff_is_not_the_recipient(self, partner, supervisor):
        notice = make_notice(partner)

        refused(lambda: responses.acknowledge(notice, actor=supervisor), PermissionDenied)

    @pytest.mark.parametrize(("state", "message"), [(N.QUEUED, "not been sent"), (N.FAILED, "not been sent"),
                                                    (N.WITHDRAWN, "withdrawn")])
    def test_a_notice_not_out_or_withdrawn_cannot_be_acknowledged(self, partner, state, message):
        notice = make_notice(partner, state=state)

        refused(lambda: responses.acknowledge(notice, actor=partner), ReviewError, message)


@pytest.mark.django_db(transaction=True)
def test_two_acknowledgements_at_once_record_one(partner):
    notice = make_notice(partner)

    run_at_once([lambda: responses.acknowledge(notice, actor=partner)] * 2)

    assert len(events(A.NOTICE_ACKNOWLEDGED)) == 1


# --- reported removal -----------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestReportRemoved:
    def test_removal_of_every_url_actions_the_notice(self, partner):
        notice = make_notice(partner, count=3)

        responses.report_removed(notice, actor=partner)

        notice.refresh_from_db()
        assert notice.state == N.ACTIONED and notice.actioned_at is not None
        assert notice.acknowledged_at is not None  # reporting removal shows it arrived
        assert all(item.removal_reported_at for item in responses.notice_items(notice))
        assert statuses(notice) == [S.REMOVAL_OBSERVED] * 3
        observed = events(A.CASE_REMOVAL_OBSERVED)
        assert [e.case_id for e in observed] == [item.case_id for item in notice.items.order_by("case_id")]
        assert all(e.actor_type == "partner" and e.data["notice"] == notice.reference for e in observed)
        [reported] = events(A.NOTICE_REMOVAL_REPORTED)
        assert reported.data["all_reported"] is True
        assert sorted(reported.data["cases"]) == sorted(i.case.reference for i in responses.notice_items(notice))

    def test_removal_of_some_urls_leaves_the_notice_open_for_the_rest(self, partner):
        notice = make_notice(partner, count=2)
        first, second = responses.notice_items(notice)

        responses.report_removed(notice, actor=partner, case_references=[first.case.reference.lower()])

        notice.refresh_from_db()
        assert notice.state == N.ACKNOWLEDGED and notice.actioned_at is None
        assert statuses(notice) == [S.REMOVAL_OBSERVED, S.AWAITING_REMOVAL]
        [event] = events(A.NOTICE_REMOVAL_REPORTED)
        assert (event.data["cases"], event.data["all_reported"], event.case_id) == (
            [first.case.reference], False, first.case_id)

        responses.report_removed(notice, actor=partner, case_references=[second.case.reference])

        notice.refresh_from_db()
        assert notice.state == N.ACTIONED
        assert statuses(notice) == [S.REMOVAL_OBSERVED] * 2

    def test_reporting_again_changes_nothing(self, partner):
        notice = make_notice(partner)
        responses.report_removed(notice, actor=partner)
        before = snapshot()

        responses.report_removed(notice, actor=partner)
        responses.report_removed(notice, actor=partner,
                                 case_references=[responses.notice_items(notice)[0].case.reference])

        assert snapshot() == before

    def test_a_case_not_in_the_notice_is_refused_and_nothing_is_recorded(self, partner):
        notice = make_notice(partner)
        elsewhere = make_notice(partner, count=1)
        known = responses.notice_items(notice)[0].case.reference
        stranger = responses.notice_items(elsewhere)[0].case.reference

        refused(lambda: responses.report_removed(notice, actor=partner, case_references=[known, stranger]),
                responses.UnknownCases, f"Not in notice {notice.reference}: {stranger}")
        refused(lambda: responses.report_removed(notice, actor=partner, case_references=[]),
                responses.UnknownCases, "at least one")

    def test_a_case_not_yet_waiting_for_removal_keeps_its_status(self, partner):
        notice = make_notice(partner, count=1, case_status=S.ACTIONING)  # another notice about it is still out

        responses.report_removed(notice, actor=partner)

        assert statuses(notice) == [S.ACTIONING]
        assert responses.notice_items(notice)[0].removal_reported_at is not None
        assert not events(A.CASE_REMOVAL_OBSERVED)

    def test_a_disputed_notice_waits_for_the_decision(self, partner):
        notice = make_notice(partner, state=N.DISPUTED, disputed_at=timezone.now(), dispute_reason="No.",
                             case_status=S.UNDER_DISPUTE)

        refused(lambda: responses.report_removed(notice, actor=partner), ReviewError, "wait for our decision")

    def test_a_request_for_authorisation_asks_for_no_removal(self, partner):
        notice = make_notice(partner, kind=NoticeKind.AUTHORISATION_REQUEST, case_status=S.AWAITING_AUTHORISATION)

        refused(lambda: responses.report_removed(notice, actor=partner), ReviewError, "asks for no removal")

    def test_another_partner_cannot_report_removal(self, partner, other_partner):
        notice = make_notice(partner)

        refused(lambda: responses.report_removed(notice, actor=other_partner), Http404)


# --- disputes ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestDispute:
    def test_a_dispute_puts_the_cases_under_dispute_and_tells_a_supervisor(self, partner):
        notice = make_notice(partner, count=2)

        responses.dispute(notice, actor=partner, reason="  These pages are a news report about the case.  ")

        notice.refresh_from_db()
        assert notice.state == N.DISPUTED and notice.disputed_at is not None
        assert notice.dispute_reason == "These pages are a news report about the case."
        assert statuses(notice) == [S.UNDER_DISPUTE] * 2
        [task] = SupervisorTask.objects.all()
        first_case = notice.items.order_by("case_id").first().case
        assert (task.kind, task.notice, task.case, task.resolved_at) == (
            SupervisorTask.Kind.DISPUTE, notice, first_case, None)
        assert notice.reference in task.detail and "news report" in task.detail
        [disputed] = events(A.NOTICE_DISPUTED)
        assert (disputed.actor_type, disputed.data["reason"]) == ("partner", notice.dispute_reason)
        assert len(events(A.CASE_UNDER_DISPUTE)) == 2
        assert len(events(A.SUPERVISOR_TASK_OPENED)) == 1

    @pytest.mark.parametrize(("reason", "message"), [("", "Give a reason"), ("   ", "Give a reason"),
                                                     ("x" * 2001, "2,000 characters")])
    def test_a_dispute_needs_a_reason_of_at_most_2000_characters(self, partner, reason, message):
        notice = make_notice(partner)

        refused(lambda: responses.dispute(notice, actor=partner, reason=reason), ReviewError, message)

    def test_a_reason_of_2000_characters_is_enough(self, partner):
        notice = make_notice(partner)

        responses.dispute(notice, actor=partner, reason="x" * 2000)

        assert Notice.objects.get(pk=notice.pk).state == N.DISPUTED

    def test_the_same_dispute_again_changes_nothing_and_another_is_refused(self, partner):
        notice = make_notice(partner)
        responses.dispute(notice, actor=partner, reason="Wrong host.")
        before = snapshot()

        responses.dispute(notice, actor=partner, reason="Wrong host.")

        assert snapshot() == before
        refused(lambda: responses.dispute(notice, actor=partner, reason="Something else."), ReviewError,
                "already")

    def test_a_closed_case_in_the_notice_stays_closed(self, partner):
        done = CaseFactory(status=S.CLOSED, closed_at=timezone.now(), close_reason="Removed")
        waiting = CaseFactory(status=S.AWAITING_REMOVAL)
        notice = make_notice(partner, [done, waiting])

        responses.dispute(notice, actor=partner, reason="Wrong host.")

        assert statuses(notice) == [S.CLOSED, S.UNDER_DISPUTE]

    def test_another_partner_cannot_dispute(self, partner, other_partner):
        notice = make_notice(partner)

        refused(lambda: responses.dispute(notice, actor=other_partner, reason="Not ours."), Http404)


# --- the senior decision ----------------------------------------------------------------------------------------


@pytest.fixture
def disputed(partner: Partner) -> Notice:
    notice = make_notice(partner, count=2)
    responses.acknowledge(notice, actor=partner)
    responses.dispute(notice, actor=partner, reason="The material is lawful.")
    return Notice.objects.get(pk=notice.pk)


def outcome_notices(partner: Partner) -> list[Notice]:
    return list(Notice.objects.filter(partner=partner, kind=NoticeKind.DISPUTE_OUTCOME))


@pytest.mark.django_db
class TestUphold:
    def test_the_notice_stands_and_the_recipient_is_told(self, disputed, partner, supervisor):
        responses.uphold(disputed, actor=supervisor, note="The material is illegal under our law.")

        notice = Notice.objects.get(pk=disputed.pk)
        assert notice.state == N.ACKNOWLEDGED  # as it was before the dispute
        assert notice.dispute_reason == "The material is lawful."  # the dispute stays on the record
        assert statuses(notice) == [S.AWAITING_REMOVAL] * 2
        assert SupervisorTask.objects.get().resolved_by == supervisor
        [told] = outcome_notices(partner)
        assert (told.state, told.immediate) == (N.QUEUED, True)
        assert sorted(told.items.values_list("case_id", flat=True)) == sorted(
            notice.items.values_list("case_id", flat=True))
        assert told.payload["dispute"] == {"notice": notice.reference, "outcome": "upheld",
                                           "note": "The material is illegal under our law."}
        [event] = events(A.NOTICE_UPHELD)
        assert (event.actor_type, event.actor_id) == ("user", str(supervisor.pk))
        assert event.data["outcome_notice"] == told.reference
        assert len(events(A.CASE_AWAITING_REMOVAL)) == 2
        assert len(events(A.SUPERVISOR_TASK_RESOLVED)) == 1

    def test_a_notice_disputed_before_acknowledgement_goes_back_to_acknowledged(self, partner, supervisor):
        notice = make_notice(partner)
        responses.dispute(notice, actor=partner, reason="Lawful.")  # a dispute shows it arrived

        responses.uphold(notice, actor=supervisor)

        assert Notice.objects.get(pk=notice.pk).state == N.ACKNOWLEDGED

    def test_a_case_with_a_notice_still_to_go_returns_to_actioning(self, partner, other_partner, supervisor):
        case = CaseFactory(status=S.AWAITING_REMOVAL)
        notice = make_notice(partner, [case])
        make_notice(other_partner, [case], kind=NoticeKind.POLICE_REFERRAL, state=N.QUEUED)
        responses.dispute(notice, actor=partner, reason="Lawful.")

        responses.uphold(notice, actor=supervisor)

        assert Case.objects.get(pk=case.pk).status == S.ACTIONING

    def test_a_case_disputed_in_another_notice_stays_under_dispute(self, partner, other_partner, supervisor):
        case = CaseFactory(status=S.AWAITING_REMOVAL)
        notice = make_notice(partner, [case])
        other = make_notice(other_partner, [case], kind=NoticeKind.HOTLINE_REFERRAL)
        responses.dispute(notice, actor=partner, reason="Lawful.")
        responses.dispute(other, actor=other_partner, reason="Lawful here too.")

        responses.uphold(notice, actor=supervisor)

        assert Case.objects.get(pk=case.pk).status == S.UNDER_DISPUTE

    def test_an_analyst_may_not_decide(self, disputed, analyst):
        refused(lambda: responses.uphold(disputed, actor=analyst), PermissionDenied)

    def test_a_supervisor_of_another_queue_finds_no_such_notice(self, disputed, member):
        elsewhere = member(roles.SUPERVISOR, queue=QueueFactory())

        refused(lambda: responses.uphold(disputed, actor=elsewhere), Http404)

    def test_the_partner_cannot_decide_its_own_dispute(self, disputed, partner):
        refused(lambda: responses.uphold(disputed, actor=partner), PermissionDenied)

    def test_only_a_disputed_notice_is_decided(self, partner, supervisor):
        notice = make_notice(partner)

        refused(lambda: responses.uphold(notice, actor=supervisor), ReviewError, "Only a disputed notice")

    def test_a_second_dispute_after_the_decision_is_refused(self, disputed, partner, supervisor):
        responses.uphold(disputed, actor=supervisor)

        refused(lambda: responses.dispute(disputed, actor=partner, reason="Still lawful."), ReviewError,
                "decided")


@pytest.mark.django_db
class TestWithdraw:
    def test_the_notice_is_withdrawn_the_cases_closed_and_the_recipient_told(self, disputed, partner, supervisor):
        responses.withdraw(disputed, actor=supervisor, note="You are right: we withdraw the notice.")

        notice = Notice.objects.get(pk=disputed.pk)
        assert notice.state == N.WITHDRAWN and notice.withdrawn_at is not None
        cases = [item.case for item in responses.notice_items(notice)]
        assert {(c.status, c.close_reason) for c in cases} == {(S.CLOSED, "Notice withdrawn after a dispute")}
        assert all(c.closed_at == notice.withdrawn_at for c in cases)
        assert SupervisorTask.objects.get().resolved_at is not None
        [told] = outcome_notices(partner)
        assert told.payload["dispute"]["outcome"] == "withdrawn"
        [event] = events(A.NOTICE_WITHDRAWN)
        assert event.data["note"] == "You are right: we withdraw the notice."
        assert len(events(A.CASE_CLOSED)) == 2

    def test_a_withdrawn_notice_takes_no_more_answers(self, disputed, partner, supervisor):
        responses.withdraw(disputed, actor=supervisor)

        for answer in (lambda: responses.acknowledge(disputed, actor=partner),
                       lambda: responses.report_removed(disputed, actor=partner),
                       lambda: responses.dispute(disputed, actor=partner, reason="Again.")):
            refused(answer, ReviewError, "withdrawn")
        refused(lambda: responses.uphold(disputed, actor=supervisor), ReviewError)

    def test_an_inactive_partner_is_not_told_but_the_decision_stands(self, disputed, partner, supervisor):
        Partner.objects.filter(pk=partner.pk).update(is_active=False)

        responses.withdraw(disputed, actor=supervisor)

        assert Notice.objects.get(pk=disputed.pk).state == N.WITHDRAWN
        assert outcome_notices(partner) == []
        assert events(A.NOTICE_WITHDRAWN)[0].data["outcome_notice"] == ""

    def test_a_long_note_is_refused(self, disputed, supervisor):
        refused(lambda: responses.withdraw(disputed, actor=supervisor, note="x" * 2001), ReviewError,
                "2,000 characters")


# --- an analyst's check of removal --------------------------------------------------------------------------------


@pytest.mark.django_db
class TestAnalystRemoval:
    def test_an_analyst_who_sees_it_gone_records_the_removal(self, analyst):
        case = CaseFactory(status=S.AWAITING_REMOVAL)

        responses.record_removal_verified(case, actor=analyst)

        assert Case.objects.get(pk=case.pk).status == S.REMOVAL_OBSERVED
        [event] = events(A.CASE_REMOVAL_OBSERVED)
        assert (event.actor_id, event.data["source"], event.data["from"]) == (
            str(analyst.pk), "analyst", S.AWAITING_REMOVAL)
        before = snapshot()
        responses.record_removal_verified(case, actor=analyst)  # again: nothing more
        assert snapshot() == before

    def test_a_case_not_waiting_for_removal_cannot_be_seen_removed(self, analyst):
        case = CaseFactory(status=S.ACTIONING)

        refused(lambda: responses.record_removal_verified(case, actor=analyst), ReviewError,
                "not waiting for removal")

    def test_a_case_outside_the_analysts_queues_does_not_exist_for_them(self, member):
        outsider = member(roles.ANALYST, queue=QueueFactory())
        case = CaseFactory(status=S.AWAITING_REMOVAL)

        refused(lambda: responses.record_removal_verified(case, actor=outsider), Http404)

    @pytest.mark.parametrize("role", [roles.AUDITOR, roles.WELFARE_OFFICER])
    def test_roles_that_do_not_work_cases_are_refused(self, member, role):
        user = member(role)
        case = CaseFactory(status=S.AWAITING_REMOVAL)

        refused(lambda: responses.record_removal_verified(case, actor=user), PermissionDenied)

    def test_a_partner_cannot_check_removal_itself(self, partner):
        case = CaseFactory(status=S.AWAITING_REMOVAL)

        refused(lambda: responses.record_removal_verified(case, actor=partner), PermissionDenied)

    def test_a_confirmed_removal_closes_the_case(self, analyst):
        case = CaseFactory(status=S.REMOVAL_OBSERVED)

        responses.confirm_removal(case, actor=analyst)

        case.refresh_from_db()
        assert (case.status, case.close_reason) == (S.CLOSED, "Removed") and case.closed_at is not None
        [removed] = events(A.CASE_REMOVED)
        [closed] = events(A.CASE_CLOSED)
        assert (removed.data["to"], closed.data["from"], closed.data["to"]) == (S.REMOVED, S.REMOVED, S.CLOSED)
        before = snapshot()
        responses.confirm_removal(case, actor=analyst)
        assert snapshot() == before

    def test_confirming_the_last_removal_of_a_referral_from_an_ntd_tells_that_ntd(self, analyst):
        hotline = make_partner("Hotline GB", kind=Partner.Kind.HOTLINE, country="GB", runs_ntd=True,
                               ntd_url="https://ntd.hotline-gb.example")
        filed = intake.file_partner_report(
            partner=hotline, urls=[intake.ReportedURL(u, normalise(u)) for u in ("https://a.example/1",)],
            details=intake.ReportDetails(material_kind="images"), channel=Report.Channel.API,
            partner_reference="N-7K3M-QX9P")
        case = filed.report.cases.get()
        Case.objects.filter(pk=case.pk).update(status=S.REMOVAL_OBSERVED)
        before = Notice.objects.filter(kind=NoticeKind.STATUS_UPDATE, partner=hotline).count()

        responses.confirm_removal(case, actor=analyst)

        [update] = Notice.objects.filter(kind=NoticeKind.STATUS_UPDATE, partner=hotline).order_by("-pk")[:1]
        assert Notice.objects.filter(kind=NoticeKind.STATUS_UPDATE, partner=hotline).count() == before + 1
        assert update.payload["path"] == "/api/v1/notices/N-7K3M-QX9P/removed"

    def test_removal_not_observed_cannot_be_confirmed(self, analyst):
        case = CaseFactory(status=S.AWAITING_REMOVAL)

        refused(lambda: responses.confirm_removal(case, actor=analyst), ReviewError, "no removal to confirm")

    def test_a_rejected_removal_waits_again_and_reopens_the_notice(self, partner, analyst):
        notice = make_notice(partner, count=1)
        responses.report_removed(notice, actor=partner)
        case = responses.notice_items(notice)[0].case

        responses.reject_removal(case, actor=analyst, note="The page still shows the material.")

        case.refresh_from_db()
        notice.refresh_from_db()
        assert case.status == S.AWAITING_REMOVAL
        assert (notice.state, notice.actioned_at) == (N.ACKNOWLEDGED, None)
        assert responses.notice_items(notice)[0].removal_reported_at is None
        [event] = events(A.CASE_REMOVAL_REJECTED)
        assert event.data["reason"] == "The page still shows the material."
        assert event.data["notices"] == [notice.reference]

        responses.report_removed(notice, actor=partner)  # the recipient can report it again

        assert Notice.objects.get(pk=notice.pk).state == N.ACTIONED

    @pytest.mark.parametrize("note", ["", "  ", "x" * 501])
    def test_a_rejection_needs_a_reason(self, analyst, note):
        case = CaseFactory(status=S.REMOVAL_OBSERVED)

        refused(lambda: responses.reject_removal(case, actor=analyst, note=note), ReviewError)

    def test_only_observed_removal_is_rejected(self, analyst):
        case = CaseFactory(status=S.AWAITING_REMOVAL)

        refused(lambda: responses.reject_removal(case, actor=analyst, note="Still there."), ReviewError)


@pytest.mark.django_db
def test_the_authorisation_kind_has_no_dispute(partner):
    notice = make_notice(partner, kind=NoticeKind.AUTHORISATION_REQUEST, case_status=S.AWAITING_AUTHORISATION)

    refused(lambda: responses.dispute(notice, actor=partner, reason="No."), ReviewError, "cannot be disputed")


def authorisation_for(case: Case, police: Partner) -> PoliceAuthorisation:
    return PoliceAuthorisation.objects.create(case=case, police=police, fallback="wait",
                                              answer_by=timezone.now() + timedelta(hours=4),
                                              pending=[])
