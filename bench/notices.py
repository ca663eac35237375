#!/usr/bin/env python
"""Notices delivered per second, end to end, by a real Celery worker process, beside a raw baseline in the same run.

    .venv/bin/python bench/notices.py [--notices 2000] [--concurrency 1,4,8] [--keep] [--fresh] [--quick]

See bench/README.md ("Notices") for what each figure means. In short, on a scratch database (created, migrated,
and dropped at the end unless --keep) and a Redis database of its own, with a loopback SMTP server (aiosmtpd) and
a loopback webhook receiver (http.server, keep-alive) running in this process, it

1. measures the raw baseline: --notices SMTP sends with smtplib (a connection per message, as Django's SMTP
   backend makes one per send) and --notices webhook POSTs with httpx (one keep-alive client), of messages the
   size of a real notice, one after the other in this process, no ntd code;
2. for each worker concurrency in --concurrency and each channel mix (e-mail only, webhook only, half each):
   issues --notices takedown notices (one case each) through `takedown.services.issue_notice` with their
   delivery messages held back, starts `celery -A ntd worker -c N` (prefork) on a queue of its own, waits until
   it answers a ping, then publishes the --notices delivery messages and waits until every notice is `sent`;
   the time runs from the first publish to the last notice's `sent_at`;

and prints notices/s for each run, the worker's CPU per notice, and the ratio to the baseline (stdout; progress
on stderr). Only loopback services are used; every loop ends by itself (a fixed count, or a time-out).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import email.policy
import json
import os
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.export import load_text  # noqa: E402
from bench.intake import (  # noqa: E402 - after the path is set
    bench_env,
    django_setup,
    drop_database,
    free_port,
    loopback_only,
    prepare_database,
    say,
    tree_cpu,
)
from bench.triage import code_version  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ntd_bench_notices"
DEFAULT_REDIS = "redis://127.0.0.1:6379/11"
NOTICES, QUICK_NOTICES = 2_000, 200
CELERY = Path(sys.executable).parent / "celery"
QUEUE = "ntd-bench-notices"
VOID = "ntd-bench-notices-held"  # where issue_notice's own publish goes while a run's notices are made
RUN_TIMEOUT = 600.0  # seconds for one run's deliveries

MIXES = {"e-mail": ("email",), "webhook": ("webhook",), "half each": ("email", "webhook")}


# --- The loopback sinks ------------------------------------------------------------------------------------------


class SmtpSink:
    """aiosmtpd on loopback: counts messages and keeps their Message-IDs (to count repeats)."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.count = 0
        self.ids: set[str] = set()
        self._lock = threading.Lock()
        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                header = next((line for line in envelope.content.split(b"\r\n", 40)
                               if line.lower().startswith(b"message-id:")), b"")
                with sink._lock:
                    sink.count += 1
                    sink.ids.add(header.split(b":", 1)[-1].strip().decode(errors="replace"))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
        self.controller.start()
        self.port = self.controller.port

    def reset(self) -> None:
        with self._lock:
            self.count, self.ids = 0, set()

    def stop(self) -> None:
        self.controller.stop()


class HookSink:
    """A keep-alive HTTP server on loopback answering 200: counts requests and their webhook-ids."""

    def __init__(self) -> None:
        self.count = 0
        self.ids: set[str] = set()
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go in two writes: no 40 ms delayed-ACK stall

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink._lock:
                    sink.count += 1
                    sink.ids.add(self.headers.get("webhook-id", ""))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "11")
                self.end_headers()
                self.wfile.write(b'{"ok":true}')

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def reset(self) -> None:
        with self._lock:
            self.count, self.ids = 0, set()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- The raw baseline --------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    label: str
    concurrency: int | None
    notices: int
    seconds: float
    cpu_s: float | None = None
    note: str = ""

    @property
    def rate(self) -> float:
        return self.notices / self.seconds if self.seconds else 0.0


def sample_message(body: str, subject: str) -> tuple[bytes, bytes]:
    """An e-mail and a webhook body the size of a real notice."""
    message = EmailMessage()
    message["Subject"] = subject
    message["From"] = "notices@bench.test"
    message["To"] = "abuse@mail-host.bench"
    message["Message-ID"] = f"<{uuid.uuid4()}@bench.test>"
    message.set_content(body)
    payload = json.dumps({"type": "notice.takedown", "notice": {"reference": "N-0000-0000", "body": body[:1500]}})
    return message.as_bytes(policy=email.policy.SMTP), payload.encode()


