"""The auditor: reads every case and the whole log, changes nothing, and every reading of a case is recorded."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.test import Client

from ntd import audit
from ntd.audit import AuditEvent
from ntd.roles import ANALYST, AUDITOR, SUPERVISOR
from ntd.timeline import case_timeline
from reports import services
from reports.models import Assessment, Case
from tests.reports.factories import CaseFactory, QueueFactory, grant

pytestmark = pytest.mark.django_db


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def auditor(make_staff: Any) -> Any:
    return make_staff(AUDITOR).user


@pytest.fixture
def worked_case(make_staff: Any, scheme: Any) -> tuple[Case, Any]:
    """A case in a queue of its own, claimed and assessed (closed) by an analyst."""
    queue = QueueFactory()
    analyst = make_staff(ANALYST, username="analyst-with-a-name").user
    grant(analyst, queue)
    case = CaseFactory(queue=queue)
    services.claim_case(case.pk, actor=analyst)
    services.assess_case(case.pk, actor=analyst, assessment=services.AssessmentInput(
        verdict=scheme.verdict("not_illegal"), rationale="Adult model, no child."))
    return Case.objects.get(pk=case.pk), analyst


class TestReading:
    def test_an_auditor_opens_a_case_in_any_queue_and_the_reading_is_recorded(self, auditor, worked_case):
        case, _ = worked_case

        response = signed_in(auditor).get(f"/cases/{case.reference}/")

        assert response.status_code == 200
        viewed = AuditEvent.objects.filter(case_id=case.pk, action=audit.Action.CASE_VIEWED)
        assert list(viewed.values_list("actor_id", flat=True)) == [str(auditor.pk)]

    def test_an_analyst_working_the_case_is_not_recorded_as_a_reader(self, worked_case):
        case, analyst = worked_case
        assert signed_in(analyst).get(f"/cases/{case.reference}/").status_code == 200
        assert not AuditEvent.objects.filter(case_id=case.pk, action=audit.Action.CASE_VIEWED).exists()

    def test_the_auditor_sees_every_queue_in_the_list(self, auditor, worked_case):
        other = CaseFactory(queue=QueueFactory())
        page = signed_in(auditor).get("/cases/?status=not_illegal&status=received").content.decode()
        assert worked_case[0].reference in page and other.reference in page
        assert "Next case" not in page and "Claim" not in page

    def test_the_case_page_offers_the_auditor_nothing_to_change(self, auditor, worked_case):
        page = signed_in(auditor).get(f"/cases/{worked_case[0].reference}/").content.decode()
        assert "<form" not in page.split("<main", 1)[1].split("</main>")[0]
        assert "Timeline and exports" in page


class TestNothingChanges:
    ACTIONS = ["claim", "release", "assess", "decide", "reopen", "trace", "reveal", "reassign"]

    @pytest.mark.parametrize("action", ACTIONS)
    def test_every_case_action_refuses_the_auditor(self, auditor, worked_case, action):
        case, _ = worked_case
        before = (AuditEvent.objects.count(), Assessment.objects.count(), Case.objects.get(pk=case.pk).status)

        response = signed_in(auditor).post(f"/cases/{case.reference}/{action}/", {"reason": "x", "report": "x"})

        assert response.status_code == 403
        assert (AuditEvent.objects.count(), Assessment.objects.count(), Case.objects.get(pk=case.pk).status) == before

    @pytest.mark.parametrize("path", ["/cases/next/", "/cases/team/duplicates/", "/api/v1/cases/next/"])
    def test_taking_work_refuses_the_auditor(self, auditor, worked_case, path):
        CaseFactory()
        before = AuditEvent.objects.count()
        assert signed_in(auditor).post(path, {}, content_type="application/json").status_code == 403
        assert AuditEvent.objects.count() == before

    @pytest.mark.parametrize("action", ["claim", "release", "assess"])
    def test_the_api_refuses_the_auditor(self, auditor, worked_case, action):
        response = signed_in(auditor).post(f"/api/v1/cases/{worked_case[0].reference}/{action}/", {},
                                           content_type="application/json")
        assert response.status_code == 403


class TestAuditLogSearch:
    def page(self, client: Client, **query: str) -> str:
        response = client.get("/audit/", query)
        assert response.status_code == 200, response.content.decode()
        return response.content.decode()

    def test_by_case(self, auditor, worked_case):
        case, _ = worked_case
        other = CaseFactory()
        with audit_transaction():
            audit.record(actor="system", action=audit.Action.CASE_TRACE_REQUESTED, target=other, case_id=other.pk,
                         data={"case": other.reference})
        page = self.page(signed_in(auditor), case=case.reference.lower())
        assert "Claimed by" in page and "Case closed" in page and other.reference not in page

    def test_by_actor_pseudonym_or_username_and_by_action(self, auditor, worked_case):
        _, analyst = worked_case
        client = signed_in(auditor)
        by_name = self.page(client, actor=analyst.username, action=audit.Action.CASE_ASSESSED)
        by_pseudonym = self.page(client, actor=analyst.pseudonym.lower(), action=audit.Action.CASE_ASSESSED)
        assert by_name.count("<tr>") == by_pseudonym.count("<tr>") == 2  # the header and one event
        assert "not illegal" in by_name

    def test_by_system_and_target(self, auditor, worked_case):
        case, _ = worked_case
        page = self.page(signed_in(auditor), actor="system", target=f"reports.case:{case.pk}")
        assert "No events match." in page  # the case's events were all by the analyst

    def test_by_time_range(self, auditor, worked_case):
        tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date().isoformat()
        client = signed_in(auditor)
        assert "No events match." in self.page(client, since=tomorrow)
        assert "Claimed by" in self.page(client, until=tomorrow)

    def test_unknown_names_say_so(self, auditor):
        client = signed_in(auditor)
        assert "No user, partner or “system” is called “nobody”." in self.page(client, actor="nobody")
        assert "No case has the reference" in self.page(client, case="C-0000-0000")

    @pytest.mark.parametrize("query", [{"since": "yesterday"}, {"since": "2026-02-02", "until": "2026-01-01"},
                                       {"action": "no.such"}, {"case": "C-\x00"}, {"before": "-3"}])
    def test_bad_search_is_a_clear_400(self, auditor, query):
        assert signed_in(auditor).get("/audit/", query).status_code == 400

    def test_older_events_page_by_sequence_number(self, auditor, worked_case):
        with audit_transaction():
            for _ in range(120):
                audit.record(actor="system", action=audit.Action.AUDIT_CHECKPOINT)
        client = signed_in(auditor)
        first = self.page(client, action=audit.Action.AUDIT_CHECKPOINT)
        assert first.count("<tr>") == 101 and "Older events" in first
        second = self.page(client, action=audit.Action.AUDIT_CHECKPOINT, before=_last_seq(first))
        assert second.count("<tr>") == 21 and "Older events" not in second

    def test_other_roles_may_not_search(self, make_staff):
        for role in (ANALYST, SUPERVISOR):
            assert signed_in(make_staff(role).user).get("/audit/").status_code == 403


class TestTimeline:
    def test_the_timeline_page_tells_the_case_in_order_and_records_the_reading(self, auditor, worked_case):
        case, analyst = worked_case

        response = signed_in(auditor).get(f"/audit/cases/{case.reference}/")

        page = response.content.decode()
        assert response.status_code == 200
        assert page.index("Claimed by") < page.index("Assessed: not illegal") < page.index("Case closed")
        assert AuditEvent.objects.filter(case_id=case.pk, action=audit.Action.CASE_VIEWED).count() == 1

    def test_pseudonyms_unless_names_are_asked_for(self, worked_case):
        case, analyst = worked_case
        third_party = " ".join(e.actor + e.description for e in case_timeline(case))
        internal = " ".join(e.actor + e.description for e in case_timeline(case, name_analysts=True))
        assert analyst.username not in third_party and analyst.pseudonym in third_party
        assert analyst.username in internal

    def test_a_case_outside_everyone_else_is_a_404_for_roles_without_the_log(self, make_staff, worked_case):
        assert signed_in(make_staff(ANALYST).user).get(f"/audit/cases/{worked_case[0].reference}/").status_code == 403


def audit_transaction() -> Any:
    from django.db import transaction

    return transaction.atomic()


def _last_seq(page: str) -> str:
    import re

    return re.findall(r"<tr>\s*<td>(\d+)</td>", page)[-1]
