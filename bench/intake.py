"""Public intake and partner batches through gunicorn on PostgreSQL, beside baselines measured in the same run.

    .venv/bin/python bench/intake.py [--duration 20] [--clients 16] [--keep] [--skip-batch] [--cases 1000000]

See bench/README.md for what each figure means. In short, on a scratch database (created, migrated, and dropped
at the end unless --keep) and a Redis database of its own, it measures

1. a raw psycopg INSERT loop (one connection, autocommit, one row per statement): the database's own limit;
2. a minimal Django view (bench/_baseline_app) through the same gunicorn setup: GET a form, POST one URL,
   URLValidator, one INSERT, 302, CSRF on; with the middleware of a stock `startproject` (the target's
   baseline) and with ntd's full middleware stack (for diagnosis);
3. ntd's public form POST /report/ with one distinct URL per report, then with 20% of the URLs repeated;
4. one 10,000-URL partner batch (half new, half matching open cases) POSTed to /api/v1/reports/ against a
   database holding --cases cases (seeded once; keep it with --keep), and the in-process time of the
   normalisation and of the request validation of the same 10,000 URLs.

and prints a table of reports/s, p50/p95/p99, ratios, targets (DESIGN.md "Performance targets") and PASS/MISS.
Only loopback services are used; every loop ends by itself (a duration or a fixed count).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import json
import math
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
PYTHON = sys.executable

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ntd_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/12"
# The Makefile's TEST_ENV: test-only keys, no TLS redirect, JSON logs.
TEST_ENV = {
    "DEBUG": "0",
    "SECRET_KEY": "test-only-secret-key-not-for-production-0123456789abcdef",
    "AUDIT_CHECKPOINT_KEY": "test-only-audit-checkpoint-key",
    "ALTCHA_HMAC_KEY": "test-only-altcha-key",
    "NTD_ENCRYPTION_KEYS": "test:dGVzdC1vbmx5LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24",
    "ALLOWED_HOSTS": "localhost,127.0.0.1,testserver",
    "NTD_PUBLIC_URL": "http://testserver",
    "SECURE_SSL_REDIRECT": "0",
    "LOG_JSON": "1",
}
# One load generator is one source: the per-source limits of the public form would stop it after 30 reports.
LIMITS_OFF = {
    "INTAKE_CHALLENGE_AFTER": str(10**9),
    "INTAKE_LIMIT_PER_HOUR": str(10**9),
    "INTAKE_MIN_FORM_SECONDS": "0",
}

BASELINE_TABLE = "bench_baseline"
SEED_PREFIX = "S-"  # seeded case references: S-0000000001 (the product's own are C-XXXX-XXXX)
SEED_HOSTS = 50_000
SEED_CHUNK = 100_000
BATCH_URLS = 10_000

RAW = "raw psycopg INSERT (1 connection)"
MINIMAL_STOCK = "minimal view (stock middleware)"
MINIMAL_NTD = "minimal view (ntd middleware)"
INTAKE = "intake /report/ (distinct URLs)"
INTAKE_REPEATS = "intake /report/ (20% repeated URLs)"

INTAKE_RATIO_TARGET = 0.8  # × the minimal view (stock middleware)
INTAKE_P99_TARGET_MS = 150.0
BATCH_TARGET = 20_000  # URLs/s

GUNICORN_WRAPPER = '''\
# Written by bench/intake.py: the project's gunicorn.conf.py, then the benchmark's overrides.
import os

_project = os.environ["NTD_BENCH_GUNICORN_CONF"]
try:
    with open(_project, encoding="utf-8") as _fh:
        exec(compile(_fh.read(), _project, "exec"))
    NTD_BENCH_CONF = "gunicorn.conf.py"
except Exception as _exc:  # the file may be missing or half-written: equivalent settings
    print(f"bench: {_project} not usable ({_exc!r}); using equivalent settings", flush=True)
    timeout = 30
    graceful_timeout = 30
    NTD_BENCH_CONF = "equivalent flags"
bind = [os.environ["NTD_BENCH_BIND"]]
workers = int(os.environ["NTD_BENCH_WORKERS"])
worker_class = "sync"
threads = 1
proc_name = "ntd-bench"
control_socket_disable = True
pidfile = None
daemon = False
if os.environ.get("NTD_BENCH_MAX_REQUESTS"):
    max_requests = int(os.environ["NTD_BENCH_MAX_REQUESTS"])
if os.environ.get("NTD_BENCH_TIMEOUT"):  # bench/export.py: one response streams a million events
    timeout = int(os.environ["NTD_BENCH_TIMEOUT"])
if os.environ.get("NTD_BENCH_ACCESS_LOG") != "1":
    # Off altogether: with a logconfig_dict gunicorn formats every access line even when nothing prints it.
    accesslog = None
    logconfig_dict = {}
    errorlog = "-"
'''


# --- Small helpers ----------------------------------------------------------------------------------------------


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, math.ceil(p / 100 * len(sorted_values)) - 1))  # nearest rank
    return sorted_values[index]


def db_name(url: str) -> str:
    return urllib.parse.urlsplit(url).path.lstrip("/")


def admin_url(url: str) -> str:
    return urllib.parse.urlsplit(url)._replace(path="/postgres").geturl()


def loopback_only(*urls: str) -> None:
    for url in urls:
        host = urllib.parse.urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit(f"bench: only loopback services are allowed, not {host!r} in {url}")


# --- CPU accounting (Linux /proc; shown as "-" elsewhere) ------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_fields(pid: int) -> list[str]:
    # Fields after "(comm)": [0] state, [1] ppid, [11] utime, [12] stime, [13] cutime, [14] cstime.
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def tree_cpu(pid: int) -> float | None:
    """CPU seconds of a gunicorn master, its live workers and the workers it has already reaped."""
    try:
        fields = _stat_fields(pid)
        total = sum(int(x) for x in fields[11:15])
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    child = _stat_fields(int(entry.name))
                except OSError:
                    continue
                if child[1] == str(pid):
                    total += int(child[11]) + int(child[12])
        return total / _TICK
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu() -> float | None:
    """Busy CPU seconds of the whole machine, all cores (everything but idle and iowait)."""
    try:
        values = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
        return (sum(values) - values[3] - values[4]) / _TICK
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class CPU:
    app: float | None
    machine: float | None

    @classmethod
    def now(cls, pid: int | None) -> CPU:
        return cls(tree_cpu(pid) if pid else None, machine_cpu())

    def per_request_ms(self, before: CPU, requests: int) -> tuple[float | None, float | None]:
        def per(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None or not requests else (a - b) / requests * 1000

        return per(self.app, before.app), per(self.machine, before.machine)


# --- Environment, database ------------------------------------------------------------------------------------


def bench_env(args: argparse.Namespace, workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # workers that restart should not recompile ntd every time
    env.update(TEST_ENV)
    env.update(LIMITS_OFF)
    env.update({
        "DATABASE_URL": args.db_url,
        "REDIS_URL": args.redis_url,
        "CACHE_URL": args.redis_url,
        "CELERY_BROKER_URL": args.redis_url,
        "CACHE_KEY_PREFIX": "ntd-bench",
        "AUDIT_CHECKPOINT_PATH": str(workdir / "audit-checkpoints.jsonl"),
    })
    return env


def prepare_database(args: argparse.Namespace, env: dict[str, str]) -> None:
    name = db_name(args.db_url)
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
        raise SystemExit(f"bench: database name {name!r} must be a plain identifier")
    with psycopg.connect(admin_url(args.db_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if exists and args.fresh:
            say(f"dropping database {name} (--fresh)")
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
            exists = None
        if not exists:
            say(f"creating database {name}")
            conn.execute(f"CREATE DATABASE {name}")
    say("migrating")
    subprocess.run([PYTHON, "manage.py", "migrate", "--no-input", "--verbosity", "0"], cwd=ROOT, env=env,
                   check=True)
    static_manifest = ROOT / "var" / "static" / "staticfiles.json"
    if not static_manifest.exists():  # DEBUG=0 serves hashed static names; `make test` runs the same command
        say("collectstatic (no manifest yet)")
        subprocess.run([PYTHON, "manage.py", "collectstatic", "--no-input", "--verbosity", "0"], cwd=ROOT, env=env,
                       check=True)
    with psycopg.connect(args.db_url, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} (id bigserial PRIMARY KEY, url text NOT NULL, "
                     "created_at timestamptz NOT NULL DEFAULT now())")


def drop_database(args: argparse.Namespace) -> None:
    name = db_name(args.db_url)
    with psycopg.connect(admin_url(args.db_url), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    say(f"dropped database {name} (keep it with --keep)")


def case_count(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute("SELECT count(*) FROM reports_case").fetchone()[0]  # type: ignore[index]


# --- gunicorn ---------------------------------------------------------------------------------------------------


class Server:
    """One gunicorn master (started here, stopped here by its own pid) serving `app` on a free loopback port."""

    def __init__(self, label: str, env: dict[str, str], workdir: Path, args: argparse.Namespace,
                 settings_module: str, extra_env: dict[str, str] | None = None) -> None:
        self.label = label
        self.port = free_port()
        self.log_path = workdir / f"gunicorn-{label.replace(' ', '-')}.log"
        wrapper = workdir / "gunicorn_bench.conf.py"
        wrapper.write_text(GUNICORN_WRAPPER, encoding="utf-8")
        self.env = dict(env)
        self.env.update(extra_env or {})
        self.env.update({
            "DJANGO_SETTINGS_MODULE": settings_module,
            "NTD_BENCH_GUNICORN_CONF": str(ROOT / "gunicorn.conf.py"),
            "NTD_BENCH_BIND": f"127.0.0.1:{self.port}",
            "NTD_BENCH_WORKERS": str(args.workers),
            "NTD_BENCH_ACCESS_LOG": "1" if args.access_log else "0",
            "NTD_BENCH_MAX_REQUESTS": "" if args.max_requests is None else str(args.max_requests),
        })
        self.cmd = [PYTHON, "-m", "gunicorn", "-c", str(wrapper), "ntd.wsgi:application"]
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT)
        say(f"gunicorn ({self.label}) master pid {self.proc.pid} on 127.0.0.1:{self.port}, log {self.log_path}")
        return self

    def wait_ready(self, path: str, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn ({self.label}) exited: {self.log_tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", path)
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"gunicorn ({self.label}) not ready after {timeout:.0f} s: {self.log_tail()}")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def log_text(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def boots(self) -> int:
        return self.log_text().count("Booting worker")

    def config_used(self) -> str:
        return "equivalent flags" if "not usable" in self.log_text() else "gunicorn.conf.py"

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: the master stops its own workers
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


# --- Load generator ---------------------------------------------------------------------------------------------


@dataclass
class Result:
    label: str
    rate: float
    latencies_ms: list[float]
    requests: int
    errors: int
    error_samples: list[str] = field(default_factory=list)
    boots: int = 0
    note: str = ""
    app_ms: float | None = None  # CPU of gunicorn (master and workers) per request
    machine_ms: float | None = None  # CPU of the whole machine per request (load generator, database, Redis too)

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


class Session:
    """A form session: the CSRF cookie and the form's hidden fields, from one GET."""

    def __init__(self, port: int, path: str) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", path)
        resp = conn.getresponse()
        html = resp.read().decode()
        conn.close()
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {html[:300]}")
        cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
        csrf = next((c.split(";", 1)[0] for c in cookies if c.startswith("csrftoken=")), None)
        if csrf is None:
            raise RuntimeError(f"GET {path}: no csrftoken cookie")
        self.cookie = csrf
        self.fields: dict[str, str] = {}
        for name in ("csrfmiddlewaretoken", "stamp"):
            match = re.search(rf'name="{name}" value="([^"]*)"', html)
            if match:
                self.fields[name] = match.group(1)
        if "csrfmiddlewaretoken" not in self.fields:
            raise RuntimeError(f"GET {path}: no csrfmiddlewaretoken in the form")


