"""The case life cycle (reports/services.py) and the review selectors (reports/selectors.py).

Cases are made with factories; reports that need their sources or an encrypted contact go through intake.
The concurrent test commits for real, from one connection per thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any

import factory
import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import Count
from django.http import Http404
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ntd import audit, roles
from ntd.audit import AuditEvent
from ntd.models import User
from reports import intake, selectors, services
from reports.hosting import RESOLVED, AddressInfo, Trace
from reports.models import Assessment, Case, Priority, Report
from reports.normalise import normalise
from reports.selectors import Cursor, TriageFilters
from reports.services import TRANSITIONS, AssessmentInput, ReviewError
from takedown.models import Partner
from tests.concurrency import run_at_once
from tests.reports.factories import CaseFactory, QueueFactory, Scheme, grant

S = Case.Status
EMAIL = "reporter@example.org"
DETAILS = intake.ReportDetails(material_kind="images", encountered_via="website")


# --- helpers -------------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_passwords(settings: Any) -> None:
    """No one signs in here: a cheap hasher keeps the many users these tests make from costing seconds."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def analyst(member: Callable[..., User]) -> User:
    return member()


@pytest.fixture
def other_analyst(member: Callable[..., User]) -> User:
    return member()


@pytest.fixture
def supervisor(member: Callable[..., User]) -> User:
    return member(roles.SUPERVISOR)


@pytest.fixture
def four_eyes(scheme: Scheme) -> None:
    """Policy: an illegal verdict under the international baseline needs a second analyst."""
    verdict = scheme.verdict("illegal_baseline")
    verdict.four_eyes = True
    verdict.save(update_fields=["four_eyes"])


def illegal(scheme: Scheme, **changes: Any) -> AssessmentInput:
    given = AssessmentInput(verdict=scheme.verdict("illegal_baseline"),
                            media_type=scheme.option("media_type", "images"),
                            age_group=scheme.option("age_group", "prepubescent"),
                            clause=scheme.clause("INT", "BL-1"), rationale="Meets BL-1.")
    return replace(given, **changes)


def closing(scheme: Scheme, code: str = "not_illegal") -> AssessmentInput:
    return AssessmentInput(verdict=scheme.verdict(code))


def actions(case: Case) -> list[str]:
    return list(AuditEvent.objects.filter(case_id=case.pk).order_by("seq").values_list("action", flat=True))


def events(case: Case, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(case_id=case.pk, action=action).order_by("seq"))


def fresh(case: Case) -> Case:
    return Case.objects.get(pk=case.pk)


def reported(*urls: str) -> list[intake.ReportedURL]:
    return [intake.ReportedURL(url, normalise(url)) for url in urls]


def held_by(user: User, **fields: Any) -> Case:
    """A case the user has claimed."""
    case = CaseFactory(**fields)
    return services.claim_case(case.pk, actor=user)


def in_second_opinion(scheme: Scheme, first: User, verdict: AssessmentInput | None = None) -> Case:
    """A case `first` assessed under four eyes: it waits, unheld, for a second analyst."""
    case = held_by(first)
    services.assess_case(case.pk, actor=first, assessment=verdict or illegal(scheme))
    assert fresh(case).status == S.AWAITING_SECOND_OPINION
    return case


# --- next case -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestTakeNextCase:
    def test_hands_out_the_most_urgent_case_first_by_priority_then_age_then_id(self, member):
        # given: cases in shuffled creation order; two share priority and first report time
        now = timezone.now()
        old_public = CaseFactory(priority=Priority.PUBLIC, first_reported_at=now - timedelta(days=3))
        tie_b = CaseFactory(priority=Priority.PARTNER, first_reported_at=now - timedelta(hours=1))
        child = CaseFactory(priority=Priority.CHILD_AT_RISK, first_reported_at=now)
        older_partner = CaseFactory(priority=Priority.PARTNER, first_reported_at=now - timedelta(hours=2))
        tie_a = CaseFactory(priority=Priority.PARTNER, first_reported_at=now - timedelta(hours=1))
        assert tie_b.pk < tie_a.pk

        # when: five analysts ask in turn
        handed = [services.take_next_case(actor=member()) for _ in range(5)]

        # then
        assert [case.pk for case in handed] == [child.pk, older_partner.pk, tie_b.pk, tie_a.pk, old_public.pk]

    def test_claims_the_case_for_the_actor(self, analyst):
        case = CaseFactory()
        before = timezone.now()

        handed = services.take_next_case(actor=analyst)

        case = fresh(case)
        assert handed.pk == case.pk
        assert (case.status, case.assignee_id) == (S.IN_REVIEW, analyst.pk)
        assert before <= case.claimed_at <= timezone.now()
        assert case.claim_expires_at == case.claimed_at + services.claim_idle_time()

    def test_never_hands_out_a_case_from_a_queue_the_actor_is_not_granted(self, analyst):
        # given: the most urgent case is in a queue the analyst may not work
        elsewhere = CaseFactory(queue=QueueFactory(), priority=Priority.CHILD_AT_RISK)
        mine = CaseFactory(priority=Priority.PUBLIC)

        # when / then
        assert services.take_next_case(actor=analyst).pk == mine.pk
        assert fresh(elsewhere).assignee_id is None

    def test_gives_none_when_only_ungranted_queues_have_cases(self, analyst):
        elsewhere = CaseFactory(queue=QueueFactory())

        assert services.take_next_case(actor=analyst) is None
        assert fresh(elsewhere).assignee_id is None

    def test_gives_back_the_case_the_actor_holds_instead_of_a_new_one(self, analyst):
        # given: the analyst holds a public report while a child-at-risk case waits
        held = held_by(analyst, priority=Priority.PUBLIC)
        CaseFactory(priority=Priority.CHILD_AT_RISK)
        Case.objects.filter(pk=held.pk).update(claim_expires_at=timezone.now() + timedelta(minutes=1))

        # when
        handed = services.take_next_case(actor=analyst)

        # then: the same case, its idle clock restarted, and no second claim
        assert handed.pk == held.pk
        assert fresh(held).claim_expires_at > timezone.now() + services.claim_idle_time() - timedelta(minutes=1)
        assert Case.objects.filter(assignee=analyst).count() == 1
        assert actions(held).count(audit.Action.CASE_CLAIMED) == 1

    def test_gives_none_when_nothing_is_claimable(self, analyst, other_analyst):
        held_by(other_analyst)
        CaseFactory(status=S.ACTIONING)
        CaseFactory(status=S.AWAITING_DECISION)
        CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now())

        assert services.take_next_case(actor=analyst) is None

    def test_never_hands_a_second_opinion_to_its_first_assessor(self, scheme, four_eyes, analyst, other_analyst):
        # given: the analyst's own assessment waits for a second opinion, and nothing else waits
        case = in_second_opinion(scheme, analyst)

        # when / then: not for them
        assert services.take_next_case(actor=analyst) is None
        # but for someone else, still waiting for their opinion
        handed = services.take_next_case(actor=other_analyst)
        assert handed.pk == case.pk
        assert (fresh(case).status, fresh(case).assignee_id) == (S.AWAITING_SECOND_OPINION, other_analyst.pk)

    @pytest.mark.parametrize("role", [None, roles.WELFARE_OFFICER, roles.AUDITOR])
    def test_refuses_a_user_without_the_role_permission(self, member, role):
        user = member(role)  # granted the queue, but the role may not work cases
        case = CaseFactory()

        with pytest.raises(PermissionDenied):
            services.take_next_case(actor=user)
        assert fresh(case).assignee_id is None

    def test_writes_the_claim_to_the_audit_log(self, analyst):
        case = CaseFactory()

        services.take_next_case(actor=analyst)

        [event] = events(case, audit.Action.CASE_CLAIMED)
        assert (event.actor_type, event.actor_id) == ("user", str(analyst.pk))
        assert event.data == {"case": case.reference, "from": S.RECEIVED, "to": S.IN_REVIEW}

    def test_a_held_case_stays_in_its_queue_when_its_trace_names_another_country(self, analyst):
        # given: the analyst holds a case; a country queue they may not work takes what is hosted in DE
        QueueFactory(hosting_countries=["DE"])
        held = held_by(analyst)

        # when: the trace finds it hosted in DE
        services.record_trace(held.pk, Trace(
            host=held.host, outcome=RESOLVED, detail="", cname_chain=(), source="test", data_date="",
            addresses=(AddressInfo("192.0.2.7", 4, "DE", 64500, "Example GmbH", ""),)))

        # then: it stays where its holder can finish it
        assert (fresh(held).queue_id, fresh(held).hosting_country) == (held.queue_id, "DE")
        services.release_case(held.pk, actor=analyst)

    def test_does_not_give_back_a_held_case_that_left_the_actors_queues(self, analyst):
        # given: the analyst holds a case, and loses the queue's grant (as through a group) while holding it
        from guardian.shortcuts import remove_perm

        held = held_by(analyst)
        waiting = CaseFactory()
        remove_perm("reports.work_queue", analyst, held.queue)
        selectors.forget_queue_grants(analyst)
        other = QueueFactory()
        grant(analyst, other)
        waiting.queue = other
        waiting.save()
        with pytest.raises(Http404):  # the analyst can no longer open, assess or release it
            services.release_case(held.pk, actor=analyst)

        # when
        handed = services.take_next_case(actor=analyst)

        # then: they get work they can do, not the case they cannot open (for ever: each call kept it alive)
        assert handed is not None
        assert handed.pk == waiting.pk


