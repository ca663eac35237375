#!/usr/bin/env python
"""The audit log's CSV export and its verification on 1 million events, beside PostgreSQL's own COPY in the same run.

    .venv/bin/python bench/export.py [--events 1000000] [--rounds 1] [--keep] [--fresh] [--quick] [--skip-http]

See bench/README.md ("Exports") for what each figure means. In short, on a scratch database (created, migrated, and
dropped at the end unless --keep) it

1. fills ntd_auditevent with --events events that form a valid chain, with signed checkpoints, in one COPY
   (bench/bench_audit_verify.py's `copy_chain()`): the lives of cases as ntd writes them (a report received, a
   case opened or joined, traced, claimed, assessed, a second opinion, confirmed or closed), sign-ins, an
   auditor's views, by a few analysts, supervisors, partners and the system;
2. measures, each in a fresh process so that each peak RSS is that measurement's own:
   - `COPY (SELECT ... ORDER BY seq) TO STDOUT (FORMAT csv)` read through psycopg: the database's own limit;
   - the CSV export of the whole log as the export view makes it, in-process:
     `export_chunks(record_export(ExportRequest(kind="log", format="csv"), actor=auditor))`, read to the end;
   - the same through HTTP: POST /audit/export/ to gunicorn (one sync worker, signed in as the auditor), the
     StreamingHttpResponse read to the end; the peak RSS is the worker's;
   - `manage.py verify_audit_log`;

and prints events/s, seconds, peak RSS, the ratio to the COPY, the targets and PASS/MISS (stdout; progress on
stderr). Only loopback services are used; every loop ends by itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_audit_verify import COLUMNS, copy_chain  # noqa: E402 - after the path is set
from bench.intake import (  # noqa: E402
    PYTHON,
    Server,
    admin_url,
    bench_env,
    db_name,
    django_setup,
    drop_database,
    loopback_only,
    prepare_database,
    say,
)
from bench.triage import code_version, signed_in_cookie  # noqa: E402

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ntd_bench_export"
QUICK_DB = "postgres://postgres@127.0.0.1:5432/ntd_bench_export_quick"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"
EVENTS, QUICK_EVENTS = 1_000_000, 50_000

RATE_TARGET = 50_000  # events/s, the CSV export
RSS_TARGET_MB = 200.0  # peak RSS of the process that streams the export
VERIFY_TARGET_S = 60.0  # verify_audit_log, for 1 million events

COPY_SQL = f"COPY (SELECT {COLUMNS} FROM ntd_auditevent ORDER BY seq) TO STDOUT (FORMAT csv, HEADER)"  # noqa: S608
AUDITOR = "bench-auditor"
ANALYSTS, SUPERVISORS = 12, 3
PARTNERS = [("Bench hotline NL", "hotline"), ("Bench hotline DE", "hotline"), ("Bench police", "law_enforcement"),
            ("Bench flagger", "trusted_flagger")]

COPY_LABEL = "COPY (SELECT ...) TO STDOUT (FORMAT csv), psycopg"
EXPORT_LABEL = "CSV export in-process (export_chunks)"
HTTP_LABEL = "CSV export over HTTP (POST /audit/export/)"
VERIFY_LABEL = "manage.py verify_audit_log"


# --- The events -------------------------------------------------------------------------------------------------


@dataclass
class Actors:
    auditor: Any  # ntd.models.User
    analysts: list[int]
    supervisors: list[int]
    partners: list[tuple[int, str]]  # pk, kind


def make_actors() -> Actors:
    """An auditor (who exports), analysts, supervisors and partners, as an admin makes them. Idempotent."""
    from ntd import roles
    from ntd.models import User
    from takedown.models import Partner

    def user(name: str, role: str) -> Any:
        found, created = User.objects.get_or_create(username=name)
        if created:
            found.set_unusable_password()
            found.save(update_fields=["password"])
            roles.assign_role(found, role)
        return found

    analysts = [user(f"bench-analyst-{i:02d}", roles.ANALYST).pk for i in range(1, ANALYSTS + 1)]
    supervisors = [user(f"bench-supervisor-{i}", roles.SUPERVISOR).pk for i in range(1, SUPERVISORS + 1)]
    partners = [(Partner.objects.get_or_create(name=name, defaults={"kind": kind, "country": "NL"})[0].pk, kind)
                for name, kind in PARTNERS]
    return Actors(user(AUDITOR, roles.AUDITOR), analysts, supervisors, partners)


VERDICTS = [("illegal_baseline", 55), ("illegal_national", 8), ("not_illegal", 22), ("unavailable", 12),
            ("out_of_remit", 3)]
CLOSED_AS = {"not_illegal": "not_illegal", "unavailable": "unavailable", "out_of_remit": "out_of_remit"}
COUNTRIES = ["NL", "DE", "US", "FR", "RU", "HK", "CA", "GB", "SE", "UA"]


def _reference(prefix: str, n: int) -> str:
    digits = f"{n:08d}"
    return f"{prefix}-{digits[:4]}-{digits[4:]}"


def realistic_events(n: int, actors: Actors, seed: int, start: dt.datetime, first_id: int) -> Iterator[tuple]:
    """n events, as `copy_chain()` takes them: the lives of cases, interleaved about 40 at a time as a team works
    them, and sign-ins and an auditor's views in between. Case, report and assessment ids start at `first_id`."""
    from ntd.audit import Action as A

    rng = random.Random(seed)
    ids = iter(range(first_id, first_id + 10 * n))
    verdict_codes = [code for code, _ in VERDICTS]
    verdict_weights = [weight for _, weight in VERDICTS]
    user = "user"

    def case_life() -> Iterator[tuple]:
        report_id, case_id = next(ids), next(ids)
        report, case = _reference("R", report_id), _reference("C", case_id)
        if rng.random() < 0.3:
            partner, kind = rng.choice(actors.partners)
            who, channel, source = ("partner", str(partner)), "api", kind
        else:
            who, channel, source = ("system", ""), "web", "public"
        opened = rng.random() < 0.85
        yield (*who, A.REPORT_RECEIVED, "reports.report", str(report_id), None,
               {"reference": report, "channel": channel, "source": source, "urls": 1, "cases": 1,
                "child_at_risk": False})
        if not opened:
            earlier = rng.randrange(first_id, case_id)
            yield (*who, A.CASE_REPORT_JOINED, "reports.case", str(earlier), earlier,
                   {"case": _reference("C", earlier), "report": report, "known_url": False})
            return
        about = ("reports.case", str(case_id), case_id)
        yield (*who, A.CASE_CREATED, *about, {"case": case, "report": report, "known_url": rng.random() < 0.02})
        yield ("system", "", A.CASE_TRACED, *about,
               {"case": case, "from": "received", "to": "received", "outcome": "ok", "country": rng.choice(COUNTRIES),
                "asn": rng.randrange(1000, 64000), "addresses": rng.randrange(1, 4), "source": "offline", "queue": 1})
        analyst = str(rng.choice(actors.analysts))
        yield (user, analyst, A.CASE_CLAIMED, *about, {"case": case, "from": "received", "to": "in_review"})
        if rng.random() < 0.1:
            yield (user, analyst, A.CASE_RELEASED, *about, {"case": case, "from": "in_review", "to": "received"})
            analyst = str(rng.choice(actors.analysts))
            yield (user, analyst, A.CASE_CLAIMED, *about, {"case": case, "from": "received", "to": "in_review"})
        verdict = rng.choices(verdict_codes, verdict_weights)[0]
        assessment = next(ids)
        assessed = {"case": case, "kind": "first", "verdict": verdict,
                    "clause": "BL-1" if verdict == "illegal_baseline" else "", "commercial": rng.random() < 0.2}
        if verdict.startswith("illegal"):
            assessed |= {"media_type": "images", "age_group": "prepubescent", "gender": "female",
                         "site_type": "image_host"}
        yield (user, analyst, A.CASE_ASSESSED, "reports.assessment", str(assessment), case_id, assessed)
        if verdict.startswith("illegal"):
            yield (user, analyst, A.CASE_SECOND_OPINION_REQUESTED, *about,
                   {"case": case, "from": "in_review", "to": "awaiting_second_opinion"})
            second = str(rng.choice([pk for pk in actors.analysts if str(pk) != analyst]))
            yield (user, second, A.CASE_CLAIMED, *about,
                   {"case": case, "from": "awaiting_second_opinion", "to": "awaiting_second_opinion"})
            assessment = next(ids)
            yield (user, second, A.CASE_ASSESSED, "reports.assessment", str(assessment), case_id,
                   {**assessed, "kind": "second"})
            yield (user, second, A.CASE_CONFIRMED, *about, {"case": case, "from": "awaiting_second_opinion",
                                                            "to": "confirmed", "verdict": verdict,
                                                            "assessment": assessment})
            yield (user, second, A.CASE_ACTIONING, *about, {"case": case, "from": "confirmed", "to": "actioning"})
        else:
            yield (user, analyst, A.CASE_CLOSED, *about, {"case": case, "from": "in_review", "to": CLOSED_AS[verdict],
                                                          "verdict": verdict, "assessment": assessment})
        if rng.random() < 0.05:
            yield (user, str(actors.auditor.pk), A.CASE_VIEWED, *about, {"case": case, "reason": "quality review"})

    def other() -> tuple:
        roll = rng.random()
        if roll < 0.6:
            person = rng.choice(actors.analysts + actors.supervisors)
            action = A.USER_LOGIN if rng.random() < 0.5 else A.USER_LOGOUT
            return (user, str(person), action, "ntd.user", str(person), None, {})
        if roll < 0.9:
            report = rng.randrange(first_id, first_id + 1 + n)
            return ("system", "", A.REPORT_STATUS_VIEWED, "reports.report", str(report), None, {})
        return ("system", "", A.REPORT_ACKNOWLEDGED, "reports.report", str(rng.randrange(first_id, first_id + 1 + n)),
                None, {})

    at = start
    lives = [case_life() for _ in range(40)]
    for _ in range(n):
        at += dt.timedelta(microseconds=rng.randrange(1, 1_200_000))
        if rng.random() < 0.04:
            event = other()
        else:
            slot = rng.randrange(len(lives))
            event = next(lives[slot], None)
            while event is None:
                lives[slot] = case_life()
                event = next(lives[slot], None)
        yield (at, *event)