def drive(server: Server, form_path: str, post_path: str, bodies: Callable[[int, Session], Iterator[tuple[str, str]]],
          clients: int, warmup: float, duration: float, label: str) -> tuple[Result, list[str]]:
    """`clients` threads, one connection each, POST as fast as answered for warmup + duration seconds.

    Only requests that complete inside the measured window (after the warm-up) count for the rate and the
    percentiles; a request answered with anything but 302 (or failing) is an error. Returns the result and the
    URLs of the successful requests. CPU per request is over the whole run, warm-up and form GETs included.
    """
    port = server.port
    booted = server.boots()
    cpu_before = CPU.now(server.pid)
    sessions = [Session(port, form_path) for _ in range(clients)]
    start_barrier = threading.Barrier(clients + 1)
    window: list[float] = [0.0, 0.0, 0.0]  # start, measure-from, stop
    per_client: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    filed: list[list[str]] = [[] for _ in range(clients)]
    failures: list[str] = []
    failure_count = [0]
    lock = threading.Lock()

    def run(index: int) -> None:
        session = sessions[index]
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": session.cookie}
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        source = bodies(index, session)
        timings, urls = per_client[index], filed[index]
        start_barrier.wait()
        stop = window[2]
        try:
            loop(conn, source, headers, timings, urls, stop)
        except Exception as exc:  # noqa: BLE001 - a dead client must show up as an error, not vanish
            with lock:
                failure_count[0] += 1
                failures.append(f"client {index} stopped: {exc!r}")
        conn.close()

    def loop(conn: http.client.HTTPConnection, source: Iterator[tuple[str, str]], headers: dict[str, str],
             timings: list[tuple[float, float]], urls: list[str], stop: float) -> None:
        while True:
            began = time.perf_counter()
            if began >= stop:
                break
            url, body = next(source)
            try:
                conn.request("POST", post_path, body=body, headers=headers)
                resp = conn.getresponse()
                text = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                status, text = -1, repr(exc).encode()
            ended = time.perf_counter()
            if status == 302:
                timings.append((ended, ended - began))
                urls.append(url)
            else:
                with lock:
                    failure_count[0] += 1
                    if len(failures) < 3:
                        failures.append(f"{status}: {text[:400].decode(errors='replace')}")

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window[:] = [now, now + warmup, now + warmup + duration]
    start_barrier.wait()
    for thread in threads:
        thread.join(timeout=warmup + duration + 120)
    _, measure_from, stop = window
    counted = [lat * 1000 for timings in per_client for ended, lat in timings if measure_from <= ended <= stop]
    counted.sort()
    total = sum(len(t) for t in per_client) + failure_count[0]
    app_ms, machine_ms = CPU.now(server.pid).per_request_ms(cpu_before, total + clients)
    result = Result(label, len(counted) / duration, counted, total, failure_count[0], failures,
                    boots=server.boots() - booted, app_ms=app_ms, machine_ms=machine_ms)
    return result, [u for urls in filed for u in urls]


