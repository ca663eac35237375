"""Delivering notices with real parts: a real SMTP server (aiosmtpd), a real webhook receiver on loopback, the
real Celery worker, PostgreSQL. Sealing once, the same ids on every attempt, retries, permanent failures, the
business-hours contact, and the outbox relay."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.controller import Controller
from django.db import transaction
from django.utils import timezone

from ntd import audit, roles
from ntd.audit import AuditEvent
from ntd.celery import app as celery_app
from reports.models import Assessment, Queue
from takedown import delivery, rendering, secrets, services
from takedown.models import Notice, NoticeKind, OutboxEntry, Partner, PartnerContact, SupervisorTask
from takedown.tasks import deliver_notice_task, mail_supervisors_task, relay_outbox_task
from tests.mailbox import free_port
from tests.reports.factories import CaseFactory, grant
from tests.takedown.webhook_receiver import closed_port_url, webhook_receiver_fixture  # noqa: F401 - the fixture

ADDRESS = "abuse@host.example"


@pytest.fixture
def world(transactional_db: None, scheme: Any, make_staff: Callable[..., Any], settings: Any) -> dict[str, Any]:
    """Templates, an analyst, a supervisor of the default queue with an e-mail address, fast retries."""
    settings.NOTICE_ALLOW_HTTP = True
    settings.NOTICE_RETRY_SECONDS = 0.05
    settings.NOTICE_MAX_ATTEMPTS = 3
    settings.NOTICE_HTTP_TIMEOUT = 2.0
    settings.DEFAULT_FROM_EMAIL = "notices@hotline.test"
    rendering.install_default_templates()
    analyst = make_staff(roles.ANALYST).user
    supervisor = make_staff(roles.SUPERVISOR, email="supervisor@hotline.test").user
    grant(supervisor, Queue.objects.get(pk=Queue.objects.default_id()), "supervise_queue")
    return {"scheme": scheme, "analyst": analyst, "supervisor": supervisor}


def host(name: str = "Example Hosting", **contact: Any) -> Partner:
    partner = Partner.objects.create(name=name, kind="hosting_provider", country="GB")
    if contact:
        PartnerContact.objects.create(partner=partner, **contact)
    return partner


def confirmed_case(world: dict[str, Any], **fields: Any) -> Any:
    scheme = world["scheme"]
    case = CaseFactory(status="actioning", **fields)
    Assessment.objects.create(case=case, assessor=world["analyst"], kind="first",
                              verdict=scheme.verdict("illegal_baseline"), clause=scheme.clause("INT", "BL-1"),
                              media_type=scheme.option("media_type", "images"),
                              age_group=scheme.option("age_group", "prepubescent"))
    return case


def issue(partner: Partner, cases: list[Any], kind: str = NoticeKind.TAKEDOWN) -> Notice:
    """Issue as the services do: committed, and published to the worker on commit."""
    with transaction.atomic():
        return services.issue_notice(partner=partner, kind=kind, cases=cases, actor=None, immediate=True)


def forget_queue(name: str) -> None:
    """Delete a queue of the test's own from the broker (Redis): its messages, its bindings, and the messages a
    killed worker left unacknowledged for it. (kombu's queue_delete on a fresh channel deletes nothing: it knows
    only the bindings that channel declared itself.)"""
    with celery_app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}",
                      *client.scan_iter(f"{name}\x06*"))
        for tag, raw in client.hgetall("unacked").items():
            with contextlib.suppress(ValueError, TypeError, IndexError):
                if json.loads(raw)[2] == name:  # [message, exchange, routing key]
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)


@contextlib.contextmanager
def messages_lost(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Messages published in the block go to a queue no worker reads, and are deleted: lost, as in a broker
    restart or a publish that never arrived."""
    void = f"ntd-test-void-{uuid.uuid4().hex[:12]}"
    with monkeypatch.context() as patch:
        patch.setitem(celery_app.conf, "task_default_queue", void)
        try:
            yield
        finally:
            forget_queue(void)


def lost_notice(partner: Partner, cases: list[Any], monkeypatch: pytest.MonkeyPatch) -> Notice:
    """A notice committed whose delivery message never reached a worker."""
    with messages_lost(monkeypatch):
        return issue(partner, cases)