def baseline(n: int, smtp: SmtpSink, hooks: HookSink, mail: bytes, payload: bytes, channels: tuple[str, ...],
             label: str) -> Measurement:
    """n sends, one after the other in this process: smtplib with a connection per message, httpx keep-alive."""
    started = time.perf_counter()
    cpu_before = time.process_time()
    with httpx.Client() as client:
        for i in range(n):
            if channels[i % len(channels)] == "email":
                with smtplib.SMTP("127.0.0.1", smtp.port, timeout=20) as server:
                    server.sendmail("notices@bench.test", ["abuse@mail-host.bench"], mail)
            else:
                response = client.post(hooks.url(), content=payload,
                                       headers={"Content-Type": "application/json", "webhook-id": str(i)})
                response.raise_for_status()
    return Measurement(label, None, n, time.perf_counter() - started, time.process_time() - cpu_before,
                       "this process (client and sinks)")


# --- The ntd runs ------------------------------------------------------------------------------------------------


@dataclass
class World:
    analyst: Any
    partners: dict[str, Any]  # channel -> Partner
    scheme: dict[str, Any]


def make_world(hooks: HookSink) -> World:
    """An analyst, a partner reached by e-mail and one by webhook (with its signing secret), the templates."""
    from ntd import roles
    from ntd.models import User
    from reports.models import ClassificationOption, PolicyClause, Verdict
    from takedown import rendering, secrets
    from takedown.models import Partner, PartnerContact

    rendering.install_default_templates()
    analyst, created = User.objects.get_or_create(username="bench-notices-analyst")
    if created:
        roles.assign_role(analyst, roles.ANALYST)
    mail, _ = Partner.objects.get_or_create(name="Bench mail host", defaults={"kind": "hosting_provider",
                                                                             "country": "GB"})
    hook, _ = Partner.objects.get_or_create(name="Bench webhook host", defaults={"kind": "hosting_provider",
                                                                                "country": "GB"})
    PartnerContact.objects.filter(partner__in=[mail, hook]).delete()
    PartnerContact.objects.create(partner=mail, channel="email", email="abuse@mail-host.bench")
    contact = PartnerContact.objects.create(partner=hook, channel="webhook", webhook_url=hooks.url())
    secrets.new_webhook_secret(contact)
    scheme = {"verdict": Verdict.objects.get(code="illegal_baseline"),
              "clause": PolicyClause.objects.get(jurisdiction="INT", code="BL-1"),
              "media_type": ClassificationOption.objects.get(field="media_type", code="images"),
              "age_group": ClassificationOption.objects.get(field="age_group", code="prepubescent")}
    return World(analyst, {"email": mail, "webhook": hook}, scheme)


def issue_notices(world: World, n: int, channels: tuple[str, ...], tag: str) -> tuple[list[int], float]:
    """n committed takedown notices, one case each, their delivery messages held back; (ids, seconds)."""
    from django.db import transaction

    from ntd.celery import app as celery_app
    from reports.models import Assessment, Case, Queue
    from takedown import services

    queue = Queue.objects.default_id()
    ids: list[int] = []
    started = time.perf_counter()
    celery_app.conf.task_default_queue = VOID
    try:
        for start in range(0, n, 200):
            with transaction.atomic():
                cases = []
                for i in range(start, min(n, start + 200)):
                    url = f"https://bench-{tag}-{i}.example/item/{i}"
                    cases.append(Case(url=url, url_key=uuid.uuid5(uuid.NAMESPACE_URL, url).hex * 2,
                                      host=url.split("/")[2], registrable_domain=url.split("/")[2],
                                      status=Case.Status.ACTIONING, queue_id=queue))
                Case.objects.bulk_create(cases)
                Assessment.objects.bulk_create([Assessment(case=case, assessor=world.analyst, kind="first",
                                                           **world.scheme) for case in cases])
                for i, case in enumerate(cases, start=start):
                    partner = world.partners[channels[i % len(channels)]]
                    ids.append(services.issue_notice(partner=partner, kind="takedown", cases=[case], actor=None,
                                                     immediate=True).pk)
    finally:
        forget_queue(VOID)
        celery_app.conf.task_default_queue = QUEUE
    return ids, time.perf_counter() - started


def forget_queue(name: str) -> None:
    """Delete a queue of the benchmark's own from Redis: its messages and bindings (kombu's queue_delete on a fresh
    channel deletes nothing: it knows only the bindings that channel declared itself)."""
    from ntd.celery import app as celery_app

    with celery_app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}",
                      *client.scan_iter(f"{name}\x06*"))