def form_bodies(tag: str, repeat_pool: list[str] | None, repeat_share: float) -> Callable[
        [int, Session], Iterator[tuple[str, str]]]:
    """The public form: one URL per report, distinct per request (or `repeat_share` of them from `repeat_pool`)."""

    def make(index: int, session: Session) -> Iterator[tuple[str, str]]:
        rng = random.Random(f"{tag}-{index}")
        fixed = urllib.parse.urlencode({
            "csrfmiddlewaretoken": session.fields["csrfmiddlewaretoken"], "stamp": session.fields.get("stamp", ""),
            "material_kind": "images", "encountered_via": "website", "description": "", "contact": "anonymous",
            "email": "", "website": "",
        })
        n = 0
        while True:
            n += 1
            if repeat_pool and rng.random() < repeat_share:
                url = rng.choice(repeat_pool)
            else:
                url = f"https://www.site{rng.randrange(5000)}.example/gallery/{tag}/{index}/{n}?page={n % 7}"
            yield url, f"{fixed}&urls={urllib.parse.quote_plus(url)}"

    return make


def minimal_bodies(tag: str) -> Callable[[int, Session], Iterator[tuple[str, str]]]:
    def make(index: int, session: Session) -> Iterator[tuple[str, str]]:
        token = urllib.parse.quote_plus(session.fields["csrfmiddlewaretoken"])
        rng = random.Random(f"{tag}-{index}")
        n = 0
        while True:
            n += 1
            url = f"https://www.site{rng.randrange(5000)}.example/gallery/{tag}/{index}/{n}?page={n % 7}"
            yield url, f"csrfmiddlewaretoken={token}&url={urllib.parse.quote_plus(url)}"

    return make