def fill(target: int, actors: Actors, seed: int) -> float:
    """Append the events missing to reach `target` (all of them in a new database), then VACUUM (ANALYZE)."""
    from django.conf import settings
    from django.db import connection

    from ntd import audit

    have = audit.AuditEvent.objects.count()
    if have >= target:
        say(f"{have:,} audit events already there (>= {target:,}): no filling")
        return 0.0
    missing = target - have
    head = audit.head()
    last_at = audit.AuditEvent.objects.order_by("-seq").values_list("at", flat=True).first()
    start = max(last_at or dt.datetime.min.replace(tzinfo=dt.UTC), dt.datetime.now(dt.UTC) - dt.timedelta(days=8))
    say(f"filling {missing:,} audit events after #{head[0]:,} (one COPY, hashed in Python: about a minute per "
        "million on 2 quiet cores)")
    started = time.perf_counter()

    def with_progress(events: Iterator[tuple]) -> Iterator[tuple]:
        for n, event in enumerate(events, 1):
            if n % 200_000 == 0:
                say(f"  {n:,} of {missing:,} ({time.perf_counter() - started:.0f} s)")
            yield event

    events = realistic_events(missing, actors, seed + head[0], start, first_id=1 + 10 * head[0])
    copy_chain(with_progress(events), settings.AUDIT_CHECKPOINT_EVERY, head)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) ntd_auditevent")  # hint bits and statistics, as on a settled table
    seconds = time.perf_counter() - started
    say(f"filled in {seconds:.0f} s")
    return seconds