class WorkerProcess:
    def __init__(self, env: dict[str, str], concurrency: int, log: Path) -> None:
        self.name = f"bench-{uuid.uuid4().hex[:8]}@%h"
        with log.open("a") as out:
            self.process = subprocess.Popen(
                [str(CELERY), "-A", "ntd", "worker", "-Q", QUEUE, "-c", str(concurrency), "-P", "prefork",
                 "-n", self.name, "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                 "--without-heartbeat"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 120.0) -> None:
        from ntd.celery import app as celery_app

        deadline = time.monotonic() + timeout
        hostname = self.name.replace("%h", os.uname().nodename)
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"bench: the worker exited ({self.process.returncode}); see its log")
            if celery_app.control.ping(destination=[hostname], timeout=0.5):
                return
        raise SystemExit("bench: the worker did not answer a ping in time")

    def cpu(self) -> float | None:
        return tree_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)


def run_ntd(world: World, env: dict[str, str], concurrency: int, mix: str, n: int, smtp: SmtpSink,
            hooks: HookSink, log: Path) -> Measurement:
    from django.db.models import Max

    from takedown.models import Notice
    from takedown.tasks import deliver_notice_task

    channels = MIXES[mix]
    ids, issue_s = issue_notices(world, n, channels, f"{concurrency}-{mix.replace(' ', '')}-{uuid.uuid4().hex[:6]}")
    say(f"  issued {n:,} notices in {issue_s:.1f} s ({n / issue_s:,.0f}/s, in this process)")
    smtp.reset()
    hooks.reset()
    worker = WorkerProcess(env, concurrency, log)
    try:
        worker.wait_ready()
        cpu_before = worker.cpu()
        started = dt.datetime.now(dt.UTC)
        for notice_id in ids:
            deliver_notice_task.apply_async((notice_id,), queue=QUEUE)
        published_s = (dt.datetime.now(dt.UTC) - started).total_seconds()
        deadline = time.monotonic() + RUN_TIMEOUT
        while (sent := Notice.objects.filter(pk__in=ids, state=Notice.State.SENT).count()) < n:
            failed = Notice.objects.filter(pk__in=ids, state=Notice.State.FAILED).count()
            if failed or time.monotonic() > deadline:
                raise SystemExit(f"bench: {sent:,} sent, {failed:,} failed of {n:,}; see {log}")
            time.sleep(0.1)
        last = Notice.objects.filter(pk__in=ids).aggregate(last=Max("sent_at"))["last"]
        cpu_after = worker.cpu()
    finally:
        worker.stop()
    seconds = (last - started).total_seconds()
    cpu = cpu_after - cpu_before if cpu_after is not None and cpu_before is not None else None
    emails = sum(1 for i in range(n) if channels[i % len(channels)] == "email")
    repeats = (smtp.count - emails) + (hooks.count - (n - emails))
    note = f"published in {published_s:.2f} s; issued at {n / issue_s:,.0f}/s"
    if repeats:
        note += f"; {repeats} repeated deliveries"
    return Measurement(f"ntd {mix}", concurrency, n, seconds, cpu, note)


# --- Report ------------------------------------------------------------------------------------------------------