@pytest.mark.django_db(transaction=True)
class TestTakeNextCaseConcurrently:
    CASES, ANALYSTS = 1000, 20

    def test_twenty_analysts_working_through_a_thousand_cases_get_each_exactly_once(self, member, scheme,
                                                                                  default_queue):
        # given: 1,000 cases of mixed urgency, 20 analysts of the queue
        now = timezone.now()
        Case.objects.bulk_create(CaseFactory.build_batch(
            self.CASES, queue=default_queue,
            priority=factory.Iterator([Priority.PUBLIC, Priority.PARTNER, Priority.CHILD_AT_RISK]),
            first_reported_at=factory.Iterator([now - timedelta(minutes=m) for m in range(7)])))
        analysts = [member() for _ in range(self.ANALYSTS)]
        not_illegal = closing(scheme)

        def work(user: User) -> list[int]:
            done = []
            while (case := services.take_next_case(actor=user)) is not None:
                services.assess_case(case.pk, actor=user, assessment=not_illegal)
                done.append(case.pk)
            return done

        # when
        results = run_at_once([lambda user=user: work(user) for user in analysts])

        # then: every case handed out once, to one analyst, and closed
        handed = [case_id for done in results for case_id in done]
        assert len(handed) == self.CASES
        assert set(handed) == set(Case.objects.values_list("id", flat=True))
        claims = (AuditEvent.objects.filter(action=audit.Action.CASE_CLAIMED).values("case_id")
                  .annotate(n=Count("seq")).values_list("case_id", "n"))
        assert dict(claims) == dict.fromkeys(handed, 1)
        assert Case.objects.filter(status=S.NOT_ILLEGAL, closed_at__isnull=False, assignee=None).count() == self.CASES
        assert sum(1 for done in results if done) > 1  # the work really was shared


# --- claiming one case -------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestClaimCase:
    def test_claims_a_waiting_case(self, analyst):
        case = CaseFactory()

        services.claim_case(case.pk, actor=analyst)

        case = fresh(case)
        assert (case.status, case.assignee_id) == (S.IN_REVIEW, analyst.pk)
        assert actions(case) == [audit.Action.CASE_CLAIMED]

    def test_refuses_a_case_someone_else_holds(self, analyst, other_analyst):
        case = held_by(other_analyst)

        with pytest.raises(ReviewError, match="Someone else holds"):
            services.claim_case(case.pk, actor=analyst)
        assert fresh(case).assignee_id == other_analyst.pk

    @pytest.mark.parametrize("status", [S.ACTIONING, S.AWAITING_DECISION, S.CONFIRMED])
    def test_refuses_a_case_not_waiting_for_an_analyst(self, analyst, status):
        case = CaseFactory(status=status)

        with pytest.raises(ReviewError, match="not waiting for an analyst"):
            services.claim_case(case.pk, actor=analyst)
        assert (fresh(case).status, fresh(case).assignee_id) == (status, None)

    def test_refuses_a_closed_case(self, analyst):
        case = CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now())

        with pytest.raises(ReviewError):
            services.claim_case(case.pk, actor=analyst)

    def test_a_case_in_an_ungranted_queue_is_the_same_404_as_a_missing_one(self, analyst):
        hidden = CaseFactory(queue=QueueFactory())

        with pytest.raises(Http404) as not_yours:
            services.claim_case(hidden.pk, actor=analyst)
        with pytest.raises(Http404) as missing:
            services.claim_case(hidden.pk + 10_000, actor=analyst)

        assert str(not_yours.value) == str(missing.value)
        assert fresh(hidden).assignee_id is None

    def test_refuses_a_second_opinion_to_its_first_assessor(self, scheme, four_eyes, analyst):
        case = in_second_opinion(scheme, analyst)

        with pytest.raises(ReviewError, match="second opinion must come from someone else"):
            services.claim_case(case.pk, actor=analyst)
        assert fresh(case).assignee_id is None