# --- Measurements -----------------------------------------------------------------------------------------------


@dataclass
class Measurement:
    label: str
    events: int
    seconds: float
    rss_mb: float | None
    first_byte_s: float | None = None
    mb_out: float | None = None
    cpu_s: float | None = None  # CPU seconds of the process that does the work (not PostgreSQL's)
    problem: str = ""

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# Starts the measured command and reports its wall time, exit status and peak RSS (wait4's ru_maxrss) to a file.
# A process's ru_maxrss starts at the RSS of the process it was forked from (Linux keeps the old memory's high-water
# mark across exec), so the command is started from this small interpreter, not from the benchmark with Django loaded.
LAUNCHER = """
import json, os, sys, time
started = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as fh:
    json.dump({"exit": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - started,
               "maxrss_kb": usage.ru_maxrss, "cpu": usage.ru_utime + usage.ru_stime}, fh)
"""


def run_measured(cmd: list[str], env: dict[str, str]) -> tuple[int, str, float, float, float]:
    """Run `cmd` to its end: exit code, stdout, wall seconds, the peak RSS (MB) of that process alone, CPU seconds."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as report:
        out = subprocess.run([PYTHON, "-c", LAUNCHER, report.name, *cmd], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                             text=True, check=True).stdout
        got = json.load(report)
    return got["exit"], out, got["seconds"], got["maxrss_kb"] / 1024, got["cpu"]  # Linux: ru_maxrss in KiB


def measure_in_child(kind: str, label: str, env: dict[str, str], profile: bool) -> Measurement:
    cmd = [PYTHON, str(Path(__file__).resolve()), "--measure", kind] + (["--profile"] if profile else [])
    code, out, _, rss, _ = run_measured(cmd, env)
    if code != 0:
        return Measurement(label, 0, 0.0, rss, problem=f"exit {code}")
    got = json.loads(out.strip().splitlines()[-1])
    problem = "" if got["rows"] == got["events"] else f"{got['rows']:,} CSV rows for {got['events']:,} events"
    return Measurement(label, got["events"], got["seconds"], rss, got["first_byte"], got["bytes"] / 1e6, got["cpu"],
                       problem)


def child_copy() -> dict[str, Any]:
    """In the child: the COPY read to the end, as fast as psycopg hands it over."""
    started, cpu = time.perf_counter(), time.process_time()
    size, first = 0, None
    with psycopg.connect(os.environ["DATABASE_URL"]) as conn, conn.cursor() as cursor:
        with cursor.copy(COPY_SQL) as copy:
            for data in copy:
                if first is None:
                    first = time.perf_counter() - started
                size += len(data)
        rows = cursor.rowcount
    return {"events": rows, "rows": rows, "bytes": size, "seconds": time.perf_counter() - started,
            "first_byte": first, "cpu": time.process_time() - cpu}


def child_export(profile: bool) -> dict[str, Any]:
    """In the child: the export view's path without the HTTP (record_export, then export_chunks read to the end)."""
    import django

    django.setup()
    from ntd import exports
    from ntd.models import User

    auditor = User.objects.get(username=AUDITOR)
    profiler = None
    if profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started, cpu = time.perf_counter(), time.process_time()
    pinned = exports.record_export(exports.ExportRequest(kind=exports.LOG, format="csv"), actor=auditor)
    size, lines, first = 0, 0, None
    for chunk in exports.export_chunks(pinned):
        if first is None:
            first = time.perf_counter() - started
        size += len(chunk)
        lines += chunk.count(b"\n")  # one per row: no cell of these events holds a line break
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    if profiler is not None:
        import pstats

        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    assert pinned.recorded is not None
    return {"events": pinned.recorded.events, "rows": lines - 1, "bytes": size, "seconds": seconds,
            "first_byte": first, "cpu": cpu}


