"""The triage dashboard and "next case" on 1 million and 10 million cases, beside baselines measured in the same run.

    .venv/bin/python bench/triage.py [--sizes 1000000,10000000] [--keep] [--duration 10] [--quick]

See bench/README.md ("Triage") for what each figure means. In short, on a scratch database (created, migrated, and
dropped at the end unless --keep) and a Redis database of its own, for each size in --sizes it

1. fills reports_case set-wise (INSERT ... SELECT generate_series, one transaction per chunk, every index and
   constraint of production in place) up to that many cases, then VACUUM (ANALYZE);
2. times, in-process and interleaved, the exact SQL Django sends for the first page of the triage queue, run with
   psycopg directly (the bare SQL), against reports.selectors.triage_page() through the ORM;
3. times GET /cases/ through gunicorn as signed-in analysts (second factor done) with 1 and with 16 concurrent
   clients, beside a minimal Django page rendering the same 50 rows (bench/_baseline_app, one query, plain
   template) through the same gunicorn setup;
4. times POST /cases/next/ ("next case") for 1 and 16 concurrent analysts; each client gives the case back
   (POST /cases/<ref>/release/, not timed) before it asks for the next one, so the queue keeps its size;

and prints a table of p50/p95, ratios, targets and PASS/MISS (stdout; progress and, at the largest size, the
EXPLAIN (ANALYZE, BUFFERS) of the queries on stderr). Only loopback services are used; every loop ends by itself.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.intake import (  # noqa: E402 - after the path is set
    CPU,
    Result,
    Server,
    bench_env,
    django_setup,
    drop_database,
    fmt,
    loopback_only,
    percentile,
    prepare_database,
    say,
    verdict,
)

DEFAULT_DB = "postgres://postgres@127.0.0.1:5432/ntd_bench_triage"
QUICK_DB = "postgres://postgres@127.0.0.1:5432/ntd_bench_triage_quick"  # --quick never touches a kept big database
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
DEFAULT_SIZES = "1000000,10000000"

CASE_PREFIX = "B-"  # seeded case n is B-dddd-dddd (n in 8 digits): a reference clean_reference() leaves as it is
REPORT_PREFIXES = ("R-", "P-")  # first and second report of a seeded case, same digits
MAX_CASES = 99_999_999
CHUNK = 500_000  # cases per INSERT statement (one transaction with its reports)
MAIN_QUEUE, OTHER_QUEUE = "bench-main", "bench-de"
ANALYSTS = 16  # bench-analyst-01 ... -16, granted the main queue; the in-process figures use the first
HOLDERS = 4  # bench-holder-1 ... -4 hold the seeded in-review cases
PAGE = 50

QUERY_TARGET = 2.0  # triage_page() (ORM) / the same statements as bare SQL
PAGE_RATIO_TARGET = 1.5  # first page / minimal page, p95
PAGE_P95_TARGET = {1: 30.0, 16: 100.0}  # ms, by concurrent clients

CONCURRENCY = (1, 16)

# One transaction per chunk: the cases of seeded numbers first..last, then the reports of those with priority >= 50.
# Every attribute is a function of n alone (hashint8extended), so growing 1M -> 10M gives the cases a fresh 10M fill
# would. The mix (per 100,000, by hash): priority 100 (child at risk) 500, 80 (known URL) 1,500, 50 (partner) 8,000,
# 10 (public) the rest; status received 86,000, in review (held) 10, awaiting second opinion 200, awaiting decision
# 50, confirmed 200, actioning 200, awaiting authorisation 100, awaiting removal 1,000, removal observed 200, under
# dispute 50, closed (not illegal, unavailable, out of remit, closed) 11,990. First reported over the last 180
# days; 40% traced to one of ten countries; the cases hosted in DE are in the second queue (about 4%).
CASES_SQL = """
INSERT INTO reports_case (reference, url, url_key, host, registrable_domain, status, priority, child_at_risk,
    police_referral, known_url, report_count, first_reported_at, last_reported_at, closed_at, assignee_id,
    claimed_at, claim_expires_at, traced_at, hosting_country, hosting_asn, queue_id)
SELECT %(prefix)s || substr(d8, 1, 4) || '-' || substr(d8, 5, 4), u, encode(sha256(convert_to(u, 'UTF8')), 'hex'),
    host, dom, st, pr, pr = 100, pr = 100 AND h6 %% 4 = 0, pr = 80, rc, fa,
    CASE WHEN rc = 1 THEN fa ELSE least(now(), fa + make_interval(secs => h6 %% 2592000)) END,
    CASE WHEN st IN ('not_illegal', 'unavailable', 'out_of_remit', 'closed')
         THEN least(now(), fa + make_interval(hours => (1 + h6 %% 500)::int)) END,
    CASE WHEN st = 'in_review' THEN (%(holders)s::bigint[])[1 + h6 %% cardinality(%(holders)s::bigint[])] END,
    CASE WHEN st = 'in_review' THEN now() - interval '10 minutes' END,
    CASE WHEN st = 'in_review' THEN now() + interval '20 minutes' END,
    CASE WHEN cc <> '' THEN least(now(), fa + interval '2 minutes') END, cc,
    CASE WHEN cc <> '' THEN 64496 + (h4 / 100) %% 1000 END,
    CASE WHEN cc = 'DE' THEN %(other)s::bigint ELSE %(main)s::bigint END
FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n,
LATERAL (SELECT lpad(n::text, 8, '0') AS d8,
                (hashint8extended(n, 1) & 9223372036854775807) %% 100000 AS hp,
                (hashint8extended(n, 2) & 9223372036854775807) %% 100000 AS hs,
                (hashint8extended(n, 3) & 9223372036854775807) AS h3,
                (hashint8extended(n, 4) & 9223372036854775807) AS h4,
                (hashint8extended(n, 5) & 9223372036854775807) AS h5,
                (hashint8extended(n, 6) & 9223372036854775807) AS h6) AS h,