# --- releasing ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestReleaseCase:
    def test_the_holder_gives_the_case_back_to_the_queue(self, analyst):
        case = held_by(analyst)

        services.release_case(case.pk, actor=analyst)

        case = fresh(case)
        assert (case.status, case.assignee_id, case.claimed_at, case.claim_expires_at) == (S.RECEIVED, None, None,
                                                                                            None)
        assert actions(case) == [audit.Action.CASE_CLAIMED, audit.Action.CASE_RELEASED]

    def test_a_supervisor_of_the_queue_releases_an_analysts_case(self, analyst, supervisor):
        case = held_by(analyst)

        services.release_case(case.pk, actor=supervisor)

        assert (fresh(case).status, fresh(case).assignee_id) == (S.RECEIVED, None)
        assert events(case, audit.Action.CASE_RELEASED)[0].actor_id == str(supervisor.pk)

    def test_a_supervisor_of_another_queue_may_not(self, member, analyst, default_queue):
        # given: a supervisor who supervises another queue and only works this one
        other_supervisor = member(roles.SUPERVISOR, queue=QueueFactory())
        grant(other_supervisor, default_queue, "work_queue")
        case = held_by(analyst)

        with pytest.raises(ReviewError):
            services.release_case(case.pk, actor=other_supervisor)
        assert fresh(case).assignee_id == analyst.pk

    def test_another_analyst_may_not(self, analyst, other_analyst):
        case = held_by(analyst)

        with pytest.raises(ReviewError, match="Only the analyst who holds the case"):
            services.release_case(case.pk, actor=other_analyst)
        assert (fresh(case).status, fresh(case).assignee_id) == (S.IN_REVIEW, analyst.pk)
        assert actions(case) == [audit.Action.CASE_CLAIMED]

    def test_a_released_second_opinion_waits_again_for_a_second_opinion(self, scheme, four_eyes, analyst,
                                                                        other_analyst):
        case = in_second_opinion(scheme, analyst)
        services.claim_case(case.pk, actor=other_analyst)

        services.release_case(case.pk, actor=other_analyst)

        assert (fresh(case).status, fresh(case).assignee_id) == (S.AWAITING_SECOND_OPINION, None)

    def test_refuses_a_case_no_one_holds(self, analyst):
        case = CaseFactory()

        with pytest.raises(ReviewError, match="No one holds"):
            services.release_case(case.pk, actor=analyst)


# --- reassigning -------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestReassignCase:
    def test_a_supervisor_gives_a_held_case_to_another_analyst_with_a_reason(self, supervisor, analyst,
                                                                             other_analyst):
        case = held_by(analyst)

        services.reassign_case(case.pk, actor=supervisor, to_user=other_analyst, reason="  Analyst on leave  ")

        case = fresh(case)
        assert (case.status, case.assignee_id) == (S.IN_REVIEW, other_analyst.pk)
        assert case.claim_expires_at == case.claimed_at + services.claim_idle_time()
        [event] = events(case, audit.Action.CASE_REASSIGNED)
        assert event.actor_id == str(supervisor.pk)
        assert event.data["reason"] == "Analyst on leave"
        assert event.data["to_user"] == other_analyst.pk

    def test_a_waiting_case_goes_into_review_for_the_new_analyst(self, supervisor, analyst):
        case = CaseFactory()

        services.reassign_case(case.pk, actor=supervisor, to_user=analyst, reason="Speaks the language")

        assert (fresh(case).status, fresh(case).assignee_id) == (S.IN_REVIEW, analyst.pk)

    def test_an_analyst_may_not_reassign(self, analyst, other_analyst):
        case = held_by(analyst)

        with pytest.raises(PermissionDenied):
            services.reassign_case(case.pk, actor=analyst, to_user=other_analyst, reason="Swap")
        assert fresh(case).assignee_id == analyst.pk

    def test_the_new_analyst_must_be_granted_the_queue(self, member, supervisor, analyst):
        outsider = member(queue=QueueFactory())
        case = held_by(analyst)

        with pytest.raises(ReviewError, match="may not work cases in the queue"):
            services.reassign_case(case.pk, actor=supervisor, to_user=outsider, reason="Swap")
        assert fresh(case).assignee_id == analyst.pk
        assert events(case, audit.Action.CASE_REASSIGNED) == []

    def test_the_new_holder_must_be_allowed_to_work_cases(self, member, supervisor):
        welfare_officer = member(roles.WELFARE_OFFICER)  # granted the queue, but the role does not work cases
        case = CaseFactory()

        with pytest.raises(ReviewError):
            services.reassign_case(case.pk, actor=supervisor, to_user=welfare_officer, reason="Swap")
        assert fresh(case).assignee_id is None

    @pytest.mark.parametrize("reason", ["", "   "])
    def test_a_reason_is_required(self, supervisor, analyst, other_analyst, reason):
        case = held_by(analyst)

        with pytest.raises(ReviewError, match="Give a reason"):
            services.reassign_case(case.pk, actor=supervisor, to_user=other_analyst, reason=reason)
        assert fresh(case).assignee_id == analyst.pk
        assert events(case, audit.Action.CASE_REASSIGNED) == []

    def test_a_second_opinion_is_not_given_to_its_first_assessor(self, scheme, four_eyes, supervisor, analyst):
        case = in_second_opinion(scheme, analyst)

        with pytest.raises(ReviewError, match="assessed this case already"):
            services.reassign_case(case.pk, actor=supervisor, to_user=analyst, reason="Swap")
        assert fresh(case).assignee_id is None

    def test_a_case_past_review_is_not_reassigned(self, supervisor, analyst):
        case = CaseFactory(status=S.ACTIONING)

        with pytest.raises(ReviewError):
            services.reassign_case(case.pk, actor=supervisor, to_user=analyst, reason="Swap")