def wait_for_state(notice: Notice, *states: str, timeout: float = 30.0) -> Notice:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        notice.refresh_from_db()
        if notice.state in states:
            return notice
        time.sleep(0.05)
    raise AssertionError(f"notice {notice.reference} is {notice.state}, not {states}, after {timeout} s "
                         f"(attempts {notice.attempts}, last error {notice.last_error!r})")


def events(action: str, notice: Notice) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_type="takedown.notice", target_id=str(notice.pk)))


# --- End to end, through the worker --------------------------------------------------------------------------


class TestEmail:
    def test_the_e_mail_arrives_with_its_message_id_every_url_and_no_attachment(self, world, celery_worker,
                                                                                 mailbox):
        cases = [confirmed_case(world), confirmed_case(world, url="https://host.example/b?x=1&y=2")]
        notice = issue(host(channel="email", email=ADDRESS), cases)
        assert celery_worker.next_run(deliver_notice_task) == ("SUCCESS", "sent")
        notice = wait_for_state(notice, Notice.State.SENT)
        [message] = mailbox.messages()
        assert message["Message-ID"] == notice.message_id
        assert (message["To"], message["From"]) == (ADDRESS, "notices@hotline.test")
        assert message["Subject"] == notice.subject and notice.reference in message["Subject"]
        assert not message.is_multipart() and message.get_content_type() == "text/plain"
        assert list(message.iter_attachments()) == []
        body = message.get_content()
        for case in cases:
            assert case.url in body and case.reference in body
        links = notice.payload["notice"]["links"]  # made with the body, when the notice was sealed
        assert set(links) == {"acknowledge", "removed", "dispute"}
        for link in links.values():
            assert link in body
        assert f"/api/v1/notices/{notice.reference}/" in body
        assert world["analyst"].pseudonym in body
        assert (notice.email_to, notice.channel, notice.attempts) == (ADDRESS, "email", 1)
        assert notice.sealed_at and notice.sent_at and notice.deadline_at
        assert OutboxEntry.objects.get(notice=notice).done_at is not None
        assert len(events(audit.Action.NOTICE_SEALED, notice)) == len(events(audit.Action.NOTICE_SENT, notice)) == 1

    def test_running_the_task_again_after_it_completed_sends_nothing(self, world, celery_worker, mailbox):
        notice = issue(host(channel="email", email=ADDRESS), [confirmed_case(world)])
        assert celery_worker.next_run(deliver_notice_task) == ("SUCCESS", "sent")
        deliver_notice_task.delay(notice.pk)
        assert celery_worker.next_run(deliver_notice_task) == ("SUCCESS", "done")
        assert len(mailbox.messages()) == 1
        assert len(events(audit.Action.NOTICE_SENT, notice)) == 1

    def test_a_mail_server_that_refuses_the_address_fails_the_notice_at_once(self, world, celery_worker, settings):
        class Refusing:
            async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,  # noqa: N802
                                  options: Any) -> str:
                return "550 5.1.1 No such mailbox"

        controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
        controller.start()
        settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                                        "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 5}}}
        try:
            notice = issue(host(channel="email", email=ADDRESS), [confirmed_case(world)])
            notice = wait_for_state(notice, Notice.State.FAILED)
        finally:
            controller.stop()
        assert notice.attempts == 1
        assert "refused the address" in notice.last_error and "550" in notice.last_error