LATERAL (SELECT CASE WHEN hp < 500 THEN 100 WHEN hp < 2000 THEN 80 WHEN hp < 10000 THEN 50 ELSE 10 END AS pr,
                CASE WHEN hs < 86000 THEN 'received' WHEN hs < 86010 THEN 'in_review'
                     WHEN hs < 86210 THEN 'awaiting_second_opinion' WHEN hs < 86260 THEN 'awaiting_decision'
                     WHEN hs < 86460 THEN 'confirmed' WHEN hs < 86660 THEN 'actioning'
                     WHEN hs < 86760 THEN 'awaiting_authorisation' WHEN hs < 87760 THEN 'awaiting_removal'
                     WHEN hs < 87960 THEN 'removal_observed' WHEN hs < 88010 THEN 'under_dispute'
                     WHEN hs < 93010 THEN 'not_illegal' WHEN hs < 96010 THEN 'unavailable'
                     WHEN hs < 96510 THEN 'out_of_remit' ELSE 'closed' END AS st,
                CASE WHEN (h6 / 7) %% 10 = 0 THEN 2 + (h6 / 70) %% 4 ELSE 1 END AS rc,
                %(now)s - make_interval(secs => (h3 %% 15552000)::double precision) AS fa,
                CASE WHEN h4 %% 10 < 4 THEN (ARRAY['NL', 'US', 'DE', 'RU', 'FR', 'GB', 'CA', 'HK', 'UA', 'BG'])
                     [1 + (h4 / 10) %% 10] ELSE '' END AS cc,
                'site' || (h5 / 24) %% 200000 || '.example' AS dom) AS a,
