"""The reliability test of the notices issue: 1,000 notices (e-mail, webhook, both) delivered by a real Celery
worker process (prefork, 4 children) that is killed with SIGKILL, the whole process group, five times while it
delivers, and started again each time. The outbox relay (run here every second, as beat would run it)
re-publishes what the kills lost: a SIGKILLed worker's reserved messages stay unacknowledged in Redis until the
broker's visibility timeout (an hour), so without the relay those notices would wait that long.

Every notice must end `sent`, there must be exactly 1,000 notices, and a notice delivered more than once (the
worker died between sending and marking it sent) must carry the same Message-ID, or webhook-id, every time.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.db import transaction

from ntd import roles
from reports.models import Assessment, Case
from takedown import delivery, rendering, secrets, services
from takedown.models import Notice, NoticeKind, Partner, PartnerContact
from tests.mailbox import Mailbox, free_port
from tests.reports.factories import CaseFactory
from tests.takedown.test_delivery import forget_queue
from tests.takedown.webhook_receiver import Receiver, webhook_receiver_fixture  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]
CELERY = Path(sys.executable).parent / "celery"
NOTICES = 1_000
KILLS = 5
CONCURRENCY = 4
RELAY_GRACE = 10  # seconds: NOTICE_RELAY_GRACE_SECONDS of the worker and the relay
# 68 s of delivery, 88 s for the whole test on the 2-core development machine at load average 5; the bound is
# generous so that a busier machine is slow, not a failure.
DEADLINE = 300.0  # seconds for the delivery of all notices, kills included


def database_url(settings: Any) -> str:
    """The test database (pytest-django's test_<name>[_gwN]) as a URL for the worker process."""
    db = settings.DATABASES["default"]
    user = urllib.parse.quote(db.get("USER") or "postgres")
    password = f":{urllib.parse.quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    return f"postgres://{user}{password}@{db.get('HOST') or '127.0.0.1'}:{db.get('PORT') or 5432}/{db['NAME']}"


class WorkerProcess:
    """`celery -A ntd worker` in a process group of its own, killed and started again by the test."""

    def __init__(self, env: dict[str, str], queue: str, log: Path) -> None:
        self.env, self.queue, self.log = env, queue, log
        self.process: subprocess.Popen[Any] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        with self.log.open("a") as out:
            out.write(f"\n--- start {self.starts} ---\n")
            self.process = subprocess.Popen(
                [str(CELERY), "-A", "ntd", "worker", "-Q", self.queue, "-c", str(CONCURRENCY), "-P", "prefork",
                 "-n", f"kill-{self.starts}-{uuid.uuid4().hex[:6]}@%h", "--loglevel", "WARNING",
                 "--without-gossip", "--without-mingle", "--without-heartbeat"],
                cwd=ROOT, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self) -> None:
        """SIGKILL to the whole group: the main process and every child, mid-task, no clean-up."""
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # a child the kernel had not reaped yet
            os.killpg(self.process.pid, signal.SIGKILL)

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""


def make_notices(scheme: Any, analyst: Any, partners: list[Partner]) -> list[int]:
    """NOTICES committed notices, one case each, spread over the partners, each published to the test's queue."""
    verdict, clause = scheme.verdict("illegal_baseline"), scheme.clause("INT", "BL-1")
    media, age = scheme.option("media_type", "images"), scheme.option("age_group", "prepubescent")
    ids: list[int] = []
    for start in range(0, NOTICES, 100):
        with transaction.atomic():
            cases = [CaseFactory.build(status=Case.Status.ACTIONING, url=f"https://kill{n}.example/item/{n}")
                     for n in range(start, start + 100)]
            Case.objects.bulk_create(cases)
            Assessment.objects.bulk_create([
                Assessment(case=case, assessor=analyst, kind="first", verdict=verdict, clause=clause,
                           media_type=media, age_group=age) for case in cases])
            for n, case in enumerate(cases, start=start):
                notice = services.issue_notice(partner=partners[n % len(partners)], kind=NoticeKind.TAKEDOWN,
                                               cases=[case], actor=None, immediate=True)
                ids.append(notice.pk)
    return ids


def test_a_worker_killed_five_times_delivers_every_notice_once_marked_and_with_stable_ids(
        transactional_db: None, scheme: Any, make_staff: Any, settings: Any, task_queue: str,
        webhook_receiver: Any, tmp_path: Path) -> None:
    from ntd.celery import app as celery_app

    settings.NOTICE_RELAY_GRACE_SECONDS = RELAY_GRACE
    rendering.install_default_templates()
    analyst = make_staff(roles.ANALYST).user

    box = Mailbox()
    smtp = Controller(box, hostname="127.0.0.1", port=free_port())
    smtp.start()
    by_mail = Partner.objects.create(name="Mail Hosting", kind="hosting_provider", country="GB")
    PartnerContact.objects.create(partner=by_mail, channel="email", email="abuse@mail-host.example")
    by_hook = Partner.objects.create(name="Hook Hosting", kind="hosting_provider", country="GB")
    hook = PartnerContact.objects.create(partner=by_hook, channel="webhook", webhook_url=webhook_receiver.url())
    by_both = Partner.objects.create(name="Both Hosting", kind="hosting_provider", country="GB")
    second_receiver = Receiver()  # the "both" contact's webhook, with its own secret
    both = PartnerContact.objects.create(partner=by_both, channel="both", email="abuse@both-host.example",
                                         webhook_url=second_receiver.url("/both"))
    webhook_receiver.secret = secrets.new_webhook_secret(hook)
    second_receiver.secret = secrets.new_webhook_secret(both)

    made = time.monotonic()
    notice_ids = make_notices(scheme, analyst, [by_mail, by_hook, by_both, by_mail, by_hook])
    assert Notice.objects.count() == NOTICES
    made = time.monotonic() - made

    env = dict(os.environ)
    env.update({
        "DATABASE_URL": database_url(settings),
        "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "CELERY_TASK_DEFAULT_QUEUE": task_queue,
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
        "DEFAULT_FROM_EMAIL": "notices@hotline.test",
        "NOTICE_ALLOW_HTTP": "1",
        "NOTICE_RELAY_GRACE_SECONDS": str(RELAY_GRACE),
        "NOTICE_RETRY_SECONDS": "0.5",
        "NOTICE_MAX_ATTEMPTS": "20",
        "NOTICE_HTTP_TIMEOUT": "5",
        "AUDIT_CHECKPOINT_PATH": str(tmp_path / "audit-checkpoints.jsonl"),
        "PYTHONUNBUFFERED": "1",
    })
    worker = WorkerProcess(env, task_queue, tmp_path / "worker.log")
    sent_at_kills: list[int] = []
    began = time.monotonic()
    last_relay = 0.0

    def sent() -> int:
        return Notice.objects.filter(pk__in=notice_ids, state=Notice.State.SENT).count()

    def relay_now_and_then() -> None:
        nonlocal last_relay
        if time.monotonic() - last_relay >= 1.0:
            delivery.relay_outbox()
            last_relay = time.monotonic()

    try:
        worker.start()
        # Kill each time another eighth of the notices has gone out: always in the middle of delivering
        for kill in range(1, KILLS + 1):
            target = min(NOTICES - 1, sent_at_kills[-1] + NOTICES // 8 if sent_at_kills else NOTICES // 8)
            while (done := sent()) < target:
                assert time.monotonic() - began < DEADLINE, f"{done} sent before kill {kill}:\n{worker.tail()}"
                assert worker.alive(), f"the worker stopped by itself:\n{worker.tail()}"
                relay_now_and_then()
                time.sleep(0.05)
            worker.kill()
            sent_at_kills.append(sent())
            worker.start()
        while (done := sent()) < NOTICES:
            assert time.monotonic() - began < DEADLINE, (
                f"{done} of {NOTICES} sent after {DEADLINE} s; states "
                f"{dict(collections.Counter(Notice.objects.values_list('state', flat=True)))}:\n{worker.tail()}")
            relay_now_and_then()
            time.sleep(0.1)
        elapsed = time.monotonic() - began
    finally:
        if worker.alive():
            worker.kill()
        forget_queue(task_queue)  # with what the killed workers left unacknowledged (restored in an hour)
        smtp.stop()
        second_receiver.stop()

    # Five kills, each while notices were still going out
    assert len(sent_at_kills) == KILLS and worker.starts == KILLS + 1
    assert all(0 < count < NOTICES for count in sent_at_kills), sent_at_kills
    # Every notice sent, none made twice
    assert Notice.objects.count() == NOTICES
    assert Notice.objects.filter(state=Notice.State.SENT).count() == NOTICES
    notices = {n.reference: n for n in Notice.objects.select_related("contact")}

    # E-mail: every e-mail notice arrived; every copy of one notice has its one Message-ID
    mails: dict[str, set[str]] = collections.defaultdict(set)
    mail_copies = collections.Counter()
    for message in box.messages():
        reference = message["X-Ntd-Notice"]
        mails[reference].add(message["Message-ID"])
        mail_copies[reference] += 1
    by_email = {ref for ref, n in notices.items() if n.channel in ("email", "both")}
    assert set(mails) == by_email
    for reference, ids in mails.items():
        assert ids == {notices[reference].message_id}, reference

    # Webhooks: every webhook notice arrived, signed; every copy of one notice has its one webhook-id
    hooks: dict[str, set[str]] = collections.defaultdict(set)
    hook_copies = collections.Counter()
    for request in webhook_receiver.received() + second_receiver.received():
        assert request.verified, request.error
        reference = request.json()["notice"]["reference"]
        hooks[reference].add(request.webhook_id)
        hook_copies[reference] += 1
    by_webhook = {ref for ref, n in notices.items() if n.channel in ("webhook", "both")}
    assert set(hooks) == by_webhook
    for reference, ids in hooks.items():
        assert ids == {str(notices[reference].idempotency_key)}, reference

    repeated_mail = sum(1 for count in mail_copies.values() if count > 1)
    repeated_hook = sum(1 for count in hook_copies.values() if count > 1)
    print(f"\n{NOTICES} notices issued in {made:.1f} s, sent in {elapsed:.1f} s with {KILLS} kills at "
          f"{sent_at_kills} sent; "
          f"{len(by_email)} by e-mail ({repeated_mail} delivered more than once), {len(by_webhook)} by webhook "
          f"({repeated_hook} more than once)")