def raw_insert(db_url: str, seconds: float) -> Result:
    """One connection, autocommit, one INSERT per statement, for `seconds`."""
    latencies: list[float] = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.cursor()
        sql = f"INSERT INTO {BASELINE_TABLE} (url) VALUES (%s)"  # noqa: S608 - a constant table name
        for n in range(50):  # warm up (psycopg prepares the statement after a few runs)
            cur.execute(sql, [f"https://raw.example/warm/{n}"], prepare=True)
        tag = secrets.token_hex(4)
        cpu_before, own_before = CPU.now(None), time.process_time()
        start = time.perf_counter()
        stop = start + seconds
        n = 0
        while True:
            began = time.perf_counter()
            if began >= stop:
                break
            n += 1
            cur.execute(sql, [f"https://www.site{n % 5000}.example/raw/{tag}/{n}"], prepare=True)
            latencies.append((time.perf_counter() - began) * 1000)
        elapsed = time.perf_counter() - start
        own = time.process_time() - own_before
        _, machine_ms = CPU.now(None).per_request_ms(cpu_before, len(latencies))
    latencies.sort()
    return Result(RAW, len(latencies) / elapsed, latencies, len(latencies), 0,
                  app_ms=own / max(1, len(latencies)) * 1000, machine_ms=machine_ms)