def _stat(pid: int) -> list[str]:
    # Fields after "(comm)": [1] ppid, [11] utime, [12] stime (clock ticks).
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _cpu_s(pids: list[int]) -> float | None:
    try:
        return sum(int(fields[11]) + int(fields[12]) for fields in map(_stat, pids)) / os.sysconf("SC_CLK_TCK")
    except OSError:  # a worker gone (killed by gunicorn's timeout): the problem column says so
        return None


def _peak_rss_mb(pid: int) -> float | None:
    """VmHWM: the peak RSS of a live process, what ru_maxrss will say when it ends."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def measure_http(env: dict[str, str], workdir: Path, cookie: str) -> Measurement:
    """POST /audit/export/ (the whole log, CSV) to a fresh gunicorn with one sync worker, read to the end."""
    server_args = argparse.Namespace(workers=1, access_log=False, max_requests=None)
    with Server("export", env, workdir, server_args, "ntd.settings", {"NTD_BENCH_TIMEOUT": "1800"}) as server:
        server.wait_ready("/report/")
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        conn.request("GET", "/audit/export/", headers={"Cookie": cookie})
        resp = conn.getresponse()
        html = resp.read().decode()
        if resp.status != 200:
            return Measurement(HTTP_LABEL, 0, 0.0, None, problem=f"GET /audit/export/: {resp.status}")
        csrf = next((c.split(";", 1)[0] for c in resp.headers.get_all("Set-Cookie") or []
                     if c.startswith("csrftoken=")), None)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]*)"', html)
        if csrf is None or token is None:
            return Measurement(HTTP_LABEL, 0, 0.0, None, problem="GET /audit/export/: no CSRF cookie or token")
        body = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "case": "", "since": "", "until": "",
                                       "format": "csv"})
        with psycopg.connect(env["DATABASE_URL"]) as db:  # the export covers the events before its own
            expected = db.execute("SELECT count(*) FROM ntd_auditevent").fetchone()[0]  # type: ignore[index]
        workers = _children(server.pid or 0)
        started, cpu = time.perf_counter(), _cpu_s(workers)
        conn.request("POST", "/audit/export/", body=body, headers={
            "Cookie": f"{cookie}; {csrf}", "Content-Type": "application/x-www-form-urlencoded"})
        resp = conn.getresponse()
        size, lines, first = 0, 0, None
        while chunk := resp.read(64 * 1024):
            if first is None:
                first = time.perf_counter() - started
            size += len(chunk)
            lines += chunk.count(b"\n")  # a chunk may end between \r and \n: count the \n
        seconds, cpu_after = time.perf_counter() - started, _cpu_s(workers)
        cpu = cpu_after - cpu if cpu is not None and cpu_after is not None else None
        conn.close()
        rss = max((_peak_rss_mb(pid) or 0.0 for pid in workers), default=None)
        problem = ""
        if resp.status != 200 or not resp.getheader("Content-Type", "").startswith("text/csv"):
            problem = f"POST /audit/export/: {resp.status} {resp.getheader('Content-Type')}"
        elif server.boots() > 1:
            problem = "the worker was restarted during the export (timeout?)"
        elif lines - 1 != expected:
            problem = f"{lines - 1:,} CSV rows for {expected:,} events"
    return Measurement(HTTP_LABEL, max(0, lines - 1), seconds, rss, first, size / 1e6, cpu, problem)


def measure_verify(env: dict[str, str]) -> Measurement:
    code, out, seconds, rss, cpu = run_measured([PYTHON, str(ROOT / "manage.py"), "verify_audit_log"], env)
    checked = re.search(r"intact: (\d+) events", out)
    if code != 0 or checked is None:
        return Measurement(VERIFY_LABEL, 0, seconds, rss, cpu_s=cpu, problem=f"exit {code}: {out.strip()[:200]}")
    return Measurement(VERIFY_LABEL, int(checked.group(1)), seconds, rss, cpu_s=cpu)


# --- Report -----------------------------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def verdicts(m: Measurement) -> tuple[str, str]:
    """The figure's target and PASS/MISS (with what missed)."""
    if m.label == COPY_LABEL:
        return "baseline", ""
    if m.problem or not m.events:
        return "", "MISS (error)"
    if m.label == VERIFY_LABEL:
        projected = m.seconds / m.events * EVENTS
        scaled = "" if m.events >= EVENTS else f" ({projected:.0f} s projected)"
        return f"< {VERIFY_TARGET_S:.0f} s per 1M{scaled}", "PASS" if projected < VERIFY_TARGET_S else "MISS"
    missed = [what for what, ok in (("rate", m.rate >= RATE_TARGET),
                                    ("RSS", m.rss_mb is not None and m.rss_mb < RSS_TARGET_MB)) if not ok]
    return f">= {RATE_TARGET:,}/s, < {RSS_TARGET_MB:.0f} MB", "PASS" if not missed else f"MISS ({', '.join(missed)})"


