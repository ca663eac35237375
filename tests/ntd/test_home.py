"""The staff home: what each role sees first."""

from __future__ import annotations

import pytest
from django.test import Client

from ntd.roles import ADMIN, ANALYST, SUPERVISOR
from reports import services
from tests.reports.factories import CaseFactory, grant

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def test_an_analyst_sees_what_they_hold_and_how_much_waits(make_staff, default_queue):
    analyst = make_staff(ANALYST).user
    grant(analyst, default_queue)
    held, _, _ = CaseFactory(priority=100), CaseFactory(), CaseFactory()
    services.claim_case(held.pk, actor=analyst)

    page = signed_in(analyst).get("/").content.decode()

    assert held.reference in page and "2 cases are waiting." in page and "Next case" in page
    assert "Open the team view" not in page


def test_an_analyst_without_a_queue_is_told_nothing_waits(make_staff):
    CaseFactory()
    page = signed_in(make_staff(ANALYST).user).get("/").content.decode()
    assert "No cases are waiting for you." in page and "Next case" not in page


def test_a_supervisor_sees_what_waits_for_a_second_opinion(make_staff, default_queue):
    supervisor = make_staff(SUPERVISOR).user
    grant(supervisor, default_queue, "supervise_queue")
    CaseFactory(status="awaiting_second_opinion")

    page = signed_in(supervisor).get("/").content.decode()

    assert "1 case waits for a second opinion or your decision." in page and "Open the team view" in page


def test_an_admin_sees_the_configuration_and_no_cases(make_staff):
    page = signed_in(make_staff(ADMIN).user).get("/").content.decode()
    assert "Queues and who works them" in page and "Your queue" not in page