def reports_since(db_url: str, since: dt.datetime) -> int:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT count(*) FROM reports_report WHERE channel = 'web' AND received_at >= %s",
                           [since]).fetchone()
        return row[0] if row else 0


# --- Partner batch ----------------------------------------------------------------------------------------------


SEEDED_TOP_SQL = "SELECT coalesce(max(substr(reference, 3)::bigint) + 1, 0) FROM reports_case WHERE reference LIKE %s"


def seed_cases(db_url: str, target: int) -> None:
    """Top the case table up to `target` open cases, server-side (INSERT ... SELECT generate_series), 100k a go.

    Seeded case n has the URL https://seed<n % 50000>.example/item/<n> and the reference S-<n, 10 digits>; a URL
    that already has an open case (filed by an earlier run) is skipped, and still counts as an open case to join.
    """
    with psycopg.connect(db_url, autocommit=True) as conn:
        total = conn.execute("SELECT count(*) FROM reports_case").fetchone()[0]  # type: ignore[index]
        if total >= target:
            say(f"{total:,} cases already there (>= {target:,}): no seeding")
            return
        say(f"seeding {target - total:,} cases ({total:,} there; a minute or two per million)")
        started = time.perf_counter()
        for _ in range(3):  # a second pass only when URLs filed by earlier runs were skipped
            if total >= target:
                break
            top = conn.execute(SEEDED_TOP_SQL, [SEED_PREFIX + "%"]).fetchone()[0]  # type: ignore[index]
            _seed_range(conn, top, top + target - total)
            total = conn.execute("SELECT count(*) FROM reports_case").fetchone()[0]  # type: ignore[index]
        conn.execute("ANALYZE reports_case")
        say(f"seeding done in {time.perf_counter() - started:.0f} s: {total:,} cases")


def _seed_range(conn: psycopg.Connection[Any], start: int, stop: int) -> None:
    started = time.perf_counter()
    for first in range(start, stop, SEED_CHUNK):
        last = min(first + SEED_CHUNK, stop) - 1
        conn.execute(
            """
            INSERT INTO reports_case (reference, url, url_key, host, registrable_domain, status, priority,
                child_at_risk, police_referral, known_url, report_count, first_reported_at, last_reported_at)
            SELECT %(prefix)s || lpad(n::text, 10, '0'), u, encode(sha256(convert_to(u, 'UTF8')), 'hex'), h, h,
                'received', 10, false, false, false, 1,
                now() - make_interval(secs => (n %% 7776000)), now() - make_interval(secs => (n %% 86400))
            FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n,
                LATERAL (SELECT 'seed' || (n %% %(hosts)s) || '.example' AS h) AS hs,
                LATERAL (SELECT 'https://' || h || '/item/' || n AS u) AS us
            ON CONFLICT DO NOTHING
            """,
            {"prefix": SEED_PREFIX, "first": first, "last": last, "hosts": SEED_HOSTS},
        )
        say(f"  seeded up to #{last + 1:,} ({time.perf_counter() - started:.0f} s)")


def seeded_url(n: int) -> str:
    return f"https://seed{n % SEED_HOSTS}.example/item/{n}"