# --- idle claims ---------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestExpireClaims:
    IDLE = timedelta(minutes=30)

    def test_an_idle_claim_goes_back_to_the_queue_and_a_fresh_one_stays(self, settings, analyst, other_analyst):
        settings.CASE_CLAIM_IDLE_MINUTES = 30
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            idle = held_by(analyst)
        with time_machine.travel(start + timedelta(minutes=20), tick=False):
            busy = held_by(other_analyst)

        # when: 31 minutes after the first claim
        expired = services.expire_claims(now=start + timedelta(minutes=31))

        # then
        assert expired == 1
        idle, busy = fresh(idle), fresh(busy)
        assert (idle.status, idle.assignee_id, idle.claimed_at, idle.claim_expires_at) == (S.RECEIVED, None, None,
                                                                                            None)
        assert (busy.status, busy.assignee_id) == (S.IN_REVIEW, other_analyst.pk)
        [event] = events(idle, audit.Action.CASE_CLAIM_EXPIRED)
        assert (event.actor_type, event.actor_id) == ("system", "")
        assert event.data["holder"] == analyst.pk
        assert (event.data["from"], event.data["to"]) == (S.IN_REVIEW, S.RECEIVED)
        assert events(busy, audit.Action.CASE_CLAIM_EXPIRED) == []

    def test_keeping_the_claim_alive_restarts_its_idle_clock(self, settings, analyst):
        settings.CASE_CLAIM_IDLE_MINUTES = 30
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            case = held_by(analyst)
        with time_machine.travel(start + timedelta(minutes=20), tick=False):
            services.keep_claim_alive(fresh(case), actor=analyst)

        assert services.expire_claims(now=start + timedelta(minutes=31)) == 0
        assert fresh(case).assignee_id == analyst.pk
        assert services.expire_claims(now=start + timedelta(minutes=51)) == 1
        assert fresh(case).assignee_id is None

    def test_only_the_holder_keeps_a_claim_alive(self, settings, analyst, other_analyst):
        settings.CASE_CLAIM_IDLE_MINUTES = 30
        start = timezone.now()
        with time_machine.travel(start, tick=False):
            case = held_by(analyst)
        with time_machine.travel(start + timedelta(minutes=20), tick=False):
            services.keep_claim_alive(fresh(case), actor=other_analyst)

        assert services.expire_claims(now=start + timedelta(minutes=31)) == 1

    def test_an_idle_second_opinion_waits_again_for_a_second_opinion(self, scheme, four_eyes, analyst,
                                                                      other_analyst):
        case = in_second_opinion(scheme, analyst)
        services.claim_case(case.pk, actor=other_analyst)

        assert services.expire_claims(now=timezone.now() + self.IDLE + timedelta(minutes=1)) == 1

        assert (fresh(case).status, fresh(case).assignee_id) == (S.AWAITING_SECOND_OPINION, None)

    def test_works_through_more_than_one_batch(self, member):
        cases = [held_by(member()) for _ in range(5)]

        assert services.expire_claims(now=timezone.now() + self.IDLE + timedelta(minutes=1), batch=2) == 5

        assert Case.objects.filter(pk__in=[c.pk for c in cases], assignee__isnull=False).count() == 0


# --- assessing -----------------------------------------------------------------------------------------------------


def _inactive(thing: Any) -> Any:
    thing.active = False
    thing.save(update_fields=["active"])
    return thing


INVALID_ASSESSMENTS = [
    pytest.param(lambda s: illegal(s, clause=None), "Choose the clause", id="illegal-without-clause"),
    pytest.param(lambda s: illegal(s, verdict=s.verdict("illegal_national")), "is not part of",
                 id="clause-of-another-jurisdiction"),
    pytest.param(lambda s: illegal(s, media_type=None), "needs the media type", id="illegal-without-media-type"),
    pytest.param(lambda s: illegal(s, age_group=None), "needs the media type", id="illegal-without-age-group"),
    pytest.param(lambda s: replace(closing(s), clause=s.clause("INT", "BL-1")), "relies on no clause",
                 id="clause-on-a-non-illegal-verdict"),
    pytest.param(lambda s: illegal(s, media_type=s.option("age_group", "prepubescent")), "is not a media type",
                 id="option-of-the-wrong-field"),
    pytest.param(lambda s: illegal(s, gender=s.option("site_type", "forum")), "is not a gender",
                 id="gender-option-of-the-wrong-field"),
    pytest.param(lambda s: AssessmentInput(verdict=_inactive(s.verdict("not_illegal"))), "no longer in use",
                 id="inactive-verdict"),
    pytest.param(lambda s: illegal(s, media_type=_inactive(s.option("media_type", "images"))), "is not a media type",
                 id="inactive-option"),
    pytest.param(lambda s: illegal(s, clause=_inactive(s.clause("INT", "BL-1"))), "is not part of",
                 id="inactive-clause"),
    pytest.param(lambda s: illegal(s, rationale="x" * 1001), "under 1,000 characters", id="rationale-too-long"),
]