def print_report(header: list[str], rows: list[Measurement], baselines: dict[str, Measurement]) -> None:
    width = 128
    print("=" * width)
    for line in header:
        print(line)
    print("-" * width)
    print(f"{'run':34} {'worker -c':>9} {'notices':>8} {'seconds':>8} {'notices/s':>10} {'CPU ms/notice':>14} "
          f"{'baseline/s':>11} {'ntd/baseline':>13}  note")
    print("-" * width)
    for row in rows:
        base = baselines.get(row.label.removeprefix("ntd ")) if row.concurrency is not None else None
        ratio = f"{row.rate / base.rate:.2f}" if base and base.rate else "-"
        cpu = f"{row.cpu_s / row.notices * 1000:.1f}" if row.cpu_s is not None and row.notices else "-"
        conc = str(row.concurrency) if row.concurrency is not None else "-"
        base_rate = f"{base.rate:,.0f}" if base else "-"
        print(f"{row.label:34} {conc:>9} {row.notices:>8,} {row.seconds:>8.2f} {row.rate:>10,.1f} {cpu:>14} "
              f"{base_rate:>11} {ratio:>13}  {row.note}")
    print("=" * width)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notices", type=int, default=None, help=f"notices per run (default {NOTICES:,})")
    parser.add_argument("--concurrency", default="1,4,8",
                        help="worker concurrencies (prefork children), comma-separated (default 1,4,8)")
    parser.add_argument("--mixes", default=",".join(MIXES), help=f"channel mixes to run (default {','.join(MIXES)})")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_NOTICES} notices, concurrency 4: a check")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--fresh", action="store_true", help="drop the scratch database first")
    parser.add_argument("--db-url", default=DEFAULT_DB, help=f"scratch database (default {DEFAULT_DB})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis database (default {DEFAULT_REDIS})")
    args = parser.parse_args()
    n = args.notices or (QUICK_NOTICES if args.quick else NOTICES)
    concurrencies = [4] if args.quick else [int(c) for c in args.concurrency.split(",") if c.strip()]
    mixes = [m.strip() for m in args.mixes.split(",") if m.strip()]
    if n < 1 or not concurrencies or any(c < 1 for c in concurrencies) or any(m not in MIXES for m in mixes):
        parser.error(f"--notices and --concurrency must be positive; --mixes are {', '.join(MIXES)}")
    loopback_only(args.db_url, args.redis_url)

    workdir = Path(tempfile.mkdtemp(prefix="ntd-bench-notices-"))
    env = bench_env(args, workdir)
    smtp, hooks = SmtpSink(), HookSink()
    env.update({
        "DJANGO_SETTINGS_MODULE": "ntd.settings",
        "NTD_COUNTRY": env.get("NTD_COUNTRY") or "GB",
        "EMAIL_URL": f"smtp://127.0.0.1:{smtp.port}",
        "DEFAULT_FROM_EMAIL": "notices@bench.test",
        "NOTICE_ALLOW_HTTP": "1",  # the receiver is plain http on loopback
        "NOTICE_RELAY_GRACE_SECONDS": "3600",  # nothing is lost here: no relay in the way of the measurement
        "CELERY_TASK_DEFAULT_QUEUE": QUEUE,
        "LOG_LEVEL": "WARNING",
    })
    cpus = os.cpu_count() or 1
    load_at_start = os.getloadavg()[0]
    header = [f"ntd notices benchmark  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  {cpus} CPUs  load average "
              f"(1/5/15 min) at start {load_text()}"
              + ("  BUSY MACHINE: absolute figures are not comparable" if load_at_start > cpus / 2 else "")]
    ok = False
    try:
        prepare_database(args, env)
        django_setup(env)
        from ntd.celery import app as celery_app

        celery_app.conf.task_default_queue = QUEUE
        forget_queue(QUEUE)  # a run interrupted earlier may have left messages
        world = make_world(hooks)

        # A real notice's e-mail and webhook body, for the baseline
        warm_ids, _ = issue_notices(world, 1, ("email",), f"sample-{uuid.uuid4().hex[:6]}")
        from takedown import rendering
        from takedown.models import Notice

        rendered = rendering.render(Notice.objects.get(pk=warm_ids[0]))
        mail, payload = sample_message(rendered.body, rendered.subject)
        Notice.objects.filter(pk__in=warm_ids).update(state=Notice.State.WITHDRAWN)

        baselines: dict[str, Measurement] = {}
        rows: list[Measurement] = []
        for mix in mixes:
            say(f"baseline, {mix}: {n:,} sends in this process")
            baselines[mix] = baseline(n, smtp, hooks, mail, payload, tuple(MIXES[mix]), f"raw {mix} (1 process)")
            rows.append(baselines[mix])
        for concurrency in concurrencies:
            for mix in mixes:
                say(f"ntd, worker -c {concurrency}, {mix}: {n:,} notices")
                row = run_ntd(world, env, concurrency, mix, n, smtp, hooks, workdir / "worker.log")
                say(f"  {row.rate:,.1f} notices/s ({row.seconds:.2f} s)")
                rows.append(row)
        header.append(f"database {args.db_url}; Python {sys.version.split()[0]}; code {code_version()}; "
                      f"load average at end {load_text()}")
        header.append("time: first delivery message published → last notice's sent_at (seal, render, send, mark, "
                      "audit); the sinks run in the benchmark's own process")
        print_report(header, rows, baselines)
        ok = True
        return 0
    finally:
        if "django" in sys.modules:
            forget_queue(QUEUE)
        smtp.stop()
        hooks.stop()
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep:
            drop_database(args)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
