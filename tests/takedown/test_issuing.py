"""Issuing notices on confirmation: routing, grouping per recipient, the police gate, the outcome of delivery."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.utils import timezone

from ntd import audit, roles
from ntd.audit import AuditEvent
from ntd.models import User
from reports import services as life_cycle
from reports.models import Case
from reports.services import AssessmentInput
from takedown import services
from takedown.models import (
    HostingNetwork,
    Notice,
    NoticeCase,
    NoticeKind,
    OutboxEntry,
    Partner,
    PartnerContact,
    PoliceAuthorisation,
    RoutingRule,
    SupervisorTask,
)
from tests.concurrency import run_at_once
from tests.reports.factories import CaseFactory, Scheme

pytestmark = pytest.mark.django_db
S = Case.Status
HOST_AS = 64500


@pytest.fixture(autouse=True)
def _own_country(settings: Any) -> None:
    settings.NTD_COUNTRY = "GB"
    settings.NOTICE_GROUPING_SECONDS = 120


@pytest.fixture
def partners(db: Any) -> dict[str, Partner]:
    host = Partner.objects.create(name="Example Hosting", kind="hosting_provider", country="GB")
    PartnerContact.objects.create(partner=host, channel="email", email="abuse@host.example", language="en")
    HostingNetwork.objects.create(asn=HOST_AS, name="EXAMPLE-AS", partner=host)
    police = Partner.objects.create(name="National Crime Unit", kind="law_enforcement", country="GB")
    PartnerContact.objects.create(partner=police, channel="email", email="referrals@police.example")
    hotline = Partner.objects.create(name="Hotline NL", kind="hotline", country="NL", inhope_member=True)
    PartnerContact.objects.create(partner=hotline, channel="webhook", webhook_url="https://hotline.example/hook")
    interpol = Partner.objects.create(name="International liaison", kind="international_police")
    PartnerContact.objects.create(partner=interpol, channel="email", email="liaison@intl.example")
    return {"host": host, "police": police, "hotline": hotline, "interpol": interpol}


@pytest.fixture
def analyst(member: Callable[..., User]) -> User:
    return member(roles.ANALYST)


@pytest.fixture
def supervisor(member: Callable[..., User]) -> User:
    return member(roles.SUPERVISOR, email="supervisor@hotline.test")


def illegal(scheme: Scheme) -> AssessmentInput:
    return AssessmentInput(verdict=scheme.verdict("illegal_baseline"), media_type=scheme.option("media_type", "images"),
                           age_group=scheme.option("age_group", "prepubescent"), clause=scheme.clause("INT", "BL-1"))


def confirmed(scheme: Scheme, analyst: User, **fields: Any) -> Case:
    """A case confirmed illegal by `analyst` through the life cycle (and so routed)."""
    case = CaseFactory(**fields)
    life_cycle.claim_case(case.pk, actor=analyst)
    life_cycle.assess_case(case.pk, actor=analyst, assessment=illegal(scheme))
    return Case.objects.get(pk=case.pk)


def domestic(**fields: Any) -> dict[str, Any]:
    return {"hosting_country": "GB", "hosting_asn": HOST_AS, **fields}


def notices_to(partner: Partner, kind: str | None = None) -> list[Notice]:
    found = Notice.objects.filter(partner=partner).order_by("pk")
    return list(found.filter(kind=kind) if kind else found)


class TestRoutingOnConfirmation:
    def test_a_domestic_case_gets_a_takedown_to_its_host_and_information_to_the_police(self, scheme, analyst,
                                                                                         partners):
        case = confirmed(scheme, analyst, **domestic())
        [takedown] = notices_to(partners["host"])
        [info] = notices_to(partners["police"])
        assert (takedown.kind, info.kind) == (NoticeKind.TAKEDOWN, NoticeKind.POLICE_INFORMATION)
        assert list(takedown.cases.all()) == [case] == list(info.cases.all())
        assert takedown.state == Notice.State.QUEUED and takedown.sealed_at is None
        assert OutboxEntry.objects.filter(notice=takedown, done_at=None).exists()
        assert case.status == S.ACTIONING
        routed = AuditEvent.objects.get(case_id=case.pk, action=audit.Action.CASE_ROUTED)
        assert {(r["partner"], r["kind"]) for r in routed.data["recipients"]} == {
            (partners["host"].pk, "takedown"), (partners["police"].pk, "police_information")}

    def test_a_case_hosted_where_a_partner_hotline_works_is_referred_to_it(self, scheme, analyst, partners):
        confirmed(scheme, analyst, hosting_country="NL", hosting_asn=1)
        assert [n.kind for n in notices_to(partners["hotline"])] == [NoticeKind.HOTLINE_REFERRAL]
        assert notices_to(partners["host"]) == []

    def test_a_case_hosted_where_no_hotline_works_goes_to_the_international_liaison(self, scheme, analyst,
                                                                                     partners):
        confirmed(scheme, analyst, hosting_country="BR", hosting_asn=2)
        assert [n.kind for n in notices_to(partners["interpol"])] == [NoticeKind.POLICE_REFERRAL]

    def test_unknown_hosting_becomes_a_supervisor_task_and_nothing_is_sent(self, scheme, analyst, partners):
        case = confirmed(scheme, analyst)
        assert Notice.objects.count() == 0
        [task] = SupervisorTask.objects.filter(case=case)
        assert task.kind == SupervisorTask.Kind.NO_ROUTE and task.resolved_at is None
        assert case.status == S.ACTIONING

    def test_a_child_at_risk_goes_to_the_national_police_at_once_before_anything_else(self, scheme, analyst,
                                                                                     partners):
        case = confirmed(scheme, analyst, child_at_risk=True, **domestic())
        first = Notice.objects.order_by("pk").first()
        assert (first.partner, first.kind, first.immediate) == (partners["police"], NoticeKind.POLICE_REFERRAL, True)
        assert first.due_at <= timezone.now()
        assert NoticeCase.objects.filter(case=case).count() >= 2  # and the host still gets its takedown


class TestGrouping:
    def test_cases_confirmed_within_the_window_for_one_host_share_one_notice(self, scheme, analyst, partners):
        cases = [confirmed(scheme, analyst, **domestic()) for _ in range(3)]
        [notice] = notices_to(partners["host"], NoticeKind.TAKEDOWN)
        assert sorted(notice.cases.values_list("pk", flat=True)) == sorted(c.pk for c in cases)
        assert OutboxEntry.objects.filter(notice__partner=partners["host"]).count() == 1
        added = AuditEvent.objects.filter(action=audit.Action.NOTICE_CASE_ADDED, target_id=str(notice.pk))
        assert added.count() == 2

    def test_a_case_after_the_window_starts_a_new_notice(self, scheme, analyst, partners):
        confirmed(scheme, analyst, **domestic())
        with time_machine.travel(timezone.now() + timedelta(seconds=121), tick=True):
            confirmed(scheme, analyst, **domestic())
        assert len(notices_to(partners["host"], NoticeKind.TAKEDOWN)) == 2

    def test_a_sealed_notice_takes_no_more_cases(self, scheme, analyst, partners):
        confirmed(scheme, analyst, **domestic())
        Notice.objects.filter(partner=partners["host"]).update(sealed_at=timezone.now())
        confirmed(scheme, analyst, **domestic())
        assert len(notices_to(partners["host"], NoticeKind.TAKEDOWN)) == 2

    def test_issuing_a_case_twice_to_the_same_recipient_adds_it_once(self, scheme, analyst, partners):
        case = confirmed(scheme, analyst, **domestic())
        again = services.issue_notice(partner=partners["host"], kind=NoticeKind.TAKEDOWN, cases=[case], actor=None)
        assert again == notices_to(partners["host"])[0]
        assert NoticeCase.objects.filter(case=case, partner=partners["host"]).count() == 1

    @pytest.mark.django_db(transaction=True)
    def test_cases_confirmed_at_the_same_moment_still_share_one_notice(self, scheme, partners, member):
        analysts = [member(roles.ANALYST) for _ in range(8)]
        cases = [CaseFactory(**domestic()) for _ in analysts]
        for user, case in zip(analysts, cases, strict=True):
            life_cycle.claim_case(case.pk, actor=user)

        def confirm(user: User, case: Case) -> Callable[[], Any]:
            return lambda: life_cycle.assess_case(case.pk, actor=user, assessment=illegal(scheme))

        run_at_once([confirm(user, case) for user, case in zip(analysts, cases, strict=True)])
        [notice] = notices_to(partners["host"], NoticeKind.TAKEDOWN)
        assert notice.cases.count() == 8


class TestOutcome:
    def test_sent_notices_move_their_cases_to_awaiting_removal_once_all_are_out(self, scheme, analyst, partners):
        case = confirmed(scheme, analyst, **domestic())
        takedown, info = notices_to(partners["host"])[0], notices_to(partners["police"])[0]
        services.mark_sent(takedown.pk)
        assert Case.objects.get(pk=case.pk).status == S.ACTIONING  # the police have not had theirs yet
        services.mark_sent(info.pk)
        case.refresh_from_db()
        assert case.status == S.AWAITING_REMOVAL
        takedown.refresh_from_db()
        assert takedown.state == Notice.State.SENT and takedown.deadline_at > takedown.sent_at
        assert OutboxEntry.objects.get(notice=takedown).done_at is not None

    def test_marking_sent_twice_changes_nothing_the_second_time(self, scheme, analyst, partners):
        confirmed(scheme, analyst, **domestic())
        notice = notices_to(partners["host"])[0]
        assert services.mark_sent(notice.pk) is not None
        assert services.mark_sent(notice.pk) is None
        assert AuditEvent.objects.filter(action=audit.Action.NOTICE_SENT, target_id=str(notice.pk)).count() == 1

    def test_a_failed_notice_tells_a_supervisor(self, scheme, analyst, supervisor, partners):
        case = confirmed(scheme, analyst, **domestic())
        notice = notices_to(partners["host"])[0]
        services.mark_failed(notice.pk, reason="connection refused")
        notice.refresh_from_db()
        assert (notice.state, notice.last_error) == (Notice.State.FAILED, "connection refused")
        [task] = SupervisorTask.objects.filter(kind=SupervisorTask.Kind.NOTICE_FAILED)
        assert task.case == case and "connection refused" in task.detail
        assert services.supervisor_addresses(task) == ["supervisor@hotline.test"]

    def test_the_supervisors_e_mail_names_references_and_no_url(self, scheme, analyst, supervisor, partners,
                                                                 mailbox):
        case = confirmed(scheme, analyst, **domestic())
        services.mark_failed(notices_to(partners["host"])[0].pk, reason="HTTP 500")
        task = SupervisorTask.objects.get(kind=SupervisorTask.Kind.NOTICE_FAILED)
        assert services.mail_supervisors(task.pk) == 1
        [message] = mailbox.messages()
        assert case.reference in message["Subject"]
        assert case.url not in message.get_content() and "HTTP 500" in message.get_content()


class TestPoliceAuthorisation:
    @pytest.fixture
    def gated(self, db: Any) -> RoutingRule:
        rule = RoutingRule.objects.get(situation="domestic", send_to="hosting_provider")
        rule.needs_authorisation = True
        rule.authorisation_wait_minutes = 60
        rule.save()
        return rule

    def test_a_domestic_takedown_waits_for_the_police(self, scheme, analyst, partners, gated):
        case = confirmed(scheme, analyst, **domestic())
        assert case.status == S.AWAITING_AUTHORISATION
        assert notices_to(partners["host"]) == []
        [request] = PoliceAuthorisation.objects.filter(case=case)
        assert request.state == PoliceAuthorisation.State.PENDING
        kinds = [n.kind for n in notices_to(partners["police"])]
        assert sorted(kinds) == ["authorisation_request", "police_information"]

    def test_authorising_releases_the_takedown(self, scheme, analyst, partners, gated):
        case = confirmed(scheme, analyst, **domestic())
        request = PoliceAuthorisation.objects.get(case=case)
        services.authorise(request, actor=partners["police"])
        case.refresh_from_db()
        assert case.status == S.ACTIONING
        assert [n.kind for n in notices_to(partners["host"])] == [NoticeKind.TAKEDOWN]
        assert services.authorise(request, actor=partners["police"]).state == PoliceAuthorisation.State.AUTHORISED
        assert len(notices_to(partners["host"])) == 1

    def test_another_partner_cannot_authorise(self, scheme, analyst, partners, gated):
        case = confirmed(scheme, analyst, **domestic())
        with pytest.raises(services.PermissionDenied):
            services.authorise(PoliceAuthorisation.objects.get(case=case), actor=partners["host"])
        assert notices_to(partners["host"]) == []

    def test_holding_keeps_the_notice_back_and_tells_a_supervisor(self, scheme, analyst, partners, gated):
        case = confirmed(scheme, analyst, **domestic())
        services.hold(PoliceAuthorisation.objects.get(case=case), actor=partners["police"], note="Operation X")
        assert SupervisorTask.objects.filter(case=case, kind=SupervisorTask.Kind.AUTHORISATION_HELD).exists()
        assert services.authorisation_timeouts(timezone.now() + timedelta(days=1)) == 0  # held: no fallback
        assert notices_to(partners["host"]) == []
        assert Case.objects.get(pk=case.pk).status == S.AWAITING_AUTHORISATION

    @pytest.mark.parametrize("fallback", ["send", "wait"])
    def test_no_answer_in_time_applies_the_fallback(self, scheme, analyst, partners, gated, fallback):
        gated.authorisation_fallback = fallback
        gated.save()
        case = confirmed(scheme, analyst, **domestic())
        assert services.authorisation_timeouts(timezone.now() + timedelta(minutes=59)) == 0
        assert services.authorisation_timeouts(timezone.now() + timedelta(minutes=61)) == 1
        request = PoliceAuthorisation.objects.get(case=case)
        if fallback == "send":
            assert request.state == PoliceAuthorisation.State.SENT_WITHOUT
            assert [n.kind for n in notices_to(partners["host"])] == [NoticeKind.TAKEDOWN]
        else:
            assert request.state == PoliceAuthorisation.State.OVERDUE
            assert notices_to(partners["host"]) == []
            assert SupervisorTask.objects.filter(case=case, kind=SupervisorTask.Kind.AUTHORISATION_OVERDUE).exists()


class TestByHand:
    def test_a_supervisor_sends_what_routing_could_not_decide(self, scheme, analyst, supervisor, partners):
        case = confirmed(scheme, analyst)
        notice = services.send_notice_by_hand(case.pk, partner=partners["host"], kind=NoticeKind.TAKEDOWN,
                                              actor=supervisor)
        assert list(notice.cases.all()) == [case]
        assert not SupervisorTask.objects.filter(case=case, resolved_at=None).exists()

    def test_an_analyst_may_not(self, scheme, analyst, partners):
        case = confirmed(scheme, analyst)
        with pytest.raises(services.PermissionDenied):
            services.send_notice_by_hand(case.pk, partner=partners["host"], kind=NoticeKind.TAKEDOWN, actor=analyst)
        assert Notice.objects.count() == 0


def test_notices_never_name_their_issuer_outside(scheme, analyst, partners):
    """issued_by is internal; the audit data of issuing carries references, never a name."""
    confirmed(scheme, analyst, **domestic())
    issued = AuditEvent.objects.filter(action=audit.Action.NOTICE_ISSUED)
    assert issued.exists()
    for event in issued:
        assert analyst.username not in str(event.data)