@pytest.mark.django_db
class TestAssessCase:
    @pytest.mark.parametrize(("given", "message"), INVALID_ASSESSMENTS)
    def test_an_invalid_assessment_changes_nothing(self, scheme, analyst, given, message):
        # given
        case = held_by(analyst)
        assessment = given(scheme)

        # when
        with pytest.raises(ReviewError, match=message):
            services.assess_case(case.pk, actor=analyst, assessment=assessment)

        # then
        assert not Assessment.objects.filter(case=case).exists()
        assert (fresh(case).status, fresh(case).assignee_id) == (S.IN_REVIEW, analyst.pk)
        assert actions(case) == [audit.Action.CASE_CLAIMED]

    def test_the_valid_baseline_is_accepted(self, scheme, analyst):
        # the control for the cases above: only the one thing changed made them invalid
        case = held_by(analyst)

        services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))

        assert Assessment.objects.filter(case=case).count() == 1

    def test_refuses_a_case_the_actor_has_not_claimed(self, scheme, analyst):
        case = CaseFactory()

        with pytest.raises(ReviewError, match="Claim the case"):
            services.assess_case(case.pk, actor=analyst, assessment=closing(scheme))
        assert not Assessment.objects.filter(case=case).exists()
        assert fresh(case).status == S.RECEIVED

    def test_refuses_a_case_someone_else_holds(self, scheme, analyst, other_analyst):
        case = held_by(other_analyst)

        with pytest.raises(ReviewError, match="Claim the case"):
            services.assess_case(case.pk, actor=analyst, assessment=closing(scheme))
        assert not Assessment.objects.filter(case=case).exists()

    def test_refuses_a_user_without_the_role_permission(self, scheme, member, analyst):
        case = held_by(analyst)
        Case.objects.filter(pk=case.pk).update(assignee=(auditor := member(roles.AUDITOR)))

        with pytest.raises(PermissionDenied):
            services.assess_case(case.pk, actor=auditor, assessment=closing(scheme))

    def test_without_four_eyes_an_illegal_verdict_goes_to_actioning(self, scheme, analyst):
        case = held_by(analyst)

        recorded = services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))

        case = fresh(case)
        assert (case.status, case.assignee_id, case.closed_at) == (S.ACTIONING, None, None)
        assert (recorded.kind, recorded.verdict.code, recorded.assessor_id) == (Assessment.Kind.FIRST,
                                                                               "illegal_baseline", analyst.pk)
        assert (recorded.media_type.code, recorded.age_group.code, recorded.clause.code) == ("images", "prepubescent",
                                                                                             "BL-1")
        # then the notices issue routes it: unknown hosting here, so a supervisor task (takedown.services)
        assert actions(case) == [audit.Action.CASE_CLAIMED, audit.Action.CASE_ASSESSED, audit.Action.CASE_CONFIRMED,
                                 audit.Action.CASE_ACTIONING, audit.Action.CASE_ROUTED,
                                 audit.Action.SUPERVISOR_TASK_OPENED]
        assessed = events(case, audit.Action.CASE_ASSESSED)[0].data
        assert (assessed["verdict"], assessed["clause"], assessed["kind"]) == ("illegal_baseline", "BL-1", "first")

    @pytest.mark.parametrize(("code", "status"), [("not_illegal", S.NOT_ILLEGAL), ("unavailable", S.UNAVAILABLE),
                                                  ("out_of_remit", S.OUT_OF_REMIT)])
    def test_a_closing_verdict_closes_the_case(self, scheme, analyst, code, status):
        case = held_by(analyst)

        services.assess_case(case.pk, actor=analyst, assessment=closing(scheme, code))

        case = fresh(case)
        assert (case.status, case.assignee_id) == (status, None)
        assert case.closed_at is not None
        assert case.close_reason == scheme.verdict(code).label
        assert actions(case)[-2:] == [audit.Action.CASE_ASSESSED, audit.Action.CASE_CLOSED]

    def test_with_four_eyes_the_first_assessment_waits_unheld_for_a_second(self, scheme, four_eyes, analyst):
        case = held_by(analyst)

        services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))

        case = fresh(case)
        assert (case.status, case.assignee_id, case.claimed_at) == (S.AWAITING_SECOND_OPINION, None, None)
        assert actions(case) == [audit.Action.CASE_CLAIMED, audit.Action.CASE_ASSESSED,
                                 audit.Action.CASE_SECOND_OPINION_REQUESTED]

    def test_a_second_analyst_who_agrees_sends_the_case_to_actioning(self, scheme, four_eyes, analyst,
                                                                     other_analyst):
        case = in_second_opinion(scheme, analyst)
        assert services.take_next_case(actor=other_analyst).pk == case.pk

        recorded = services.assess_case(case.pk, actor=other_analyst, assessment=illegal(scheme))

        assert recorded.kind == Assessment.Kind.SECOND
        assert (fresh(case).status, fresh(case).assignee_id) == (S.ACTIONING, None)
        assert list(case.assessments.values_list("kind", "assessor_id")) == [("first", analyst.pk),
                                                                              ("second", other_analyst.pk)]

    def test_a_second_analyst_who_disagrees_leaves_it_to_a_supervisor(self, scheme, four_eyes, analyst,
                                                                      other_analyst):
        case = in_second_opinion(scheme, analyst)
        services.claim_case(case.pk, actor=other_analyst)

        services.assess_case(case.pk, actor=other_analyst, assessment=closing(scheme))

        case = fresh(case)
        assert (case.status, case.assignee_id, case.closed_at) == (S.AWAITING_DECISION, None, None)
        [event] = events(case, audit.Action.CASE_ASSESSMENTS_DISAGREE)
        assert (event.data["first"], event.data["second"]) == ("illegal_baseline", "not_illegal")
        assert services.take_next_case(actor=analyst) is None  # no one takes a disagreement from the queue

    def test_the_first_assessor_cannot_give_the_second_opinion(self, scheme, four_eyes, analyst):
        case = in_second_opinion(scheme, analyst)
        Case.objects.filter(pk=case.pk).update(assignee=analyst)  # however they came to hold it

        with pytest.raises(ReviewError, match="someone other than the first assessor"):
            services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))
        assert case.assessments.count() == 1

    def test_refuses_a_case_past_assessment(self, scheme, analyst):
        case = held_by(analyst)
        services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))
        Case.objects.filter(pk=case.pk).update(assignee=analyst)

        with pytest.raises(ReviewError, match="not waiting for an assessment"):
            services.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))


@pytest.mark.django_db
class TestDecideCase:
    @pytest.fixture
    def disputed(self, scheme: Scheme, four_eyes: None, analyst: User, other_analyst: User) -> Case:
        case = in_second_opinion(scheme, analyst)
        services.claim_case(case.pk, actor=other_analyst)
        services.assess_case(case.pk, actor=other_analyst, assessment=closing(scheme))
        assert fresh(case).status == S.AWAITING_DECISION
        return case

    def test_a_supervisor_confirms_an_illegal_verdict(self, scheme, supervisor, disputed):
        recorded = services.decide_case(disputed.pk, actor=supervisor, assessment=illegal(scheme))

        assert (recorded.kind, recorded.assessor_id) == (Assessment.Kind.DECISION, supervisor.pk)
        assert fresh(disputed).status == S.ACTIONING
        assert actions(disputed)[-6:] == [audit.Action.CASE_ASSESSED, audit.Action.CASE_DECIDED,
                                          audit.Action.CASE_CONFIRMED, audit.Action.CASE_ACTIONING,
                                          audit.Action.CASE_ROUTED, audit.Action.SUPERVISOR_TASK_OPENED]

    def test_a_supervisor_who_gave_one_of_the_assessments_may_not_decide(self, scheme, disputed):
        # given: a supervisor of the queue who gave the second opinion
        second = disputed.assessments.get(kind=Assessment.Kind.SECOND).assessor
        roles.assign_role(second, roles.SUPERVISOR)
        grant(second, disputed.queue, "supervise_queue")

        with pytest.raises(ReviewError, match="another supervisor decides"):
            services.decide_case(disputed.pk, actor=User.objects.get(pk=second.pk), assessment=illegal(scheme))
        assert fresh(disputed).status == S.AWAITING_DECISION

    def test_a_supervisor_closes_the_case(self, scheme, supervisor, disputed):
        services.decide_case(disputed.pk, actor=supervisor, assessment=closing(scheme))

        case = fresh(disputed)
        assert case.status == S.NOT_ILLEGAL
        assert case.closed_at is not None
        assert list(case.assessments.values_list("kind", flat=True)) == ["first", "second", "decision"]

    def test_the_decision_is_validated_like_an_assessment(self, scheme, supervisor, disputed):
        with pytest.raises(ReviewError, match="Choose the clause"):
            services.decide_case(disputed.pk, actor=supervisor, assessment=illegal(scheme, clause=None))
        assert fresh(disputed).status == S.AWAITING_DECISION
        assert disputed.assessments.count() == 2

    def test_an_analyst_may_not_decide(self, scheme, analyst, disputed):
        with pytest.raises(PermissionDenied):
            services.decide_case(disputed.pk, actor=analyst, assessment=closing(scheme))
        assert fresh(disputed).status == S.AWAITING_DECISION

    def test_a_supervisor_of_another_queue_gets_a_404(self, scheme, member, disputed):
        elsewhere = member(roles.SUPERVISOR, queue=QueueFactory())

        with pytest.raises(Http404):
            services.decide_case(disputed.pk, actor=elsewhere, assessment=closing(scheme))

    @pytest.mark.parametrize("status", [S.RECEIVED, S.AWAITING_SECOND_OPINION, S.ACTIONING])
    def test_only_a_case_awaiting_decision_is_decided(self, scheme, supervisor, status):
        case = CaseFactory(status=status)

        with pytest.raises(ReviewError, match="waits for a supervisor"):
            services.decide_case(case.pk, actor=supervisor, assessment=closing(scheme))
        assert not Assessment.objects.filter(case=case).exists()
        assert fresh(case).status == status