def print_report(header: list[str], results: list[Measurement]) -> bool:
    width = 168
    copy = next((m for m in results if m.label == COPY_LABEL), None)
    print()
    print("=" * width)
    for line in header:
        print(line)
    print("-" * width)
    print(f"{'figure':46} {'events':>10} {'events/s':>9} {'seconds':>8} {'1st byte':>8} {'CPU s':>7} {'ev/CPU-s':>9} "
          f"{'MB out':>6} {'peak RSS':>8} {'× COPY':>6}  {'target':32} verdict")
    ok = True
    for m in results:
        target, verdict = verdicts(m)
        ok = ok and not verdict.startswith("MISS")
        ratio = f"{m.rate / copy.rate:.2f}" if copy is not None and copy.rate and m.rate else "-"
        per_cpu = m.events / m.cpu_s if m.cpu_s else None
        print(f"{m.label:46} {m.events:>10,} {m.rate:>9,.0f} {m.seconds:>8.2f} {_fmt(m.first_byte_s, '.2f'):>8} "
              f"{_fmt(m.cpu_s, '.2f'):>7} {_fmt(per_cpu, ',.0f'):>9} {_fmt(m.mb_out, '.0f'):>6} "
              f"{_fmt(m.rss_mb, '.0f') + ' MB':>8} {ratio:>6}  {target:32} {verdict}")
        if m.problem:
            print(f"    PROBLEM {m.problem}")
    print("=" * width)
    return ok