class TestWebhook:
    def test_the_webhook_arrives_signed_with_the_notice_as_json(self, world, celery_worker, webhook_receiver):
        partner = host(name="Hook Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        case = confirmed_case(world)
        notice = issue(partner, [case])
        notice = wait_for_state(notice, Notice.State.SENT)
        [request] = webhook_receiver.received()
        assert request.verified is True, request.error
        assert request.webhook_id == str(notice.idempotency_key)
        assert request.headers["content-type"] == "application/json"
        body = request.json()
        assert body == notice.payload
        assert body["type"] == "notice.takedown" and body["notice"]["reference"] == notice.reference
        assert body["notice"]["items"][0]["url"] == case.url
        assert set(body["notice"]["links"]) == {"acknowledge", "removed", "dispute"}

    def test_a_wrong_secret_does_not_verify(self, world, celery_worker, webhook_receiver):
        """The receiver's check can fail: a signature made with another contact's secret is refused."""
        partner = host(name="Hook Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=webhook_receiver.url())
        secrets.new_webhook_secret(contact)
        other = PartnerContact.objects.create(partner=host(name="Other"), channel="webhook", webhook_url="https://x.test")
        webhook_receiver.secret = secrets.new_webhook_secret(other)
        wait_for_state(issue(partner, [confirmed_case(world)]), Notice.State.SENT)
        [request] = webhook_receiver.received()
        assert request.verified is False and "signature" in request.error.lower()

    def test_a_5xx_is_retried_with_the_same_webhook_id_until_it_is_taken(self, world, celery_worker,
                                                                         webhook_receiver):
        partner = host(name="Hook Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        webhook_receiver.then(503, times=1)
        webhook_receiver.then(429, times=1)
        notice = wait_for_state(issue(partner, [confirmed_case(world)]), Notice.State.SENT)
        requests = webhook_receiver.received()
        assert [r.answered for r in requests] == [503, 429, 200]
        assert {r.webhook_id for r in requests} == {str(notice.idempotency_key)}
        assert len({r.body for r in requests}) == 1  # the same bytes: sealed once
        assert all(r.verified for r in requests)
        assert notice.attempts == 3
        failed = events(audit.Action.NOTICE_ATTEMPT_FAILED, notice)
        assert [e.data["attempt"] for e in failed] == [1, 2] and "503" in failed[0].data["error"]
        assert len(events(audit.Action.NOTICE_SEALED, notice)) == 1

    def test_a_redirect_is_not_followed_and_fails_the_notice(self, world, celery_worker, webhook_receiver):
        partner = host(name="Hook Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        webhook_receiver.respond(302, location=webhook_receiver.url("/elsewhere"))
        notice = wait_for_state(issue(partner, [confirmed_case(world)]), Notice.State.FAILED)
        assert [r.path for r in webhook_receiver.received()] == ["/hook"]
        assert "redirect" in notice.last_error and "does not follow" in notice.last_error
        assert notice.attempts == 1

    def test_a_4xx_fails_at_once(self, world, celery_worker, webhook_receiver):
        partner = host(name="Hook Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        webhook_receiver.respond(410)
        notice = wait_for_state(issue(partner, [confirmed_case(world)]), Notice.State.FAILED)
        assert len(webhook_receiver.received()) == 1 and "410" in notice.last_error

    def test_an_unreachable_webhook_fails_after_the_last_attempt_and_a_supervisor_is_told(
            self, world, celery_worker, mailbox):
        partner = host(name="Gone Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=closed_port_url())
        secrets.new_webhook_secret(contact)
        case = confirmed_case(world)
        notice = wait_for_state(issue(partner, [case]), Notice.State.FAILED)
        assert notice.attempts == 3  # NOTICE_MAX_ATTEMPTS
        assert "could not be reached" in notice.last_error and "after 3 attempts" in notice.last_error
        [task] = SupervisorTask.objects.filter(kind=SupervisorTask.Kind.NOTICE_FAILED, notice=notice)
        assert task.case == case and "could not be reached" in task.detail
        assert celery_worker.next_run(mail_supervisors_task) == ("SUCCESS", 1)
        [message] = mailbox.messages()
        assert message["To"] == "supervisor@hotline.test" and case.reference in message["Subject"]
        assert [e.data["attempt"] for e in events(audit.Action.NOTICE_ATTEMPT_FAILED, notice)] == [1, 2, 3]
        assert OutboxEntry.objects.get(notice=notice).done_at is not None

    def test_a_slow_webhook_times_out_and_is_retried(self, world, celery_worker, webhook_receiver, settings):
        settings.NOTICE_HTTP_TIMEOUT = 0.3
        partner = host(name="Slow Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook", webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        webhook_receiver.then(200, delay=1.0)
        notice = wait_for_state(issue(partner, [confirmed_case(world)]), Notice.State.SENT)
        assert notice.attempts == 2
        assert "did not answer within 0.3 s" in events(audit.Action.NOTICE_ATTEMPT_FAILED, notice)[0].data["error"]

    def test_both_channels(self, world, celery_worker, webhook_receiver, mailbox):
        partner = host(name="Both Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="both", email=ADDRESS,
                                                webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        notice = wait_for_state(issue(partner, [confirmed_case(world)]), Notice.State.SENT)
        assert notice.channel == "both"
        assert [m["Message-ID"] for m in mailbox.messages()] == [notice.message_id]
        assert [r.webhook_id for r in webhook_receiver.received()] == [str(notice.idempotency_key)]


class TestTheirNtd:
    def test_a_referral_to_a_hotline_that_runs_ntd_is_posted_to_their_partner_api(self, world, celery_worker,
                                                                                 webhook_receiver):
        hotline = Partner.objects.create(name="Hotline NL", kind="hotline", country="NL", runs_ntd=True,
                                         ntd_url=webhook_receiver.url(""))
        secrets.seal_ntd_api_key(hotline, "their-key-for-us")
        hotline.save()
        webhook_receiver.respond(201, body={"reference": "R-AAAA-BBBB", "created": True})
        case = confirmed_case(world)
        notice = issue(hotline, [case], kind=NoticeKind.HOTLINE_REFERRAL)
        assert notice.channel == Notice.Channel.NTD
        notice = wait_for_state(notice, Notice.State.SENT)
        [request] = webhook_receiver.received()
        assert (request.method, request.path) == ("POST", "/api/v1/reports/")
        assert request.headers["x-api-key"] == "their-key-for-us"
        assert request.json()["partner_reference"] == notice.reference
        assert request.json()["urls"] == [case.url]
        assert notice.recipient_reference == "R-AAAA-BBBB"


# --- A crash between sending and marking ---------------------------------------------------------------------


class TestRepeatedDelivery:
    def test_a_delivery_repeated_after_a_crash_carries_the_same_ids_and_is_marked_once(
            self, world, celery_worker, mailbox, webhook_receiver, monkeypatch):
        partner = host(name="Both Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="both", email=ADDRESS,
                                                webhook_url=webhook_receiver.url())
        webhook_receiver.secret = secrets.new_webhook_secret(contact)
        notice = lost_notice(partner, [confirmed_case(world)], monkeypatch)
        # A worker seals and sends, then dies before it can mark the notice sent
        sealed = delivery.seal(notice.pk)
        assert isinstance(sealed, Notice)
        delivery.send(sealed)
        # The task runs again (the broker redelivers it, or the relay re-publishes it)
        deliver_notice_task.delay(notice.pk)
        assert celery_worker.next_run(deliver_notice_task) == ("SUCCESS", "sent")
        notice = wait_for_state(notice, Notice.State.SENT)
        assert [m["Message-ID"] for m in mailbox.messages()] == [notice.message_id] * 2
        assert [r.webhook_id for r in webhook_receiver.received()] == [str(notice.idempotency_key)] * 2
        assert len({r.body for r in webhook_receiver.received()}) == 1
        assert len({m.get_content() for m in mailbox.messages()}) == 1
        assert len(events(audit.Action.NOTICE_SEALED, notice)) == 1
        assert len(events(audit.Action.NOTICE_SENT, notice)) == 1


# --- The relay -------------------------------------------------------------------------------------------------


class TestRelay:
    def test_the_relay_re_publishes_a_lost_delivery(self, world, celery_worker, mailbox, settings, monkeypatch):
        settings.NOTICE_RELAY_GRACE_SECONDS = 60
        partner = host(channel="email", email=ADDRESS)
        notice = lost_notice(partner, [confirmed_case(world)], monkeypatch)
        long_ago = timezone.now() - dt.timedelta(minutes=5)  # due five minutes ago, published then, lost
        OutboxEntry.objects.filter(notice=notice).update(due_at=long_ago, published_at=long_ago)
        fresh = lost_notice(partner, [confirmed_case(world)], monkeypatch)  # due just now: within the grace
        assert relay_outbox_task() == 1
        assert relay_outbox_task() == 0  # published just now: not again within the grace
        assert celery_worker.next_run(deliver_notice_task) == ("SUCCESS", "sent")
        wait_for_state(notice, Notice.State.SENT)
        assert [m["Message-ID"] for m in mailbox.messages()] == [notice.message_id]
        fresh.refresh_from_db()
        assert fresh.state == Notice.State.QUEUED and fresh.sealed_at is None

    def test_the_relay_takes_a_published_entry_again_once_the_grace_has_passed(self, world, settings,
                                                                                monkeypatch):
        settings.NOTICE_RELAY_GRACE_SECONDS = 60
        notice = lost_notice(host(channel="email", email=ADDRESS), [confirmed_case(world)], monkeypatch)
        now = timezone.now()
        OutboxEntry.objects.filter(notice=notice).update(due_at=now - dt.timedelta(minutes=10),
                                                         published_at=now - dt.timedelta(seconds=30))
        assert delivery.relay_outbox(now=now) == 0  # published 30 s ago: its message may still be queued
        assert delivery.relay_outbox(now=now + dt.timedelta(seconds=31)) == 1
        OutboxEntry.objects.filter(notice=notice).update(done_at=now)
        assert delivery.relay_outbox(now=now + dt.timedelta(hours=1)) == 0  # done: never again


# --- Without the worker: the rules of one run -------------------------------------------------------------------


@pytest.mark.django_db
class TestOneRun:
    @pytest.fixture
    def plain(self, scheme, make_staff, settings) -> dict[str, Any]:
        settings.NOTICE_ALLOW_HTTP = False
        rendering.install_default_templates()
        return {"scheme": scheme, "analyst": make_staff(roles.ANALYST).user}

    def test_a_notice_still_open_for_grouping_waits(self, plain):
        notice = services.issue_notice(partner=host(channel="email", email=ADDRESS), kind=NoticeKind.TAKEDOWN,
                                       cases=[confirmed_case(plain)], actor=None)
        assert notice.due_at > timezone.now()
        outcome = delivery.deliver(notice.pk)
        assert (outcome.status, outcome.retry_at) == ("waiting", notice.due_at)
        notice.refresh_from_db()
        assert notice.sealed_at is None and notice.is_open_for_cases

    def test_a_notice_no_longer_queued_is_left_alone(self, plain):
        notice = services.issue_notice(partner=host(channel="email", email=ADDRESS), kind=NoticeKind.TAKEDOWN,
                                       cases=[confirmed_case(plain)], actor=None, immediate=True)
        Notice.objects.filter(pk=notice.pk).update(state=Notice.State.WITHDRAWN)
        assert delivery.deliver(notice.pk).status == "done"
        assert OutboxEntry.objects.get(notice=notice).done_at is not None
        assert delivery.deliver(10**9).status == "gone"

    def test_an_http_webhook_is_refused_in_production(self, plain):
        partner = host(name="Plain Hosting")
        contact = PartnerContact.objects.create(partner=partner, channel="webhook",
                                                webhook_url="http://hooks.host.example/ntd")
        secrets.new_webhook_secret(contact)
        notice = services.issue_notice(partner=partner, kind=NoticeKind.TAKEDOWN, cases=[confirmed_case(plain)],
                                       actor=None, immediate=True)
        assert delivery.deliver(notice.pk).status == "failed"
        notice.refresh_from_db()
        assert notice.state == Notice.State.FAILED and "must start with https://" in notice.last_error

    def test_a_partner_without_a_contact_fails_at_sealing(self, plain):
        notice = services.issue_notice(partner=host(), kind=NoticeKind.TAKEDOWN, cases=[confirmed_case(plain)],
                                       actor=None, immediate=True)
        assert delivery.deliver(notice.pk).status == "failed"
        notice.refresh_from_db()
        assert notice.state == Notice.State.FAILED and "no active contact" in notice.last_error
        assert SupervisorTask.objects.filter(notice=notice, kind=SupervisorTask.Kind.NOTICE_FAILED).exists()

    def test_a_webhook_contact_without_a_secret_fails(self, plain):
        partner = host(name="Secretless", channel="webhook", webhook_url="https://hooks.host.example/ntd")
        notice = services.issue_notice(partner=partner, kind=NoticeKind.TAKEDOWN, cases=[confirmed_case(plain)],
                                       actor=None, immediate=True)
        assert delivery.deliver(notice.pk).status == "failed"
        notice.refresh_from_db()
        assert "no signing secret" in notice.last_error

    def test_the_language_of_the_chosen_contact(self, plain, mailbox):
        partner = host(name="Dutch Hosting", channel="email", email=ADDRESS, language="nl")
        notice = services.issue_notice(partner=partner, kind=NoticeKind.TAKEDOWN, cases=[confirmed_case(plain)],
                                       actor=None, immediate=True)
        assert delivery.deliver(notice.pk).status == "sent"
        [message] = mailbox.messages()
        assert message["Subject"].startswith("Verwijderverzoek")

    def test_backoff_doubles_up_to_an_hour(self, settings):
        settings.NOTICE_RETRY_SECONDS = 30.0
        assert [delivery.backoff(n) for n in (1, 2, 3, 4)] == [30, 60, 120, 240]
        assert delivery.backoff(20) == 3600


@pytest.mark.django_db
class TestBusinessHours:
    """Amsterdam office hours 09:00–17:30 on working days, Dutch public holidays off; an out-of-hours desk."""

    AMS = ZoneInfo("Europe/Amsterdam")

    @pytest.fixture
    def partner(self) -> Partner:
        partner = Partner.objects.create(name="Office Hosting", kind="hosting_provider", country="NL")
        PartnerContact.objects.create(partner=partner, email="office@host.example", around_the_clock=False,
                                      hours_start=dt.time(9), hours_end=dt.time(17, 30), working_days="0,1,2,3,4",
                                      time_zone="Europe/Amsterdam", holidays_country="NL")
        PartnerContact.objects.create(partner=partner, email="night@host.example", out_of_hours=True)
        return partner

    def chosen(self, partner: Partner, *when: int) -> str:
        contact = delivery.choose_contact(partner, dt.datetime(*when, tzinfo=self.AMS))
        return contact.email if contact else ""

    def test_the_office_in_its_hours(self, partner):
        assert self.chosen(partner, 2026, 12, 8, 10, 0) == "office@host.example"  # a Tuesday morning
        assert self.chosen(partner, 2026, 12, 8, 17, 29) == "office@host.example"

    def test_the_out_of_hours_desk_otherwise(self, partner):
        assert self.chosen(partner, 2026, 12, 8, 17, 30) == "night@host.example"  # closing time
        assert self.chosen(partner, 2026, 12, 8, 8, 59) == "night@host.example"
        assert self.chosen(partner, 2026, 12, 12, 11, 0) == "night@host.example"  # a Saturday
        assert self.chosen(partner, 2026, 12, 25, 11, 0) == "night@host.example"  # Christmas, a Friday
        assert self.chosen(partner, 2026, 4, 27, 11, 0) == "night@host.example"  # King's Day, a Monday

    def test_the_time_zone_is_the_contacts(self, partner):
        # 08:30 UTC is 09:30 in Amsterdam in winter: open
        contact = delivery.choose_contact(partner, dt.datetime(2026, 12, 8, 8, 30, tzinfo=dt.UTC))
        assert contact.email == "office@host.example"

    def test_any_active_contact_when_no_desk_is_open(self, partner):
        PartnerContact.objects.filter(out_of_hours=True).update(is_active=False)
        assert self.chosen(partner, 2026, 12, 12, 11, 0) == "office@host.example"
        PartnerContact.objects.update(is_active=False)
        assert self.chosen(partner, 2026, 12, 12, 11, 0) == ""


def test_the_webhook_request_is_signed_over_its_exact_bytes() -> None:
    """Standard Webhooks: what a receiver verifies (here with the library's own check) is what was sent."""
    from standardwebhooks.webhooks import Webhook, WebhookVerificationError

    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    notice = Notice(idempotency_key=uuid.uuid4(), payload={"type": "notice.takedown", "notice": {"url": "ü"}})
    body, headers = delivery.webhook_request(notice, secret)
    assert Webhook(secret).verify(body, headers) == notice.payload
    assert headers["webhook-id"] == str(notice.idempotency_key)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body + b" ", headers)