# --- supervision: duplicates and reopening -----------------------------------------------------------------------


@pytest.mark.django_db
class TestCloseDuplicates:
    def test_closes_each_as_a_duplicate_of_the_original(self, supervisor, analyst):
        original = CaseFactory()
        waiting = CaseFactory()
        held = held_by(analyst)

        closed = services.close_duplicates([waiting.pk, held.pk, original.pk], actor=supervisor,
                                           duplicate_of=original, reason="Same gallery, mirror host")

        assert sorted(case.pk for case in closed) == sorted([waiting.pk, held.pk])
        for case in (fresh(waiting), fresh(held)):
            assert (case.status, case.duplicate_of_id, case.assignee_id) == (S.CLOSED, original.pk, None)
            assert case.closed_at is not None
            assert case.close_reason == f"Duplicate of {original.reference}"
            [event] = events(case, audit.Action.CASE_CLOSED_AS_DUPLICATE)
            assert event.data["duplicate_of"] == original.reference
            assert event.data["reason"] == "Same gallery, mirror host"
        assert (fresh(original).status, fresh(original).closed_at) == (S.RECEIVED, None)

    def test_refuses_a_case_past_review(self, supervisor):
        original = CaseFactory()
        actioning = CaseFactory(status=S.ACTIONING)

        with pytest.raises(ReviewError, match=actioning.reference):
            services.close_duplicates([actioning.pk], actor=supervisor, duplicate_of=original)
        assert (fresh(actioning).status, fresh(actioning).duplicate_of_id) == (S.ACTIONING, None)

    @pytest.mark.parametrize("chosen", [[], ["original"]])
    def test_refuses_an_empty_selection(self, supervisor, chosen):
        original = CaseFactory()
        ids = [original.pk for _ in chosen]

        with pytest.raises(ReviewError, match="at least one case"):
            services.close_duplicates(ids, actor=supervisor, duplicate_of=original)
        assert fresh(original).closed_at is None

    def test_is_all_or_nothing(self, supervisor):
        # given: the first case (by id) may be closed, the second may not
        original = CaseFactory()
        fine = CaseFactory()
        refused = CaseFactory(status=S.ACTIONING)
        assert fine.pk < refused.pk  # so the fine one is closed before the refusal

        # when
        with pytest.raises(ReviewError):
            services.close_duplicates([fine.pk, refused.pk], actor=supervisor, duplicate_of=original)

        # then: the fine one was rolled back too
        fine = fresh(fine)
        assert (fine.status, fine.closed_at, fine.duplicate_of_id) == (S.RECEIVED, None, None)
        assert events(fine, audit.Action.CASE_CLOSED_AS_DUPLICATE) == []

    def test_an_analyst_may_not(self, analyst):
        original, other = CaseFactory(), CaseFactory()

        with pytest.raises(PermissionDenied):
            services.close_duplicates([other.pk], actor=analyst, duplicate_of=original)
        assert fresh(other).closed_at is None

    def test_refuses_an_original_that_is_itself_closed_as_a_duplicate(self, supervisor):
        # given: b was closed as a duplicate of a
        a, b = CaseFactory(), CaseFactory()
        services.close_duplicates([b.pk], actor=supervisor, duplicate_of=a)

        # when / then: closing a as a duplicate of b would leave the material with no open case and no assessment
        with pytest.raises(ReviewError):
            services.close_duplicates([a.pk], actor=supervisor, duplicate_of=fresh(b))
        assert fresh(a).closed_at is None


@pytest.mark.django_db
class TestReopenCase:
    def test_a_supervisor_sends_a_closed_case_back_to_the_queue(self, scheme, supervisor, analyst):
        case = held_by(analyst)
        services.assess_case(case.pk, actor=analyst, assessment=closing(scheme))

        services.reopen_case(case.pk, actor=supervisor, reason="  New evidence from a partner  ")

        case = fresh(case)
        assert (case.status, case.closed_at, case.close_reason, case.assignee_id) == (S.RECEIVED, None, "", None)
        [event] = events(case, audit.Action.CASE_REOPENED)
        assert event.data["reason"] == "New evidence from a partner"
        assert (event.data["from"], event.data["to"]) == (S.NOT_ILLEGAL, S.RECEIVED)
        assert services.take_next_case(actor=analyst).pk == case.pk

    def test_a_reopened_duplicate_is_no_longer_a_duplicate(self, supervisor):
        original, duplicate = CaseFactory(), CaseFactory()
        services.close_duplicates([duplicate.pk], actor=supervisor, duplicate_of=original)

        services.reopen_case(duplicate.pk, actor=supervisor, reason="Not the same material after all")

        assert (fresh(duplicate).status, fresh(duplicate).duplicate_of_id) == (S.RECEIVED, None)

    def test_refuses_while_the_url_has_another_open_case(self, supervisor):
        closed = CaseFactory(url="https://same.example/a", status=S.NOT_ILLEGAL, closed_at=timezone.now())
        open_one = CaseFactory(url="https://same.example/a")
        assert closed.url_key == open_one.url_key

        with pytest.raises(ReviewError, match=open_one.reference):
            services.reopen_case(closed.pk, actor=supervisor, reason="Looks illegal after all")

        assert fresh(closed).status == S.NOT_ILLEGAL
        assert fresh(closed).closed_at is not None
        assert events(closed, audit.Action.CASE_REOPENED) == []

    def test_refuses_an_open_case(self, supervisor):
        case = CaseFactory()

        with pytest.raises(ReviewError, match="The case is open"):
            services.reopen_case(case.pk, actor=supervisor, reason="Again")

    def test_a_reason_is_required(self, supervisor):
        case = CaseFactory(status=S.CLOSED, closed_at=timezone.now())

        with pytest.raises(ReviewError, match="Give a reason"):
            services.reopen_case(case.pk, actor=supervisor, reason=" ")
        assert fresh(case).status == S.CLOSED

    def test_an_analyst_may_not(self, analyst):
        case = CaseFactory(status=S.CLOSED, closed_at=timezone.now())

        with pytest.raises(PermissionDenied):
            services.reopen_case(case.pk, actor=analyst, reason="Again")