LATERAL (SELECT CASE WHEN h5 %% 3 = 0 THEN 'cdn' || (h5 / 3) %% 8 || '.' ELSE '' END || dom AS host) AS b,
LATERAL (SELECT 'https://' || host || '/gallery/' || to_hex(h6 %% 1048576) || '/' || n || '.jpg' AS u) AS c
ON CONFLICT DO NOTHING
"""
# Reports only for the cases with priority >= 50 (about 10%): every case the first page or "next case" can show at
# these sizes has its sources, and ReportURL's case index is a million entries deep at 10M cases (a full table
# would double the fill time and change that depth by one level). One partner report each, and a second (public)
# report for those reported more than once.
REPORTS_SQL = """
WITH c AS (
    SELECT id, reference, url, priority, child_at_risk, first_reported_at, last_reported_at, report_count
    FROM reports_case WHERE reference BETWEEN %(lo)s AND %(hi)s AND priority >= 50
), r AS (
    INSERT INTO reports_report (reference, channel, source_kind, partner_reference, request_digest, material_kind,
        encountered_via, description, child_at_risk, status_secret_digest, content_hashes, attachment_refused,
        url_count, received_at)
    SELECT CASE WHEN k = 1 THEN %(r1)s ELSE %(r2)s END || substr(c.reference, 3),
        CASE WHEN k = 1 THEN 'api' ELSE 'web' END,
        CASE WHEN k = 2 THEN 'public' WHEN priority = 100 THEN 'law_enforcement' WHEN priority = 80 THEN 'hotline'
             ELSE (ARRAY['hotline', 'trusted_flagger', 'law_enforcement', 'hosting_provider'])[1 + c.id %% 4] END,
        '', '', 'images', CASE WHEN k = 2 THEN 'website' ELSE '' END, '', child_at_risk, '', '[]'::jsonb, false, 1,
        CASE WHEN k = 1 THEN first_reported_at ELSE last_reported_at END
    FROM c, generate_series(1, least(c.report_count, 2)) AS k
    ON CONFLICT DO NOTHING
    RETURNING id, reference
)
INSERT INTO reports_reporturl (report_id, case_id, position, as_reported, opened_case)
SELECT r.id, c.id, 0, c.url, r.reference LIKE %(r1like)s
FROM r JOIN c ON substr(c.reference, 3) = substr(r.reference, 3)
"""
SEEDED_CHUNKS_SQL = """
SELECT (substr(reference, 3, 4) || substr(reference, 8, 4))::bigint / %(chunk)s AS chunk, count(*)
FROM reports_case WHERE reference LIKE %(like)s GROUP BY 1
"""


def case_reference(n: int) -> str:
    digits = f"{n:08d}"
    return f"{CASE_PREFIX}{digits[:4]}-{digits[4:]}"


# --- Filling ----------------------------------------------------------------------------------------------------


@dataclass
class Actors:
    main_queue: int
    other_queue: int
    analysts: list[Any]  # ntd.models.User
    holders: list[Any]


def make_actors() -> Actors:
    """Two queues, 16 analysts granted the main one (as an admin grants it: guardian's reports.work_queue on the
    queue), and the holders of the seeded in-review cases. Idempotent."""
    from guardian.shortcuts import assign_perm

    from ntd.models import User
    from ntd.roles import ANALYST, assign_role
    from reports.models import Queue

    main, _ = Queue.objects.get_or_create(slug=MAIN_QUEUE, defaults={"name": "Bench: main"})
    other, _ = Queue.objects.get_or_create(slug=OTHER_QUEUE, defaults={"name": "Bench: hosted in DE",
                                                                       "hosting_countries": ["DE"]})

    def user(name: str) -> Any:
        found, created = User.objects.get_or_create(username=name)
        if created:
            found.set_unusable_password()
            found.save(update_fields=["password"])
            assign_role(found, ANALYST)
        return found

    analysts = [user(f"bench-analyst-{i:02d}") for i in range(1, ANALYSTS + 1)]
    holders = [user(f"bench-holder-{i}") for i in range(1, HOLDERS + 1)]
    for person in analysts + holders:
        assign_perm("reports.work_queue", person, main)
    for person in holders:
        assign_perm("reports.work_queue", person, other)
    return Actors(main.pk, other.pk, analysts, holders)


def bench_case_count(db_url: str) -> tuple[int, dict[int, int]]:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(SEEDED_CHUNKS_SQL, {"chunk": CHUNK, "like": CASE_PREFIX + "%"}).fetchall()
    per_chunk = {int(chunk): int(count) for chunk, count in rows}
    return sum(per_chunk.values()), per_chunk


def fill(db_url: str, target: int, actors: Actors, jobs: int) -> float:
    """Seed the cases 1..target that are missing, chunk by chunk, then VACUUM (ANALYZE). A chunk is one transaction
    (its cases and their reports); a chunk found incomplete is run again, and skips what it already has.

    Returns the seconds spent (0 when nothing was missing)."""
    total, per_chunk = bench_case_count(db_url)
    ranges = []
    for chunk in range(target // CHUNK + 1):
        first, last = max(1, chunk * CHUNK), min(target, chunk * CHUNK + CHUNK - 1)
        if first <= last and per_chunk.get(chunk, 0) < last - first + 1:
            ranges.append((first, last))
    if not ranges:
        say(f"{total:,} bench cases already there: no filling")
        return 0.0
    missing = target - total
    planned = sum(last - first + 1 for first, last in ranges)
    say(f"filling {missing:,} cases ({total:,} there) in {len(ranges)} chunks of up to {CHUNK:,}, {jobs} at a time; "
        "about 1-2 minutes per million on 2 quiet cores")
    started = time.perf_counter()
    now = dt.datetime.now(dt.UTC)
    done = [0]
    lock = threading.Lock()

    def one(bounds: tuple[int, int]) -> None:
        first, last = bounds
        t0 = time.perf_counter()
        with psycopg.connect(db_url) as conn, conn.transaction():
            conn.execute(CASES_SQL, {"prefix": CASE_PREFIX, "first": first, "last": last, "now": now,
                                     "holders": [h.pk for h in actors.holders], "main": actors.main_queue,
                                     "other": actors.other_queue})
            conn.execute(REPORTS_SQL, {"lo": case_reference(first), "hi": case_reference(last),
                                       "r1": REPORT_PREFIXES[0], "r2": REPORT_PREFIXES[1],
                                       "r1like": REPORT_PREFIXES[0] + "%"})
        with lock:
            done[0] += last - first + 1
            say(f"  cases {first:,}..{last:,} in {time.perf_counter() - t0:.0f} s ({done[0]:,} of {planned:,} "
                f"after {time.perf_counter() - started:.0f} s)")

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one, r) for r in ranges]:
            future.result()
    say("VACUUM (ANALYZE) of the filled tables (what autovacuum does after a bulk insert, done before measuring)")
    with psycopg.connect(db_url, autocommit=True) as conn:
        for table in ("reports_case", "reports_report", "reports_reporturl"):
            conn.execute(f"VACUUM (ANALYZE) {table}")
    seconds = time.perf_counter() - started
    say(f"filled in {seconds:.0f} s")
    return seconds


def database_summary(db_url: str, actors: Actors) -> str:
    with psycopg.connect(db_url) as conn:
        cases = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'reports_case'").fetchone()
        size = conn.execute("SELECT pg_size_pretty(pg_total_relation_size('reports_case')), "
                            "pg_size_pretty(pg_database_size(current_database()))").fetchone()
        reports = conn.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'reports_reporturl'").fetchone()
    assert cases and size and reports
    return (f"about {cases[0]:,} cases ({size[0]} with indexes; database {size[1]}), {reports[0]:,} report URLs; "
            f"analysts see queue {actors.main_queue} ({MAIN_QUEUE})")


# --- Sign-in: a session as force_login makes it, with the second factor done ----------------------------------


def signed_in_cookie(user: Any) -> str:
    """A session cookie for `user`: what django.contrib.auth.login() stores (as the test client's force_login
    does), plus ntd's sign-in time and the flag RequireTwoFactorMiddleware sets once the TOTP step is passed."""
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY

    from ntd.accounts import LOGIN_AT_SESSION_KEY, MFA_OK_SESSION_KEY

    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session[SESSION_KEY] = user._meta.pk.value_to_string(user)
    session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session[LOGIN_AT_SESSION_KEY] = time.time()
    session[MFA_OK_SESSION_KEY] = True
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


# --- In-process: bare SQL against the ORM -----------------------------------------------------------------------


@dataclass
class Timing:
    label: str
    ms: list[float]
    note: str = ""

    def __post_init__(self) -> None:
        self.ms.sort()

    def p(self, q: float) -> float:
        return percentile(self.ms, q)


@dataclass
class Statements:
    cases: str  # the first page's case query, exactly as Django sent it (parameters inlined by psycopg)
    sources: str  # the sources of those 50 cases
    counts: str  # status_counts()
    held: str  # take_next_case(): the case the analyst already holds
    claimable: str  # take_next_case(): the most urgent claimable case, FOR UPDATE SKIP LOCKED