def batch_urls(tag: str, seeded: int, rng: random.Random, used: set[int]) -> list[str]:
    """Half new URLs, half another spelling (upper-case scheme and host) of distinct seeded open cases."""
    new = [f"https://cdn{i % 500}.batch-{tag}.example/media/{i}/{secrets.token_hex(4)}.jpg?s={i % 3}"
           for i in range(BATCH_URLS // 2)]
    picks: list[int] = []
    while len(picks) < BATCH_URLS - len(new):
        n = rng.randrange(seeded)
        if n not in used:
            used.add(n)
            picks.append(n)
    existing = [f"HTTPS://SEED{n % SEED_HOSTS}.Example/item/{n}" for n in picks]
    urls = new + existing
    rng.shuffle(urls)
    return urls


def django_setup(env: dict[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "ntd.settings"
    import django

    django.setup()


def partner_key() -> str:
    from takedown.models import Partner, PartnerAPIKey

    partner, _ = Partner.objects.get_or_create(name="bench partner", defaults={"kind": Partner.Kind.HOTLINE})
    _, key = PartnerAPIKey.objects.create_key(name=f"bench {secrets.token_hex(3)}", partner=partner)
    return key


def in_process_split(urls: list[str]) -> tuple[float, float]:
    """Best of 3: seconds to normalise the URLs, and to validate the request body (PartnerReportIn) alone."""
    from reports.normalise import normalise
    from reports.serializers import PartnerReportIn

    norm, valid = [], []
    for _ in range(3):
        started = time.perf_counter()
        for url in urls:
            normalise(url)
        norm.append(time.perf_counter() - started)
        started = time.perf_counter()
        serializer = PartnerReportIn(data={"urls": urls, "partner_reference": "x"})
        assert serializer.is_valid(), serializer.errors
        valid.append(time.perf_counter() - started)
    return min(norm), min(valid)


def post_json(port: int, path: str, key: str, payload: dict[str, Any]) -> tuple[int, bytes, float]:
    body = json.dumps(payload).encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    started = time.perf_counter()
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", "X-Api-Key": key})
    resp = conn.getresponse()
    data = resp.read()
    elapsed = time.perf_counter() - started
    conn.close()
    return resp.status, data, elapsed


@dataclass
class BatchResult:
    seconds: list[float]
    app_cpu: list[float | None]
    machine_cpu: list[float | None]
    normalise_s: float
    validate_s: float
    cases: int
    problems: list[str]


def run_batches(server: Server, db_url: str, args: argparse.Namespace, key: str) -> BatchResult:
    from reports.normalise import normalise

    # The seeded rows must be exactly what normalise() makes of their other spelling, or nothing would join.
    sample = normalise(f"HTTPS://SEED{7 % SEED_HOSTS}.Example/item/7")
    if sample.url != seeded_url(7) or sample.key != hashlib.sha256(seeded_url(7).encode()).hexdigest():
        raise RuntimeError(f"seeded URLs do not match normalise(): {sample}")
    with psycopg.connect(db_url) as conn:
        seeded = conn.execute(SEEDED_TOP_SQL, [SEED_PREFIX + "%"]).fetchone()[0]  # type: ignore[index]
    if seeded < BATCH_URLS:
        raise RuntimeError(f"only {seeded} seeded cases: use --cases >= {BATCH_URLS}")
    cases = case_count(db_url)
    path = "/api/v1/reports/"
    for n in range(4):  # warm both workers up (imports, DRF serializers) with small batches
        status, data, _ = post_json(server.port, path, key, {
            "urls": [f"https://warm.batch-{secrets.token_hex(4)}.example/{n}/{i}" for i in range(10)]})
        if status != 201:
            raise RuntimeError(f"warm-up batch: {status} {data[:400]!r}")
    rng = random.Random()
    used: set[int] = set()
    result = BatchResult([], [], [], 0.0, 0.0, cases, [])
    urls: list[str] = []
    for run in range(args.batches):
        tag = secrets.token_hex(4)
        urls = batch_urls(tag, seeded, rng, used)
        before = CPU.now(server.pid)
        status, data, elapsed = post_json(server.port, path, key, {"urls": urls, "partner_reference": f"bench-{tag}"})
        app_s, machine_s = CPU.now(server.pid).per_request_ms(before, 1000)  # ms per 1000 requests: seconds
        if status != 201:
            result.problems.append(f"batch {run + 1}: {status} {data[:400]!r}")
            continue
        outcomes = [u["outcome"] for u in json.loads(data)["urls"]]
        new, joined = outcomes.count("new"), outcomes.count("joined")
        if (new, joined) != (BATCH_URLS // 2, BATCH_URLS // 2):
            result.problems.append(f"batch {run + 1}: {new} new and {joined} joined, expected 5,000 each")
        result.seconds.append(elapsed)
        result.app_cpu.append(app_s)
        result.machine_cpu.append(machine_s)
        say(f"  batch {run + 1}: {elapsed:.2f} s, {BATCH_URLS / elapsed:,.0f} URLs/s ({new} new, {joined} joined)")
    if urls:
        result.normalise_s, result.validate_s = in_process_split(urls)
    return result


# --- Report -----------------------------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def fmt(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None or math.isnan(value) else format(value, spec)


def print_report(header: list[str], results: list[Result], batch: BatchResult | None) -> None:
    width = 112
    by_label = {r.label: r for r in results}
    print()
    print("=" * width)
    for line in header:
        print(line)
    if results:
        print("-" * width)
        print(f"{'run':40} {'rate/s':>8} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'errors':>6} {'requests':>8} "
              f"{'app ms/req':>10} {'all ms/req':>10} {'boots':>5}")
        for r in results:
            print(f"{r.label:40} {r.rate:8.1f} {r.p(50):7.1f} {r.p(95):7.1f} {r.p(99):7.1f} {r.errors:6d} "
                  f"{r.requests:8d} {fmt(r.app_ms, '.2f'):>10} {fmt(r.machine_ms, '.2f'):>10} {r.boots or '-':>5}")
            if r.note:
                print(f"    NOTE {r.note}")
        for r in results:
            for sample in r.error_samples:
                print(f"    first errors of {r.label}: {sample[:300]!r}")
    rows: list[tuple[str, str, str, str]] = []
    stock, ntd_mw, raw = by_label.get(MINIMAL_STOCK), by_label.get(MINIMAL_NTD), by_label.get(RAW)
    for label in (INTAKE, INTAKE_REPEATS):
        intake = by_label.get(label)
        if intake is None:
            continue
        short = "intake" if label == INTAKE else "intake, 20% repeats"
        if stock is not None and stock.rate:
            ratio = intake.rate / stock.rate
            rows.append((f"{short} / minimal view (stock)", f"{ratio:.2f}", f">= {INTAKE_RATIO_TARGET:.2f}",
                         verdict(ratio >= INTAKE_RATIO_TARGET)))
        rows.append((f"{short} p99", f"{intake.p(99):.1f} ms", f"< {INTAKE_P99_TARGET_MS:.0f} ms",
                     verdict(intake.p(99) < INTAKE_P99_TARGET_MS)))
        rows.append((f"{short} errors", str(intake.errors), "0", verdict(intake.errors == 0)))
        if label == INTAKE:
            if ntd_mw is not None and ntd_mw.rate:
                rows.append(("intake / minimal view (ntd middleware)", f"{intake.rate / ntd_mw.rate:.2f}", "", "info"))
            if raw is not None and raw.rate:
                rows.append(("intake / raw INSERT", f"{intake.rate / raw.rate:.2f}", "", "info"))
    if stock is not None and ntd_mw is not None and stock.rate:
        rows.append(("minimal view: ntd middleware / stock", f"{ntd_mw.rate / stock.rate:.2f}", "", "info"))
    if batch is not None:
        print("-" * width)
        print(f"partner batch: {BATCH_URLS:,} URLs per request (5,000 new + 5,000 joining open cases) through "
              f"POST /api/v1/reports/, {batch.cases:,} cases in the database before the first")
        for n, (s, app, machine) in enumerate(zip(batch.seconds, batch.app_cpu, batch.machine_cpu, strict=True), 1):
            print(f"  request {n}: {s:6.3f} s  {BATCH_URLS / s:9,.0f} URLs/s   CPU: gunicorn {fmt(app, '.2f')} s, "
                  f"whole machine {fmt(machine, '.2f')} s")
        if batch.seconds:
            median = statistics.median(batch.seconds)
            rest = max(0.0, median - batch.normalise_s - batch.validate_s)
            print(f"  split of the median request ({median:.3f} s); the first two measured in-process on its URLs:")
            for part, seconds in (("normalise()", batch.normalise_s),
                                  ("request validation (PartnerReportIn)", batch.validate_s),
                                  ("the rest: database, audit chain, ORM, JSON, HTTP", rest)):
                print(f"    {part:50} {seconds:7.3f} s {seconds / median:5.0%}")
            rate = BATCH_URLS / median
            rows.append((f"partner batch URLs/s (median of {len(batch.seconds)})", f"{rate:,.0f}",
                         f">= {BATCH_TARGET:,}", verdict(rate >= BATCH_TARGET)))
        for problem in batch.problems:
            print(f"    PROBLEM {problem}")
            rows.append(("partner batch problems", "see above", "none", "MISS"))
    if rows:
        print("-" * width)
        print(f"{'figure':48} {'value':>12} {'target':>12}  verdict")
        for name, value, target, result in rows:
            print(f"{name:48} {value:>12} {target:>12}  {result}")
    print("=" * width)


# --- Main -------------------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=20.0, help="measured seconds per HTTP run (default 20)")
    parser.add_argument("--warmup", type=float, default=3.0, help="unmeasured seconds before each (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the baseline and intake runs alternately, keep each one's best (default 1)")
    parser.add_argument("--raw-seconds", type=float, default=5.0, help="seconds of the raw INSERT loop (default 5)")
    parser.add_argument("--cases", type=int, default=1_000_000, help="cases in the database for the batch")
    parser.add_argument("--batches", type=int, default=3, help="timed 10,000-URL batches (default 3)")
    parser.add_argument("--skip-batch", action="store_true", help="no seeding, no partner batch")
    parser.add_argument("--skip-http", action="store_true", help="only the partner batch")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (and its seeded cases)")
    parser.add_argument("--fresh", action="store_true", help="drop the scratch database first")
    parser.add_argument("--access-log", action="store_true",
                        help="keep gunicorn.conf.py's logging, access log included, to see its cost")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="override gunicorn.conf.py's max_requests (0: workers are never recycled)")
    parser.add_argument("--db-url", default=DEFAULT_DB, help=f"scratch database (default {DEFAULT_DB})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis database (default {DEFAULT_REDIS})")
    args = parser.parse_args()
    loopback_only(args.db_url, args.redis_url)
    if args.clients < 1 or args.duration <= 0 or args.rounds < 1 or args.batches < 1 or args.workers < 1:
        parser.error("--clients, --duration, --rounds, --batches and --workers must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="ntd-bench-"))
    env = bench_env(args, workdir)
    load = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    header = [
        f"ntd intake benchmark  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  {cpus} CPUs  load average at start "
        f"{load:.1f}" + ("  BUSY MACHINE: absolute figures are not comparable" if load > cpus / 2 else ""),
        f"database {args.db_url}  cache {args.redis_url}  {args.clients} clients  {args.workers} sync workers  "
        f"{args.duration:g} s measured (+{args.warmup:g} s warm-up) per run  rounds {args.rounds}",
    ]
    ok = False
    try:
        prepare_database(args, env)
        django_setup(env)
        best: dict[str, Result] = {}
        filed: list[str] = []
        conf_used = "?"

        def keep_best(r: Result) -> None:
            if r.label not in best or r.rate > best[r.label].rate:
                best[r.label] = r

        if not args.skip_http:
            say(f"raw INSERT loop, {args.raw_seconds:g} s")
            keep_best(raw_insert(args.db_url, args.raw_seconds))
            for round_no in range(1, args.rounds + 1):
                tag = secrets.token_hex(4)
                for middleware, label in (("stock", MINIMAL_STOCK), ("ntd", MINIMAL_NTD)):
                    say(f"round {round_no}: {label}")
                    with Server(f"minimal-{middleware}", env, workdir, args, "bench._baseline_app.settings",
                                {"BENCH_BASELINE_MIDDLEWARE": middleware}) as server:
                        server.wait_ready("/minimal/")
                        r, _ = drive(server, "/minimal/", "/minimal/", minimal_bodies(tag + middleware),
                                     args.clients, args.warmup, args.duration, label)
                        conf_used = server.config_used()
                    keep_best(r)
                with Server("intake", env, workdir, args, "ntd.settings") as server:
                    server.wait_ready("/report/")
                    say(f"round {round_no}: {INTAKE}")
                    since = dt.datetime.now(dt.UTC)
                    r, filed = drive(server, "/report/", "/report/", form_bodies(tag, None, 0.0),
                                     args.clients, args.warmup, args.duration, INTAKE)
                    stored = reports_since(args.db_url, since)
                    if stored != len(filed):
                        r.note = f"{stored} reports stored for {len(filed)} redirects"
                    keep_best(r)
                    say(f"round {round_no}: {INTAKE_REPEATS}")
                    r, _ = drive(server, "/report/", "/report/", form_bodies(tag + "r", filed, 0.2),
                                 args.clients, args.warmup, args.duration, INTAKE_REPEATS)
                    keep_best(r)
        batch = None
        if not args.skip_batch:
            seed_cases(args.db_url, args.cases)
            key = partner_key()
            say(f"partner batches: {args.batches} x {BATCH_URLS:,} URLs")
            with Server("batch", env, workdir, args, "ntd.settings") as server:
                server.wait_ready("/report/")
                batch = run_batches(server, args.db_url, args, key)
                conf_used = server.config_used()
        header.append(
            f"gunicorn: {conf_used}, access log {'on' if args.access_log else 'off'}"
            + (f", max_requests {args.max_requests}" if args.max_requests is not None else "")
            + ".  app ms/req: CPU of gunicorn per request.  all ms/req: CPU of the whole machine per request."
        )
        header.append("boots: workers (re)started during the measured run (max_requests recycling).")
        order = [RAW, MINIMAL_STOCK, MINIMAL_NTD, INTAKE, INTAKE_REPEATS]
        print_report(header, [best[label] for label in order if label in best], batch)
        ok = True
    finally:
        if "django" in sys.modules:
            from django.db import connections

            connections.close_all()
        if not args.keep:
            drop_database(args)
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