# --- the reporter's contact ---------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestRevealReporterContact:
    @pytest.fixture
    def identified(self) -> Report:
        return intake.file_public_report(urls=reported("https://gallery.example/a"), details=DETAILS,
                                         contact_email=EMAIL).report

    def test_a_supervisor_of_the_queue_gets_the_address_and_the_reveal_is_audited(self, supervisor, identified):
        address = services.reveal_reporter_contact(identified.pk, actor=supervisor, reason="  Police asked  ")

        assert address == EMAIL
        [event] = AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED)
        assert (event.actor_id, event.target_type, event.target_id) == (str(supervisor.pk), "reports.report",
                                                                        str(identified.pk))
        assert event.data == {"report": identified.reference, "reason": "Police asked"}
        every_event = json.dumps(list(AuditEvent.objects.values_list("data", flat=True)))
        assert EMAIL not in every_event

    def test_an_analyst_may_not(self, analyst, identified):
        with pytest.raises(PermissionDenied):
            services.reveal_reporter_contact(identified.pk, actor=analyst, reason="Curious")
        assert not AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED).exists()

    def test_a_supervisor_without_a_grant_on_its_queue_gets_a_404(self, member, identified):
        elsewhere = member(roles.SUPERVISOR, queue=QueueFactory())

        with pytest.raises(Http404):
            services.reveal_reporter_contact(identified.pk, actor=elsewhere, reason="Police asked")
        assert not AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED).exists()

    @pytest.mark.parametrize("reason", ["", "  "])
    def test_a_reason_is_required(self, supervisor, identified, reason):
        with pytest.raises(ReviewError, match="Give a reason"):
            services.reveal_reporter_contact(identified.pk, actor=supervisor, reason=reason)
        assert not AuditEvent.objects.filter(action=audit.Action.REPORTER_CONTACT_REVEALED).exists()

    def test_an_anonymous_report_has_nothing_to_reveal(self, supervisor):
        anonymous = intake.file_public_report(urls=reported("https://gallery.example/b"), details=DETAILS,
                                              contact_email=None).report

        with pytest.raises(ReviewError, match="anonymous"):
            services.reveal_reporter_contact(anonymous.pk, actor=supervisor, reason="Police asked")


# --- selectors: the triage queue and its counts ----------------------------------------------------------------


def all_pages(user: User, filters: TriageFilters, size: int) -> list[list[int]]:
    """Every page of the triage queue, following the cursor as the page does (through its text form)."""
    pages, after = [], None
    while True:
        page = selectors.triage_page(user, filters, after=after, size=size)
        pages.append([row.case.pk for row in page.rows])
        if page.next_cursor is None:
            return pages
        after = Cursor.decode(page.next_cursor.encode())
        assert len(pages) < 100, "the cursor does not advance"


@pytest.mark.django_db
class TestTriagePage:
    @pytest.mark.parametrize("count", [23, 25])
    def test_pages_follow_urgency_with_no_row_twice_and_none_missing(self, analyst, count):
        # given: many ties, on priority and on the first report time
        now = timezone.now().replace(microsecond=123456)
        moments = [now - timedelta(hours=2), now - timedelta(hours=1), now - timedelta(hours=1), now]
        priorities = [Priority.PUBLIC, Priority.PARTNER, Priority.PARTNER, Priority.CHILD_AT_RISK, Priority.PUBLIC]
        for n in range(count):
            CaseFactory(priority=priorities[n % 5], first_reported_at=moments[n % 4])
        CaseFactory(queue=QueueFactory(), priority=Priority.CHILD_AT_RISK)  # not the analyst's
        expected = [case.pk for case in sorted(Case.objects.filter(queue_id__in=selectors.queue_ids_for(analyst)),
                                               key=lambda c: (-c.priority, c.first_reported_at, c.pk))]

        # when
        pages = all_pages(analyst, TriageFilters(), size=5)

        # then
        assert [len(page) for page in pages] == [5] * (count // 5) + ([count % 5] if count % 5 else [])
        assert [case_id for page in pages for case_id in page] == expected

    def test_an_empty_queue_is_one_empty_page(self, analyst):
        page = selectors.triage_page(analyst, TriageFilters())

        assert (page.rows, page.next_cursor) == ([], None)

    def test_a_cursor_past_every_row_gives_an_empty_page(self, analyst):
        case = CaseFactory()

        page = selectors.triage_page(analyst, TriageFilters(),
                                     after=Cursor(case.priority, case.first_reported_at, case.pk))

        assert page.rows == []

    @pytest.fixture
    def world(self, analyst: User, other_analyst: User) -> dict[str, Case]:
        """One case for each filter to find, all in the analyst's queue, plus one elsewhere."""
        german = Partner.objects.create(name="Hotline DE", kind=Partner.Kind.HOTLINE, country="DE")
        dutch = Partner.objects.create(name="Police NL", kind=Partner.Kind.LAW_ENFORCEMENT, country="NL")

        def case_of(filed: intake.Filed) -> Case:
            return Case.objects.get(pk=filed.outcomes[0].case_id)

        return {
            "public": case_of(intake.file_public_report(urls=reported("https://p.example/"), details=DETAILS,
                                                        contact_email=None)),
            "german_hotline": case_of(intake.file_partner_report(partner=german, urls=reported("https://de.example/"),
                                                                 details=DETAILS, channel=Report.Channel.API)),
            "dutch_police": case_of(intake.file_partner_report(partner=dutch, urls=reported("https://nl.example/"),
                                                               details=DETAILS, channel=Report.Channel.API)),
            "known": CaseFactory(known_url=True, priority=Priority.KNOWN_URL),
            "child": CaseFactory(child_at_risk=True, priority=Priority.CHILD_AT_RISK),
            "french_host": CaseFactory(hosting_country="FR", hosting_asn=64501),
            "in_review": held_by(other_analyst),
            "closed": CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now()),
            "elsewhere": CaseFactory(queue=QueueFactory(), known_url=True, child_at_risk=True, hosting_country="FR"),
        }

    OPEN = {"public", "german_hotline", "dutch_police", "known", "child", "french_host", "in_review"}

    @pytest.mark.parametrize(("filters", "expected"), [
        pytest.param(TriageFilters(), OPEN, id="open-by-default"),
        pytest.param(TriageFilters(statuses=(S.IN_REVIEW,)), {"in_review"}, id="status"),
        pytest.param(TriageFilters(statuses=(S.NOT_ILLEGAL,)), {"closed"}, id="closed-status"),
        pytest.param(TriageFilters(statuses=(S.RECEIVED, S.NOT_ILLEGAL)), OPEN - {"in_review"} | {"closed"},
                     id="statuses"),
        pytest.param(TriageFilters(known_url=True), {"known"}, id="known-url"),
        pytest.param(TriageFilters(known_url=False), OPEN - {"known"}, id="not-known-url"),
        pytest.param(TriageFilters(child_at_risk=True), {"child"}, id="child-at-risk"),
        pytest.param(TriageFilters(child_at_risk=False), OPEN - {"child"}, id="no-child-at-risk"),
        pytest.param(TriageFilters(source_kind="public"), {"public"}, id="source-public"),
        pytest.param(TriageFilters(source_kind=Partner.Kind.HOTLINE), {"german_hotline"}, id="source-hotline"),
        pytest.param(TriageFilters(source_kind=Partner.Kind.LAW_ENFORCEMENT), {"dutch_police"}, id="source-police"),
        pytest.param(TriageFilters(hosting_country="FR"), {"french_host"}, id="hosting-country"),
        pytest.param(TriageFilters(hosting_asn=64501), {"french_host"}, id="hosting-asn"),
        pytest.param(TriageFilters(reported_country="DE"), {"german_hotline"}, id="reported-from-DE"),
        pytest.param(TriageFilters(reported_country="NL"), {"dutch_police"}, id="reported-from-NL"),
        pytest.param(TriageFilters(reported_country="BE"), set(), id="reported-from-nowhere"),
        pytest.param(TriageFilters(known_url=True, child_at_risk=True), set(), id="filters-combine"),
    ])
    def test_filters(self, analyst, world, filters, expected):
        page = selectors.triage_page(analyst, filters)

        names = {name for name, case in world.items() if case.pk in {row.case.pk for row in page.rows}}
        assert names == expected

    def test_mine_shows_only_the_users_cases(self, analyst, other_analyst, world):
        page = selectors.triage_page(other_analyst, TriageFilters(mine=True))

        assert [row.case.pk for row in page.rows] == [world["in_review"].pk]

    def test_rows_carry_the_kinds_of_source(self, analyst, world):
        intake.file_public_report(urls=reported("https://de.example/"), details=DETAILS, contact_email=None)

        page = selectors.triage_page(analyst, TriageFilters(source_kind=Partner.Kind.HOTLINE))

        [row] = page.rows
        assert row.sources == ("hotline", "public")

    def test_the_number_of_queries_does_not_grow_with_rows(self, member, analyst):
        holders = [member() for _ in range(3)]

        def fill(total: int) -> None:
            # cases from reports (so rows have sources), a third of them held by various analysts
            have = Case.objects.count()
            urls = [f"https://q{n}.example/" for n in range(have, total)]
            for case in intake.file_public_report(urls=reported(*urls), details=DETAILS, contact_email=None).outcomes:
                if case.position % 3 == 0:
                    services.claim_case(case.case_id, actor=holders[case.position % len(holders)])

        def queries_for_a_page() -> int:
            user = User.objects.get(pk=analyst.pk)  # a fresh user: grants and permissions looked up again
            with CaptureQueriesContext(connection) as captured:
                page = selectors.triage_page(user, TriageFilters(), size=50)
                shown = [(row.case.reference, row.case.url, row.case.get_status_display(), row.case.priority,
                          row.case.queue_id, row.case.claimed_at, row.sources,
                          row.case.assignee.pseudonym if row.case.assignee else "") for row in page.rows]
            return len(captured), len(shown), sum(1 for row in page.rows if row.case.assignee_id)

        fill(5)
        few, rows, held = queries_for_a_page()
        assert (rows, held) == (5, 2)
        fill(50)
        many, rows, held = queries_for_a_page()
        assert (rows, held) == (50, 17)

        assert many == few

    def test_a_page_takes_two_queries_once_the_users_queues_are_known(self, analyst, django_assert_num_queries):
        intake.file_public_report(urls=reported(*(f"https://n{n}.example/" for n in range(20))), details=DETAILS,
                                  contact_email=None)
        selectors.queue_ids_for(analyst)

        with django_assert_num_queries(2):  # the cases with their holders, then the sources of all of them
            page = selectors.triage_page(analyst, TriageFilters(), size=10)
            assert all(row.sources == ("public",) for row in page.rows)