def capture_statements(user: Any) -> Statements:
    from django.db import connection, transaction
    from django.test.utils import CaptureQueriesContext

    from reports import selectors, services

    selectors.triage_page(user, selectors.TriageFilters())  # the queue grants, memoised on the user
    with CaptureQueriesContext(connection) as page:
        selectors.triage_page(user, selectors.TriageFilters())
    with CaptureQueriesContext(connection) as counts:
        selectors.status_counts(user)
    with CaptureQueriesContext(connection) as nxt, transaction.atomic():
        services.take_next_case(actor=user)
        transaction.set_rollback(True)
    sqls = [q["sql"] for q in page.captured_queries]
    if len(sqls) != 2:
        raise RuntimeError(f"triage_page() sent {len(sqls)} statements, expected 2: {sqls}")
    claimable = [q["sql"] for q in nxt.captured_queries if "SKIP LOCKED" in q["sql"]]
    held = [q["sql"] for q in nxt.captured_queries if "FOR UPDATE" in q["sql"] and "SKIP LOCKED" not in q["sql"]
            and '"reports_case"."assignee_id" =' in q["sql"]]
    if not claimable or not held:
        raise RuntimeError(f"take_next_case(): statements not found in {[q['sql'] for q in nxt.captured_queries]}")
    return Statements(cases=sqls[0], sources=sqls[1], counts=counts.captured_queries[-1]["sql"], held=held[0],
                      claimable=claimable[0])


def orm_cases_query(user: Any) -> Any:
    """The case query of triage_page() on its own (the same chain of calls), to split ORM time from the 2nd query."""
    from reports import selectors

    return (selectors.triage_cases(user, selectors.TriageFilters()).select_related("assignee")
            .only(*selectors.TRIAGE_COLUMNS, "assignee__username", "assignee__pseudonym")[: PAGE + 1])


def measure_in_process(db_url: str, user: Any, statements: Statements, iterations: int) -> dict[str, Timing]:
    """Interleaved, so that a busy moment hits every figure alike: the bare case, sources and counts statements,
    triage_page() through the ORM, the ORM case query alone and its compilation alone, and the bare "next case"
    select (in a rolled-back transaction). Then the whole view in-process (Django's test client, no HTTP)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from reports import selectors

    filters = selectors.TriageFilters()
    orm_qs = orm_cases_query(user)
    with CaptureQueriesContext(connection) as captured:
        list(orm_qs.all())
    same = [q["sql"] for q in captured.captured_queries] == [statements.cases]
    names = ("bare_cases", "bare_both", "bare_counts", "orm_page", "orm_cases", "orm_compile", "bare_next")
    samples: dict[str, list[float]] = {name: [] for name in names}
    warm = max(10, iterations // 10)
    with psycopg.connect(db_url, autocommit=True) as conn:
        cur = conn.cursor()
        for i in range(warm + iterations):
            t0 = time.perf_counter()
            cur.execute(statements.cases)  # type: ignore[arg-type]
            rows = cur.fetchall()
            t1 = time.perf_counter()
            cur.execute(statements.sources)  # type: ignore[arg-type]
            cur.fetchall()
            t2 = time.perf_counter()
            page = selectors.triage_page(user, filters)
            t3 = time.perf_counter()
            list(orm_qs.all())
            t4 = time.perf_counter()
            orm_cases_query(user).query.get_compiler(using="default").as_sql()
            t5 = time.perf_counter()
            with conn.transaction(force_rollback=True):
                t6 = time.perf_counter()
                cur.execute(statements.claimable)  # type: ignore[arg-type]
                cur.fetchall()
                t7 = time.perf_counter()
            cur.execute(statements.counts)  # type: ignore[arg-type]
            cur.fetchall()
            t8 = time.perf_counter()
            if i >= warm:
                for name, seconds in zip(names, (t1 - t0, t2 - t0, t8 - t7, t3 - t2, t4 - t3, t5 - t4, t7 - t6),
                                         strict=True):
                    samples[name].append(seconds * 1000)
        if len(rows) != PAGE + 1 or len(page.rows) != PAGE:
            raise RuntimeError(f"expected {PAGE + 1} rows (a full page and one more), got {len(rows)}")
    view_ms, sql_ms, statements_per_view = view_in_process(user, max(20, iterations // 4))
    return {
        "bare_cases": Timing("bare SQL: the page's case query (psycopg)", samples["bare_cases"]),
        "bare_both": Timing("bare SQL: case query + sources query", samples["bare_both"]),
        "orm_cases": Timing("ORM: the case query alone", samples["orm_cases"],
                            "" if same else "NOTE: its SQL differs from triage_page()'s"),
        "orm_compile": Timing("ORM: building + compiling it (no database)", samples["orm_compile"]),
        "orm_page": Timing("ORM: triage_page() (case + sources query)", samples["orm_page"]),
        "bare_counts": Timing("bare SQL: status counts (capped)", samples["bare_counts"]),
        "bare_next": Timing('bare SQL: "next case" select (SKIP LOCKED)', samples["bare_next"]),
        "view": Timing(f"view in-process: GET /cases/ ({statements_per_view} statements)", view_ms),
        "view_sql": Timing("  of which SQL (the statements' own time)", sql_ms),
    }


def test_client(user: Any) -> Any:
    from django.test import Client

    client = Client()
    name, value = signed_in_cookie(user).split("=", 1)
    client.cookies[name] = value
    response = client.get("/cases/")  # also sets the CSRF cookie, which the client then sends as a browser does
    if response.status_code != 200:
        raise RuntimeError(f"in-process GET /cases/: {response.status_code} {response.get('Location')}")
    return client


def view_in_process(user: Any, iterations: int) -> tuple[list[float], list[float], int]:
    """GET /cases/ through Django's test client (the whole middleware stack, no HTTP, no gunicorn): the time of
    each request, and the time of its SQL statements as the debug cursor measures them."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = test_client(user)
    total, sql = [], []
    count = 0
    for i in range(iterations + 5):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            client.get("/cases/")
            elapsed = time.perf_counter() - started
        if i >= 5:
            total.append(elapsed * 1000)
            sql.append(sum(float(q["time"]) for q in captured.captured_queries) * 1000)
            count = len(captured.captured_queries)
    return total, sql, count