def load_text() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


# --- Main -------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None, help=f"audit events in the log (default {EVENTS:,})")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_EVENTS:,} events in {db_name(QUICK_DB)}: a check that everything works")
    parser.add_argument("--rounds", type=int, default=1, help="repeat the measurements, keep each one's best rate")
    parser.add_argument("--skip-http", action="store_true", help="no gunicorn, no HTTP export")
    parser.add_argument("--profile", action="store_true", help="cProfile of the in-process export, to stderr")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (and its events)")
    parser.add_argument("--fresh", action="store_true", help="drop the scratch database first")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db-url", default=None, help=f"scratch database (default {DEFAULT_DB})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis database (default {DEFAULT_REDIS})")
    parser.add_argument("--measure", choices=["copy", "export"], help=argparse.SUPPRESS)  # the child's side
    args = parser.parse_args()
    if args.measure:
        got = child_copy() if args.measure == "copy" else child_export(args.profile)
        print(json.dumps(got))
        return 0
    args.events = args.events or (QUICK_EVENTS if args.quick else EVENTS)
    args.db_url = args.db_url or (QUICK_DB if args.quick else DEFAULT_DB)
    loopback_only(args.db_url, args.redis_url)
    if args.events < 1 or args.rounds < 1:
        parser.error("--events and --rounds must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="ntd-bench-export-"))
    # The checkpoints live with the database: kept with it (--keep), started afresh with a new one.
    checkpoints = ROOT / "var" / "bench" / f"{db_name(args.db_url)}-audit-checkpoints.jsonl"
    checkpoints.parent.mkdir(parents=True, exist_ok=True)
    env = bench_env(args, workdir)
    env.update({"AUDIT_CHECKPOINT_PATH": str(checkpoints), "DJANGO_SETTINGS_MODULE": "ntd.settings",
                # The view hands an export of more events than this to a worker; here it streams them all.
                "EXPORT_ASYNC_ABOVE": str(10**12)})
    cpus = os.cpu_count() or 1
    load_at_start = os.getloadavg()[0]
    header = [f"ntd export benchmark  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  {cpus} CPUs  load average "
              f"(1/5/15 min) at start {load_text()}"
              + ("  BUSY MACHINE: absolute figures are not comparable" if load_at_start > cpus / 2 else "")]
    ok = False
    try:
        with psycopg.connect(admin_url(args.db_url), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db_name(args.db_url)]).fetchone()
        if args.fresh or not exists:
            checkpoints.unlink(missing_ok=True)
        prepare_database(args, env)
        django_setup(env)
        from django.db import connection

        from ntd.audit import AuditEvent

        actors = make_actors()
        fill(args.events, actors, args.seed)
        with connection.cursor() as cursor:
            cursor.execute("SELECT version(), pg_size_pretty(pg_total_relation_size('ntd_auditevent'))")
            server, size = cursor.fetchone()
        total = AuditEvent.objects.count()
        header.append(f"database {args.db_url}: {total:,} audit events ({size} with indexes); "
                      f"{server.split(' on ')[0]}; Python {sys.version.split()[0]}; code {code_version()}")
        say("warm-up: one COPY, not measured (both sides find the table in the same cache state)")
        run_measured([PYTHON, str(Path(__file__).resolve()), "--measure", "copy"], env)
        cookie = signed_in_cookie(actors.auditor)
        connection.close()

        best: dict[str, Measurement] = {}
        peak_rss: dict[str, float] = {}

        def keep(m: Measurement) -> None:
            say(f"  {m.label}: {m.events:,} events in {m.seconds:.2f} s, {m.rate:,.0f}/s, peak RSS "
                f"{_fmt(m.rss_mb, '.0f')} MB {m.problem}")
            peak_rss[m.label] = max(peak_rss.get(m.label, 0.0), m.rss_mb or 0.0)
            if m.label not in best or m.problem or (not best[m.label].problem and m.rate > best[m.label].rate):
                best[m.label] = m

        for round_no in range(1, args.rounds + 1):
            say(f"round {round_no}: {COPY_LABEL}")
            keep(measure_in_child("copy", COPY_LABEL, env, profile=False))
            say(f"round {round_no}: {EXPORT_LABEL}")
            keep(measure_in_child("export", EXPORT_LABEL, env, profile=args.profile))
            if not args.skip_http:
                say(f"round {round_no}: {HTTP_LABEL}")
                keep(measure_http(env, workdir, cookie))
            say(f"round {round_no}: {VERIFY_LABEL}")
            keep(measure_verify(env))
        for label, m in best.items():
            m.rss_mb = peak_rss[label] or m.rss_mb  # the highest peak of all rounds, against the target
        header.append(
            f"each figure in a fresh process (peak RSS: ru_maxrss of that process; over HTTP the gunicorn worker's "
            f"VmHWM); rounds {args.rounds}, best rate and highest RSS kept; load average at end {load_text()}")
        order = [COPY_LABEL, EXPORT_LABEL, HTTP_LABEL, VERIFY_LABEL]
        passed = print_report(header, [best[label] for label in order if label in best])
        ok = True
        return 0 if passed else 1
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep:
            drop_database(args)
            checkpoints.unlink(missing_ok=True)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")


if __name__ == "__main__":
    sys.exit(main())