@pytest.mark.django_db
class TestStatusCounts:
    @pytest.fixture
    def counted(self, other_analyst: User) -> None:
        CaseFactory.create_batch(3)
        held_by(other_analyst)
        held_by(other_analyst)
        CaseFactory(status=S.ACTIONING)
        CaseFactory(status=S.NOT_ILLEGAL, closed_at=timezone.now())
        CaseFactory(status=S.CLOSED, closed_at=timezone.now())
        CaseFactory.create_batch(4, queue=QueueFactory())  # not the user's

    def test_exact_below_the_cap(self, analyst, counted):
        counts = selectors.status_counts(analyst, cap=10)

        assert list(counts) == selectors.OPEN_STATUSES
        assert {status: n for status, n in counts.items() if n} == {S.RECEIVED: 3, S.IN_REVIEW: 2, S.ACTIONING: 1}
        assert not set(counts) & {S.NOT_ILLEGAL, S.CLOSED, S.UNAVAILABLE, S.OUT_OF_REMIT}

    def test_none_above_the_cap_and_exact_at_it(self, analyst, counted):
        counts = selectors.status_counts(analyst, cap=2)

        assert (counts[S.RECEIVED], counts[S.IN_REVIEW], counts[S.ACTIONING]) == (None, 2, 1)

    def test_a_user_without_queues_counts_nothing(self, member, counted):
        counts = selectors.status_counts(member(queue=None))

        assert set(counts.values()) == {0}

    def test_counts_in_one_query(self, analyst, counted, django_assert_num_queries):
        selectors.queue_ids_for(analyst)

        with django_assert_num_queries(1):
            selectors.status_counts(analyst)


# --- the transition table --------------------------------------------------------------------------------------


class TestTransitions:
    def test_every_status_has_its_moves_and_every_move_leads_to_a_status(self):
        assert set(TRANSITIONS) == set(S.values)
        for source, targets in TRANSITIONS.items():
            assert targets <= set(S.values), source
            assert source not in targets, source

    def test_every_status_is_reachable(self):
        reachable = set().union(*TRANSITIONS.values())

        assert set(S.values) - reachable == set()

    @pytest.mark.django_db
    @pytest.mark.parametrize("source", S.values)
    def test_move_follows_the_table(self, source):
        for target in S.values:
            if target == source:
                continue
            case = CaseFactory(status=source)
            if target in TRANSITIONS[source]:
                with transaction.atomic():
                    services._move(case, target, actor="system", action=audit.Action.CASE_QUEUE_CHANGED)
                assert fresh(case).status == target  # saved: the database's status constraint agrees
                assert actions(case) == [audit.Action.CASE_QUEUE_CHANGED]
            else:
                with pytest.raises(ReviewError, match="cannot move"):
                    services._move(case, target, actor="system", action=audit.Action.CASE_QUEUE_CHANGED)
                assert fresh(case).status == source
                assert actions(case) == []