def profile_view(user: Any, iterations: int) -> None:
    """cProfile of GET /cases/ in-process, to stderr: where the view's time goes."""
    import cProfile
    import io
    import pstats

    client = test_client(user)
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(iterations):
        client.get("/cases/")
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(25)
    print(f"\n--- cProfile of {iterations} x GET /cases/ in-process\n{out.getvalue()}", file=sys.stderr, flush=True)


# --- HTTP -------------------------------------------------------------------------------------------------------


def request(port: int, method: str, path: str, cookie: str, body: str | None = None) -> tuple[int, bytes, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Cookie": cookie}
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data, resp


ROW_RE = re.compile(rb'id="row-(' + re.escape(CASE_PREFIX.encode()) + rb'\d{4}-\d{4})"')


@dataclass
class Analyst:
    cookie: str  # session (and, after csrf(), the CSRF cookie)
    token: str = ""

    def csrf(self, port: int) -> None:
        """GET /cases/ once: the csrftoken cookie and the form's csrfmiddlewaretoken, for POST /cases/next/."""
        status, html, resp = request(port, "GET", "/cases/", self.cookie)
        if status != 200:
            raise RuntimeError(f"GET /cases/ as an analyst: {status} {resp.getheader('Location')} {html[:300]!r}")
        cookies = [v for k, v in resp.getheaders() if k.lower() == "set-cookie"]
        csrf = next((c.split(";", 1)[0] for c in cookies if c.startswith("csrftoken=")), None)
        match = re.search(rb'name="csrfmiddlewaretoken" value="([^"]*)"', html)
        if csrf is None or match is None:
            raise RuntimeError("GET /cases/: no CSRF cookie or token (is the Next case button there?)")
        self.cookie = f"{self.cookie.split(';')[0]}; {csrf}"
        self.token = match.group(1).decode()


Step = Callable[[http.client.HTTPConnection], tuple[bool, float, str]]


def load(server: Server, label: str, clients: int, warmup: float, duration: float,
         make_step: Callable[[int], Step]) -> Result:
    """`clients` threads, each calling its step as soon as the last one returned, for warmup + duration seconds.

    Only steps that end inside the measured window count for the rate and the percentiles; the step times
    itself (the next-case step leaves the release out). CPU per request is over the whole run."""
    booted = server.boots()
    cpu_before = CPU.now(server.pid)
    barrier = threading.Barrier(clients + 1)
    window = [0.0, 0.0, 0.0]
    timings: list[list[tuple[float, float]]] = [[] for _ in range(clients)]
    failures: list[str] = []
    failed = [0]
    lock = threading.Lock()

    def run(index: int) -> None:
        step = make_step(index)
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
        barrier.wait()
        stop = window[2]
        while time.perf_counter() < stop:
            try:
                ok, seconds, error = step(conn)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                ok, seconds, error = False, 0.0, repr(exc)
            if ok:
                timings[index].append((time.perf_counter(), seconds))
            else:
                with lock:
                    failed[0] += 1
                    if len(failures) < 3:
                        failures.append(error[:400])
        conn.close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    now = time.perf_counter()
    window[:] = [now, now + warmup, now + warmup + duration]
    barrier.wait()
    for thread in threads:
        thread.join(timeout=warmup + duration + 120)
    _, measure_from, stop = window
    counted = sorted(s * 1000 for per in timings for ended, s in per if measure_from <= ended <= stop)
    total = sum(len(t) for t in timings) + failed[0]
    app_ms, machine_ms = CPU.now(server.pid).per_request_ms(cpu_before, total)
    return Result(label, len(counted) / duration, counted, total, failed[0], failures, boots=server.boots() - booted,
                  app_ms=app_ms, machine_ms=machine_ms)


def get_step(path: str, cookie: str) -> Step:
    headers = {"Cookie": cookie} if cookie else {}

    def step(conn: http.client.HTTPConnection) -> tuple[bool, float, str]:
        began = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        seconds = time.perf_counter() - began
        if resp.status != 200:
            return False, seconds, f"{resp.status} {resp.getheader('Location')} {body[:200]!r}"
        return True, seconds, ""

    return step


def next_case_step(analyst: Analyst) -> Step:
    """POST /cases/next/ (timed): 302 to the case taken. Then POST its release (not timed): 302 to /cases/."""
    headers = {"Cookie": analyst.cookie, "Content-Type": "application/x-www-form-urlencoded"}
    body = urllib.parse.urlencode({"csrfmiddlewaretoken": analyst.token})

    def step(conn: http.client.HTTPConnection) -> tuple[bool, float, str]:
        began = time.perf_counter()
        conn.request("POST", "/cases/next/", body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        seconds = time.perf_counter() - began
        location = resp.getheader("Location") or ""
        if resp.status != 302 or not location.startswith("/cases/" + CASE_PREFIX):
            return False, seconds, f"next: {resp.status} {location} {text[:200]!r}"
        conn.request("POST", location + "release/", body=body, headers=headers)
        resp = conn.getresponse()
        text = resp.read()
        if resp.status != 302:
            return False, seconds, f"release {location}: {resp.status} {text[:200]!r}"
        return True, seconds, ""

    return step


def release_all(db_url: str, actors: Actors) -> None:
    """Give back whatever a bench analyst still holds (a client stopped between "next" and "release")."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("UPDATE reports_case SET status = CASE WHEN status = 'in_review' THEN 'received' ELSE status END, "
                     "assignee_id = NULL, claimed_at = NULL, claim_expires_at = NULL WHERE assignee_id = ANY(%s)",
                     [[a.pk for a in actors.analysts]])


@dataclass
class SizeResult:
    size: int
    fill_seconds: float
    summary: str
    timings: dict[str, Timing]
    http: dict[str, Result] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)  # index(es) each statement's plan used
    code: str = ""
    load_before: float = 0.0
    load_after: float = 0.0
    notes: list[str] = field(default_factory=list)


def page_label(kind: str, clients: int) -> str:
    return f"{kind}, {clients} client{'s' if clients > 1 else ''}"


def measure_http(args: argparse.Namespace, env: dict[str, str], workdir: Path, actors: Actors,
                 result: SizeResult) -> None:
    cookies = [signed_in_cookie(user) for user in actors.analysts]
    minimal_path = f"/minimal/cases/?queue={actors.main_queue}"
    with Server("ntd", env, workdir, args, "ntd.settings") as ntd, \
            Server("minimal-stock", env, workdir, args, "bench._baseline_app.settings",
                   {"BENCH_BASELINE_MIDDLEWARE": "stock"}) as stock, \
            Server("minimal-ntd", env, workdir, args, "bench._baseline_app.settings",
                   {"BENCH_BASELINE_MIDDLEWARE": "ntd"}) as mw:
        ntd.wait_ready("/healthz")
        stock.wait_ready("/minimal/")
        mw.wait_ready("/minimal/")
        # Both pages must show the same 50 cases, and /cases/ must be the page itself (not a sign-in or 2FA step).
        status, html, resp = request(ntd.port, "GET", "/cases/", cookies[0])
        if status != 200:
            raise RuntimeError(f"GET /cases/ as a bench analyst: {status} {resp.getheader('Location')}")
        page_refs = ROW_RE.findall(html)
        _, html, _ = request(stock.port, "GET", minimal_path, "")
        minimal_refs = ROW_RE.findall(html)
        _, html, _ = request(mw.port, "GET", minimal_path, cookies[0])
        if len(page_refs) != PAGE or page_refs != minimal_refs or ROW_RE.findall(html) != page_refs:
            result.notes.append(f"the pages differ: /cases/ shows {len(page_refs)} cases, the minimal page "
                                f"{len(minimal_refs)}, not the same")
        analysts = [Analyst(c) for c in cookies]
        for analyst in analysts:  # a browser sends the CSRF cookie back: so do these clients
            analyst.csrf(ntd.port)
        runs: list[tuple[int, str, Server, Callable[[int], Step]]] = []
        for clients in CONCURRENCY:
            runs += [
                (clients, page_label("minimal page (stock middleware)", clients), stock,
                 lambda i: get_step(minimal_path, "")),
                (clients, page_label("minimal page (ntd middleware, signed in)", clients), mw,
                 lambda i: get_step(minimal_path, analysts[i].cookie)),
                (clients, page_label("first page GET /cases/", clients), ntd,
                 lambda i: get_step("/cases/", analysts[i].cookie)),
            ]
        for round_no in range(1, args.rounds + 1):
            for clients, label, server, make_step in runs:
                say(f"round {round_no}: {label}")
                r = load(server, label, clients, args.warmup, args.duration, make_step)
                keep_best(result.http, r)
            for analyst in analysts:
                analyst.csrf(ntd.port)
            for clients in CONCURRENCY:
                label = page_label('"next case" POST /cases/next/', clients)
                say(f"round {round_no}: {label} (+ release, not timed)")
                release_all(args.db_url, actors)
                r = load(ntd, label, clients, args.warmup, args.duration, lambda i: next_case_step(analysts[i]))
                release_all(args.db_url, actors)
                keep_best(result.http, r)
        for server in (ntd, stock, mw):
            say(f"gunicorn ({server.label}): {server.config_used()}, {server.boots()} worker boots in all")


def keep_best(best: dict[str, Result], r: Result) -> None:
    """With --rounds: each figure's run with the lowest p95 (the same rule for the pages and their baselines)."""
    if r.label not in best or (r.latencies_ms and r.p(95) < best[r.label].p(95)):
        best[r.label] = r


# --- EXPLAIN ----------------------------------------------------------------------------------------------------


def explain(db_url: str, statements: Statements) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each statement to stderr (the locking ones in a rolled-back transaction);
    returns the indexes each plan used, for the table."""
    used = {}
    with psycopg.connect(db_url) as conn:
        for name, sql in (("first page: case query", statements.cases),
                          ("first page: sources query", statements.sources),
                          ("first page: status counts", statements.counts),
                          ('"next case": held case', statements.held),
                          ('"next case": claimable case', statements.claimable)):
            with conn.transaction(force_rollback=True):
                conn.execute(sql)  # type: ignore[arg-type] - once, so the plan below sees warm buffers
                plan = "\n".join(row[0] for row in conn.execute(
                    "EXPLAIN (ANALYZE, BUFFERS) " + sql))  # type: ignore[operator]
            print(f"\n--- EXPLAIN (ANALYZE, BUFFERS) {name}\n{sql}\n\n{plan}", file=sys.stderr, flush=True)
            scans = re.findall(r"(Index Only Scan|Index Scan|Bitmap Index Scan)(?: Backward)? (?:using|on) (\w+)",
                               plan)
            seq = re.findall(r"Seq Scan on (\w+)", plan)
            sorts = re.findall(r"Sort Method: ([^\n]+)", plan)
            parts = sorted({f"{kind.replace('Index ', 'idx ').lower()} {index}" for kind, index in scans})
            parts += [f"SEQ SCAN {t}" for t in sorted(set(seq))]
            parts += [f"sort ({s.strip()})" for s in sorted(set(sorts))]
            total = re.search(r"Execution Time: ([\d.]+) ms", plan)
            used[name] = (", ".join(parts) or "?") + (f"; {total.group(1)} ms" if total else "")
    return used


def code_version() -> str:
    """The commit and the uncommitted changes of the code the pages run (gunicorn loads it at each size)."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "ntd", "reports", "templates", "bench"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
        digest = hashlib.sha256(subprocess.run(["git", "diff", "HEAD", "--", "ntd", "reports", "templates"],
                                               cwd=ROOT, capture_output=True, check=True).stdout).hexdigest()[:8]
    except (OSError, subprocess.CalledProcessError):
        return "unknown (no git)"
    return f"{head}" + (f" + {len(dirty)} uncommitted paths (diff {digest})" if dirty else "")


# --- Report -----------------------------------------------------------------------------------------------------


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def print_report(header: list[str], sizes: list[SizeResult]) -> list[str]:
    width = 150
    misses: list[str] = []
    print()
    print("=" * width)
    for line in header:
        print(line)
    for s in sizes:
        print("-" * width)
        print(f"{s.size:,} cases: {s.summary}" + (f"; filled in {s.fill_seconds:.0f} s" if s.fill_seconds else ""))
        print(f"load average {s.load_before:.1f} before the measurements, {s.load_after:.1f} after; code {s.code}")
        for note in s.notes:
            print(f"NOTE {note}")
        print(f"{'figure':52} {'rate/s':>7} {'p50 ms':>7} {'p95 ms':>7}  {'baseline':28} {'p50 ms':>7} "
              f"{'p95 ms':>7} {'ratio':>6}  {'target':>16}  verdict")
        t = s.timings

        def row(name: str, rate: float | None, p50: float, p95: float, base: str = "", b50: float | None = None,
                b95: float | None = None, rat: float | None = None, target: str = "", ok: bool | None = None,
                size: int = s.size) -> None:
            v = "info" if ok is None else verdict(ok)
            if ok is False:
                misses.append(f"{size:,} cases: {name.strip()} ({target})")
            print(f"{name:52} {fmt(rate):>7} {p50:7.2f} {p95:7.2f}  {base:28} {fmt(b50, '.2f'):>7} "
                  f"{fmt(b95, '.2f'):>7} {fmt(rat, '.2f'):>6}  {target:>16}  {v}")

        if t:
            print("  in-process, interleaved, one connection each (ratio: p50 / p50)")
            bare, both = t["bare_cases"], t["bare_both"]
            row(bare.label, None, bare.p(50), bare.p(95))
            row(both.label, None, both.p(50), both.p(95))
            orm = t["orm_cases"]
            row(orm.label, None, orm.p(50), orm.p(95), "bare case query", bare.p(50), bare.p(95),
                ratio(orm.p(50), bare.p(50)), "info")
            comp = t["orm_compile"]
            row(comp.label, None, comp.p(50), comp.p(95))
            page = t["orm_page"]
            r = ratio(page.p(50), both.p(50))
            row(page.label, None, page.p(50), page.p(95), "bare case + sources", both.p(50), both.p(95), r,
                f"<= {QUERY_TARGET:g}x", r <= QUERY_TARGET)
            for name in ("bare_counts", "bare_next", "view", "view_sql"):
                row(t[name].label, None, t[name].p(50), t[name].p(95))
            for timing in t.values():
                if timing.note:
                    print(f"    {timing.note}")
        if s.http:
            print("  HTTP through gunicorn (ratio: p95 / p95; latency from send to last byte, listen queue included)")
            for clients in CONCURRENCY:
                stock = s.http.get(page_label("minimal page (stock middleware)", clients))
                mw = s.http.get(page_label("minimal page (ntd middleware, signed in)", clients))
                page_r = s.http.get(page_label("first page GET /cases/", clients))
                for r_ in (stock, mw):
                    if r_ is not None:
                        row(r_.label, r_.rate, r_.p(50), r_.p(95))
                if page_r is not None:
                    target = PAGE_P95_TARGET[clients]
                    row(page_r.label, page_r.rate, page_r.p(50), page_r.p(95), target=f"p95 < {target:g} ms",
                        ok=page_r.p(95) < target)
                    if stock is not None:
                        r = ratio(page_r.p(95), stock.p(95))
                        row(f"  first page / minimal page (stock), {clients}", None, page_r.p(50), page_r.p(95),
                            "minimal page (stock)", stock.p(50), stock.p(95), r, f"<= {PAGE_RATIO_TARGET:g}x",
                            r <= PAGE_RATIO_TARGET)
                    if mw is not None:
                        row(f"  first page / minimal page (ntd mw), {clients}", None, page_r.p(50), page_r.p(95),
                            "minimal page (ntd mw)", mw.p(50), mw.p(95), ratio(page_r.p(95), mw.p(95)), "info")
            for clients in CONCURRENCY:
                nxt_r = s.http.get(page_label('"next case" POST /cases/next/', clients))
                if nxt_r is not None:
                    row(nxt_r.label, nxt_r.rate, nxt_r.p(50), nxt_r.p(95))
            errors = [(r_.label, r_.errors, r_.requests, r_.error_samples) for r_ in s.http.values() if r_.errors]
            title = 'run ("next case": requests and CPU per next + release pair)'
            print(f"  {title:58} {'requests':>8} {'errors':>6} {'app ms/req':>10} {'all ms/req':>10} {'boots':>5}")
            for r_ in s.http.values():
                print(f"  {r_.label:58} {r_.requests:8d} {r_.errors:6d} {fmt(r_.app_ms, '.2f'):>10} "
                      f"{fmt(r_.machine_ms, '.2f'):>10} {r_.boots or '-':>5}")
            for label, count, total, samples in errors:
                misses.append(f"{s.size:,} cases: {label}: {count} errors in {total} requests")
                for sample in samples:
                    print(f"    first errors of {label}: {sample[:300]!r}")
        for name, used in s.plans.items():
            print(f"  plan of {name:30} {used}")
    print("=" * width)
    return misses


# --- Main -------------------------------------------------------------------------------------------------------


def parse_sizes(text: str) -> list[int]:
    sizes = sorted({int(x.replace("_", "")) for x in text.split(",") if x.strip()})
    if not sizes or sizes[0] < PAGE * 10 or sizes[-1] > MAX_CASES:
        raise argparse.ArgumentTypeError(f"sizes between {PAGE * 10} and {MAX_CASES:,}")
    return sizes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=None,
                        help=f"case counts to measure at, growing the same database (default {DEFAULT_SIZES})")
    parser.add_argument("--quick", action="store_true",
                        help="check that it works: 20,000 cases, short runs, database ntd_bench_triage_quick")
    parser.add_argument("--duration", type=float, default=None, help="measured seconds per HTTP run (default 10)")
    parser.add_argument("--warmup", type=float, default=None, help="unmeasured seconds before each (default 2)")
    parser.add_argument("--iterations", type=int, default=None,
                        help="in-process timings of each statement (default 400)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat the HTTP runs, alternating pages and baselines; keep each one's lowest p95")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (default 2)")
    parser.add_argument("--fill-jobs", type=int, default=2, help="chunks filled at the same time (default 2)")
    parser.add_argument("--skip-http", action="store_true", help="fill and the in-process figures only")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="at the largest size, cProfile N in-process GET /cases/ (to stderr)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database (and its cases)")
    parser.add_argument("--fresh", action="store_true", help="drop the scratch database first")
    parser.add_argument("--access-log", action="store_true", help="keep gunicorn.conf.py's logging, access log too")
    parser.add_argument("--max-requests", type=int, default=None,
                        help="override gunicorn.conf.py's max_requests (0: workers are never recycled)")
    parser.add_argument("--db-url", default=None, help=f"scratch database (default {DEFAULT_DB})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS, help=f"Redis database (default {DEFAULT_REDIS})")
    args = parser.parse_args()
    quick = args.quick
    args.sizes = args.sizes or parse_sizes("20000" if quick else DEFAULT_SIZES)
    args.db_url = args.db_url or (QUICK_DB if quick else DEFAULT_DB)
    args.duration = args.duration if args.duration is not None else (2.0 if quick else 10.0)
    args.warmup = args.warmup if args.warmup is not None else (1.0 if quick else 2.0)
    args.iterations = args.iterations or (50 if quick else 400)
    loopback_only(args.db_url, args.redis_url)
    if args.duration <= 0 or args.rounds < 1 or args.workers < 1 or args.fill_jobs < 1 or args.iterations < 1:
        parser.error("--duration, --rounds, --workers, --fill-jobs and --iterations must be positive")

    workdir = Path(tempfile.mkdtemp(prefix="ntd-bench-triage-"))
    env = bench_env(args, workdir)
    env["CACHE_KEY_PREFIX"] = "ntd-bench-triage"
    load_start = os.getloadavg()[0]
    cpus = os.cpu_count() or 1
    header = [
        f"ntd triage benchmark  {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC  {cpus} CPUs  load average at start "
        f"{load_start:.1f}" + ("  BUSY MACHINE: absolute figures are not comparable" if load_start > cpus / 2 else ""),
        f"database {args.db_url}  cache {args.redis_url}  {args.workers} sync workers  {args.duration:g} s measured "
        f"(+{args.warmup:g} s warm-up) per HTTP run, rounds {args.rounds}  {args.iterations} in-process timings",
        f"code at start {code_version()} (the in-process figures run it; gunicorn loads what is on disk at each "
        "size)",
        f"targets: triage_page() <= {QUERY_TARGET:g}x the bare SQL (p50); first page p95 < "
        f"{PAGE_P95_TARGET[1]:g} ms (1 client), < {PAGE_P95_TARGET[16]:g} ms (16), and <= {PAGE_RATIO_TARGET:g}x the "
        "minimal page (stock middleware, p95)",
    ]
    ok = False
    results: list[SizeResult] = []
    try:
        prepare_database(args, env)
        django_setup(env)
        actors = make_actors()
        analyst = actors.analysts[0]
        statements = None
        for size in args.sizes:
            have, _ = bench_case_count(args.db_url)
            if have > size:
                say(f"{have:,} bench cases in the database, more than {size:,}: skipping that size (use --fresh)")
                continue
            seconds = fill(args.db_url, size, actors, args.fill_jobs)
            result = SizeResult(size, seconds, database_summary(args.db_url, actors), {})
            result.load_before = os.getloadavg()[0]
            result.code = code_version()
            release_all(args.db_url, actors)
            statements = capture_statements(analyst)
            say(f"{size:,} cases: in-process, {args.iterations} interleaved timings")
            result.timings = measure_in_process(args.db_url, analyst, statements, args.iterations)
            if not args.skip_http:
                measure_http(args, env, workdir, actors, result)
            result.load_after = os.getloadavg()[0]
            results.append(result)
        if statements is not None and results:
            say(f"EXPLAIN (ANALYZE, BUFFERS) at {results[-1].size:,} cases")
            results[-1].plans = explain(args.db_url, capture_statements(analyst))
            if args.profile:
                profile_view(analyst, args.profile)
        header.append(f"load average at the end {os.getloadavg()[0]:.1f}")
        misses = print_report(header, results)
        if misses:
            print("MISS:")
            for miss in misses:
                print(f"  {miss}")
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
