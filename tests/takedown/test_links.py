"""The pages behind a notice's signed links (takedown/link_views.py): /n/<purpose>/<token>/.

A GET shows and changes nothing (mail scanners open links); the POST from that page acts as the notice's
partner. A link is bound to one notice and one purpose, and expires.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from ntd import audit
from ntd.audit import AuditEvent
from reports.models import Case
from takedown import links
from takedown.models import Notice, NoticeKind, Partner, PoliceAuthorisation, SupervisorTask
from tests.reports.factories import CaseFactory
from tests.takedown.test_responses import events, make_notice, make_partner, snapshot

pytestmark = pytest.mark.django_db

S = Case.Status
N = Notice.State
A = audit.Action


def path_for(notice: Notice, purpose: str, token: str | None = None) -> str:
    return reverse("notice_link", kwargs={"purpose": purpose, "token": token or links.token_for(notice, purpose)})


def csrf_client() -> Client:
    return Client(enforce_csrf_checks=True)


def submit(client: Client, path: str, data: dict[str, Any] | None = None) -> Any:
    """Open the page, then press its button as a browser would: with the CSRF token the page gave."""
    page = client.get(path)
    assert page.status_code == 200, page.content.decode()[:2000]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return client.post(path, {"csrfmiddlewaretoken": token, **(data or {})})


@pytest.fixture
def partner() -> Partner:
    return make_partner()


@pytest.fixture
def notice(partner: Partner) -> Notice:
    return make_notice(partner, count=2)


def urls_of(notice: Notice) -> list[str]:
    return [item.case.url for item in notice.items.select_related("case").order_by("pk")]


class TestOpeningChangesNothing:
    @pytest.mark.parametrize("purpose", ["acknowledge", "removed", "dispute"])
    def test_a_get_shows_the_notice_and_its_urls_as_text_and_changes_nothing(self, notice, purpose):
        before = snapshot()

        response = Client().get(path_for(notice, purpose))

        assert response.status_code == 200
        body = response.content.decode()
        assert notice.reference in body
        for url in urls_of(notice):
            assert url in body
            assert f'href="{url}"' not in body  # text, never a link
        assert "<form method=\"post\"" in body and "csrfmiddlewaretoken" in body
        assert "Opening this page changes nothing" in body
        assert 'name="robots" content="noindex' in body
        assert "no-store" in response["Cache-Control"]
        assert snapshot() == before

    def test_the_removed_page_has_one_ticked_box_per_url(self, notice):
        body = Client().get(path_for(notice, "removed")).content.decode()

        boxes = re.findall(r'<input type="checkbox" name="cases" value="([^"]+)"[^>]*>', body)
        assert sorted(boxes) == sorted(item.case.reference for item in notice.items.all())
        assert body.count("checked") == 2

    def test_the_dispute_page_asks_for_a_reason(self, notice):
        body = Client().get(path_for(notice, "dispute")).content.decode()

        assert '<textarea name="reason"' in body

    def test_no_analyst_is_named_on_the_page(self, notice, make_staff):
        analyst = make_staff("analyst", username="alice.analyst", first_name="Alice", last_name="Vermeer").user
        Notice.objects.filter(pk=notice.pk).update(issued_by=analyst)

        body = Client().get(path_for(notice, "acknowledge")).content.decode()

        assert "alice" not in body.lower() and "Vermeer" not in body


class TestActing:
    def test_acknowledge(self, notice, partner):
        response = submit(csrf_client(), path_for(notice, "acknowledge"))

        assert response.status_code == 200
        assert "we have recorded that you received the notice" in response.content.decode()
        notice.refresh_from_db()
        assert notice.state == N.ACKNOWLEDGED
        [event] = events(A.NOTICE_ACKNOWLEDGED)
        assert (event.actor_type, event.actor_id) == ("partner", str(partner.pk))

    def test_an_acknowledged_notice_says_so_instead_of_offering_the_button(self, notice):
        submit(Client(), path_for(notice, "acknowledge"))

        body = Client().get(path_for(notice, "acknowledge")).content.decode()

        assert "You acknowledged this notice on" in body and "<button" not in body.split("<main")[1]

    def test_removal_of_the_ticked_urls_only(self, notice):
        first, second = notice.items.select_related("case").order_by("pk")

        response = submit(Client(), path_for(notice, "removed"), {"cases": [first.case.reference]})

        assert response.status_code == 200
        assert Case.objects.get(pk=first.case_id).status == S.REMOVAL_OBSERVED
        assert Case.objects.get(pk=second.case_id).status == S.AWAITING_REMOVAL
        body = Client().get(path_for(notice, "removed")).content.decode()
        assert re.findall(r'name="cases" value="([^"]+)"', body) == [second.case.reference]
        assert "reported removed" in body

    def test_removal_with_nothing_ticked_is_refused_and_changes_nothing(self, notice):
        before = snapshot()

        response = submit(Client(), path_for(notice, "removed"), {})

        assert response.status_code == 400
        assert "Tick at least one web address." in response.content.decode()
        assert snapshot() == before

    def test_a_case_not_in_the_notice_is_refused(self, notice, partner):
        stranger = make_notice(partner, count=1).items.get().case.reference
        before = snapshot()

        response = submit(Client(), path_for(notice, "removed"), {"cases": [stranger]})

        assert response.status_code == 400
        assert snapshot() == before

    def test_dispute(self, notice):
        response = submit(Client(), path_for(notice, "dispute"), {"reason": "A news article, not abuse material."})

        assert response.status_code == 200
        notice.refresh_from_db()
        assert (notice.state, notice.dispute_reason) == (N.DISPUTED, "A news article, not abuse material.")
        assert SupervisorTask.objects.filter(kind=SupervisorTask.Kind.DISPUTE, notice=notice).exists()

    @pytest.mark.parametrize(("reason", "message"), [("", "Give the reason for the dispute."),
                                                     ("x" * 2001, "2,000 characters or fewer")])
    def test_a_dispute_without_a_fitting_reason_is_refused(self, notice, reason, message):
        before = snapshot()

        response = submit(Client(), path_for(notice, "dispute"), {"reason": reason})

        assert response.status_code == 400 and message in response.content.decode()
        assert snapshot() == before

    def test_a_post_without_the_csrf_token_is_refused(self, notice):
        before = snapshot()

        response = csrf_client().post(path_for(notice, "acknowledge"))

        assert response.status_code == 403
        assert snapshot() == before

    def test_an_answer_the_state_does_not_allow_is_refused_and_recorded(self, partner):
        notice = make_notice(partner)
        client = Client()
        page = path_for(notice, "removed")
        assert client.get(page).status_code == 200
        Notice.objects.filter(pk=notice.pk).update(state=N.DISPUTED, disputed_at=timezone.now())  # meanwhile
        items = [item.case.reference for item in notice.items.all()]

        response = client.post(page, {"cases": items})

        assert response.status_code == 409
        assert "wait for our decision" in response.content.decode()
        [refusal] = events(A.NOTICE_LINK_REFUSED)
        assert (refusal.target_id, refusal.data["purpose"]) == (str(notice.pk), "removed")
        assert not events(A.NOTICE_REMOVAL_REPORTED)


class TestRefusedLinks:
    def test_an_expired_link_is_refused(self, notice):
        path = path_for(notice, "acknowledge")
        with time_machine.travel(timezone.now() + timedelta(days=settings.NOTICE_LINK_DAYS, minutes=1)):
            before = AuditEvent.objects.count()
            page = Client().get(path)
            assert AuditEvent.objects.count() == before  # opening an old link records nothing either
            answer = Client().post(path)

        assert page.status_code == 410 and answer.status_code == 410
        assert "This link has expired" in page.content.decode()
        assert Notice.objects.get(pk=notice.pk).state == N.SENT
        [refusal] = events(A.NOTICE_LINK_REFUSED)  # a genuine link: the refusal is on the notice's record
        assert (refusal.target_id, refusal.data["reason"]) == (str(notice.pk), "expired")

    def test_a_link_just_within_its_days_works(self, notice):
        path = path_for(notice, "acknowledge")
        with time_machine.travel(timezone.now() + timedelta(days=settings.NOTICE_LINK_DAYS, minutes=-1)):
            response = submit(Client(), path)

        assert response.status_code == 200
        assert Notice.objects.get(pk=notice.pk).state == N.ACKNOWLEDGED

    def test_a_link_for_another_purpose_is_refused(self, notice):
        token = links.token_for(notice, "acknowledge")
        before = snapshot()

        page = Client().get(path_for(notice, "dispute", token))
        answer = Client().post(path_for(notice, "dispute", token), {"reason": "Forged."})

        assert page.status_code == 400 and answer.status_code == 400
        assert "not valid" in page.content.decode()
        assert snapshot() == before  # a forged link names no notice: nothing is recorded

    def test_a_link_names_one_notice_and_cannot_be_turned_to_another(self, notice):
        victim = make_notice(make_partner("Host B"))
        token = links.token_for(notice, "acknowledge").replace(notice.reference, victim.reference)
        before = snapshot()

        response = Client().post(path_for(victim, "acknowledge", token))

        assert response.status_code == 400
        assert snapshot() == before

    def test_each_partner_acts_only_through_its_own_notices_links(self, notice, partner):
        other = make_partner("Host B")
        theirs = make_notice(other, count=1)

        submit(Client(), path_for(theirs, "acknowledge"))

        assert Notice.objects.get(pk=theirs.pk).state == N.ACKNOWLEDGED
        assert Notice.objects.get(pk=notice.pk).state == N.SENT
        assert [e.actor_id for e in events(A.NOTICE_ACKNOWLEDGED)] == [str(other.pk)]

    @pytest.mark.parametrize("token", ["garbage", "N-0000-0000:1abcde:xyz", "x" * 300])
    def test_a_forged_or_damaged_link_is_refused(self, token):
        response = Client().get(f"/n/acknowledge/{token}/")

        assert response.status_code == 400
        assert not AuditEvent.objects.exists()

    def test_an_unknown_purpose_is_not_found(self, notice):
        assert Client().get(f"/n/delete/{links.token_for(notice, 'acknowledge')}/").status_code == 404

    def test_a_link_of_an_inactive_partner_no_longer_works(self, notice, partner):
        Partner.objects.filter(pk=partner.pk).update(is_active=False)

        assert Client().get(path_for(notice, "acknowledge")).status_code == 410

    def test_a_removal_link_on_a_notice_that_asks_for_no_removal_is_refused(self, partner):
        notice = make_notice(partner, kind=NoticeKind.STATUS_UPDATE)

        assert Client().get(path_for(notice, "removed")).status_code == 400
        assert Client().get(path_for(notice, "authorise")).status_code == 400

    def test_a_withdrawn_notice_says_so(self, partner):
        notice = make_notice(partner, state=N.WITHDRAWN, withdrawn_at=timezone.now())

        body = Client().get(path_for(notice, "acknowledge")).content.decode()

        assert "This notice was withdrawn" in body and "<button" not in body.split("<main")[1]


# --- police authorisation -------------------------------------------------------------------------------------


@pytest.fixture
def police() -> Partner:
    return make_partner("National police", kind=Partner.Kind.LAW_ENFORCEMENT, country="NL")


@pytest.fixture
def request_notice(police: Partner) -> Notice:
    case = CaseFactory(status=S.AWAITING_AUTHORISATION)
    authorisation = PoliceAuthorisation.objects.create(case=case, police=police, fallback="wait", pending=[],
                                                       answer_by=timezone.now() + timedelta(hours=4))
    return make_notice(police, [case], kind=NoticeKind.AUTHORISATION_REQUEST, authorisation=authorisation)


class TestAuthorisation:
    def test_the_police_authorise(self, request_notice, police):
        response = submit(Client(), path_for(request_notice, "authorise"), {"note": "Go ahead."})

        assert response.status_code == 200
        authorisation = PoliceAuthorisation.objects.get()
        assert (authorisation.state, authorisation.note) == (PoliceAuthorisation.State.AUTHORISED, "Go ahead.")
        [event] = events(A.AUTHORISATION_GRANTED)
        assert (event.actor_type, event.actor_id) == ("partner", str(police.pk))
        assert Case.objects.get().status != S.AWAITING_AUTHORISATION

    def test_the_police_ask_to_hold(self, request_notice):
        response = submit(Client(), path_for(request_notice, "hold"), {"note": "Investigation running."})

        assert response.status_code == 200
        assert PoliceAuthorisation.objects.get().state == PoliceAuthorisation.State.HELD
        assert SupervisorTask.objects.filter(kind=SupervisorTask.Kind.AUTHORISATION_HELD).exists()
        assert Case.objects.get().status == S.AWAITING_AUTHORISATION

    def test_opening_the_authorise_link_authorises_nothing(self, request_notice):
        before = snapshot()

        assert Client().get(path_for(request_notice, "authorise")).status_code == 200

        assert snapshot() == before
        assert PoliceAuthorisation.objects.get().state == PoliceAuthorisation.State.PENDING

    def test_holding_after_the_notices_went_out_is_refused(self, request_notice):
        PoliceAuthorisation.objects.update(state=PoliceAuthorisation.State.AUTHORISED)
        client = Client()
        page = path_for(request_notice, "hold")
        assert "have gone out already" in client.get(page).content.decode()

        response = client.post(page, {"note": ""})

        assert response.status_code == 409
        assert PoliceAuthorisation.objects.get().state == PoliceAuthorisation.State.AUTHORISED
        assert len(events(A.NOTICE_LINK_REFUSED)) == 1

    def test_an_authorisation_link_on_a_takedown_notice_is_refused(self, partner):
        notice = make_notice(partner)

        assert Client().get(path_for(notice, "authorise")).status_code == 400
        assert Client().post(path_for(notice, "hold")).status_code == 400
