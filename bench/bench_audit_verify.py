#!/usr/bin/env python
"""How fast does `verify_chain()` walk the audit log? DESIGN target: one million events in under 60 s.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/ntd .venv/bin/python bench/bench_audit_verify.py --events 200000

Creates a scratch database next to DATABASE_URL's (`ntd_bench_audit` unless --database), migrates it, loads N
chained events with COPY (hashes computed in Python with ntd.audit's own canonical form) and a signed checkpoint
every --checkpoint-every events, then times, after one untimed warm-up read:

  raw baseline   the same eleven columns, SELECT ... ORDER BY seq through a psycopg server-side cursor fetching
                 5,000 rows at a time, as text, and SHA-256 over each row: reading the rows and hashing them,
                 nothing else;
  verify_chain() the real thing: the ORM read, the canonical JSON, the chain and the checkpoints.

and prints both rates and their ratio. The scratch database is dropped at the end unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
TARGET_EVENTS, TARGET_SECONDS = 1_000_000, 60.0
COLUMNS = "seq, at, actor_type, actor_id, action, target_type, target_id, case_id, data, prev_hash, hash"


def scratch_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def admin(url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(scratch_url(url, "postgres"), autocommit=True) as conn:
        conn.execute(statement)


def setup_django(url: str, checkpoint_path: Path) -> None:
    os.environ["DATABASE_URL"] = url
    os.environ["AUDIT_CHECKPOINT_PATH"] = str(checkpoint_path)
    os.environ.setdefault("DEBUG", "1")  # the development defaults for the secrets: this database is thrown away
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ntd.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # no query log, as in production


def load(n: int, checkpoint_every: int, seed: int) -> None:
    """COPY n events that form a valid chain, and sign a checkpoint every `checkpoint_every` of them."""
    from django.db import connection

    copy_chain(random_events(n, seed), checkpoint_every)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) ntd_auditevent")  # hint bits and statistics, as on a settled table


def random_events(n: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """n events of any action, by users, partners and the system, 70% about a case: (at, actor_type, actor_id,
    action, target_type, target_id, case_id, data), as `copy_chain()` takes them."""
    from ntd import audit

    rng = random.Random(seed)
    actions = sorted(audit.Action.values)
    statuses = ["new", "in_review", "notice_sent", "removed", "closed"]
    at = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    for _ in range(n):
        at += dt.timedelta(microseconds=rng.randrange(1, 2_000_000))
        kind = rng.random()
        if kind < 0.6:
            actor_type, actor_id = "user", str(rng.randrange(1, 60))
        elif kind < 0.8:
            actor_type, actor_id = "partner", str(rng.randrange(1, 25))
        else:
            actor_type, actor_id = "system", ""
        case_id = rng.randrange(1, 50_000) if rng.random() < 0.7 else None
        target_type, target_id = ("reports.case", str(case_id)) if case_id else ("", "")
        data = {"from": rng.choice(statuses), "to": rng.choice(statuses), "urls": rng.randrange(0, 40)}
        if rng.random() < 0.2:
            data["note"] = "réexamen demandé / second look"
        yield at, actor_type, actor_id, rng.choice(actions), target_type, target_id, case_id, data


def copy_chain(events: Iterable[tuple[Any, ...]], checkpoint_every: int,
               head: tuple[int, str] | None = None) -> tuple[int, str]:
    """COPY `events` into ntd_auditevent as a valid chain after `head` (seq, hash; default: an empty log).

    Each event is (at, actor_type, actor_id, action, target_type, target_id, case_id, data); its hash is computed
    here with ntd.audit's own canonical form, so verify_chain() accepts the rows. A checkpoint is signed every
    `checkpoint_every` sequence numbers and at the last event. One COPY, one transaction; returns the new head."""
    from django.db import connection

    from ntd import audit

    seq, prev = head or (0, audit.GENESIS_HASH)
    signed = seq
    with connection.cursor() as cursor, cursor.cursor.copy(f"COPY ntd_auditevent ({COLUMNS}) FROM STDIN") as copy:
        for at, actor_type, actor_id, action, target_type, target_id, case_id, data in events:
            seq += 1
            fields = audit.canonical_fields(seq, at, actor_type, actor_id, action, target_type, target_id, case_id,
                                            data)
            event_hash = audit.chain_hash(fields, prev)
            copy.write_row((seq, at, actor_type, actor_id, action, target_type, target_id, case_id,
                            json.dumps(data), prev, event_hash))
            if seq % checkpoint_every == 0:
                audit.write_checkpoint(seq, event_hash)
                signed = seq
            prev = event_hash
    if signed != seq:
        audit.write_checkpoint(seq, prev)
    return seq, prev


def raw_baseline(chunk: int) -> tuple[int, float, float]:
    from django.db import connection

    text_columns = ", ".join(f"coalesce({c}::text, '')" for c in COLUMNS.split(", "))
    started, cpu = time.perf_counter(), time.process_time()
    rows = 0
    with connection.connection.transaction(), connection.connection.cursor(name="bench_raw") as cursor:
        cursor.itersize = chunk
        cursor.execute(f"SELECT {text_columns} FROM ntd_auditevent ORDER BY seq")  # noqa: S608 - fixed text
        for row in cursor:
            hashlib.sha256("\x1f".join(row).encode()).digest()
            rows += 1
    return rows, time.perf_counter() - started, time.process_time() - cpu


def verify(chunk: int) -> tuple[object, float, float]:
    from ntd import audit

    started, cpu = time.perf_counter(), time.process_time()
    result = audit.verify_chain(chunk_size=chunk)
    return result, time.perf_counter() - started, time.process_time() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--checkpoint-every", type=int, default=1000, help="as AUDIT_CHECKPOINT_EVERY (1000)")
    parser.add_argument("--chunk", type=int, default=5000, help="rows per fetch, both sides (verify's default)")
    parser.add_argument("--database", default="ntd_bench_audit", help="scratch database, dropped and recreated")
    parser.add_argument("--keep", action="store_true", help="leave the scratch database in place")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ntd")
    url = scratch_url(base_url, args.database)
    admin(url, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    admin(url, f'CREATE DATABASE "{args.database}"')
    workdir = tempfile.TemporaryDirectory(prefix="ntd-bench-audit-")
    try:
        setup_django(url, Path(workdir.name) / "audit-checkpoints.jsonl")
        from django.core.management import call_command
        from django.db import connection

        call_command("migrate", verbosity=0)
        with connection.cursor() as cursor:
            cursor.execute("SELECT version()")
            server = cursor.fetchone()[0].split(" on ")[0]

        started = time.perf_counter()
        load(args.events, args.checkpoint_every, args.seed)
        load_s = time.perf_counter() - started

        raw_baseline(args.chunk)  # warm-up: both timed reads find the table in the same cache state
        load_avg = os.getloadavg()[0]
        raw_rows, raw_s, raw_cpu = raw_baseline(args.chunk)
        result, verify_s, verify_cpu = verify(args.chunk)
        assert raw_rows == args.events
        assert result.ok and result.checked == args.events, result.describe()

        per_event = verify_s / args.events
        projected = per_event * TARGET_EVENTS
        print(f"bench_audit_verify: {args.events:,} events, checkpoint every {args.checkpoint_every}, "
              f"fetch {args.chunk} rows; {server}; Python {sys.version.split()[0]}; "
              f"{os.cpu_count()} CPUs, load average {load_avg:.1f}")
        print(f"  {'':34} {'wall':>8}  {'events/s':>10}  {'client CPU':>10}")
        print(f"  {'load (Python hashing + COPY)':34} {load_s:7.2f}s  {args.events / load_s:>10,.0f}")
        print(f"  {'raw baseline (SELECT + SHA-256)':34} {raw_s:7.2f}s  {args.events / raw_s:>10,.0f}  {raw_cpu:9.2f}s")
        print(f"  {'verify_chain()':34} {verify_s:7.2f}s  {args.events / verify_s:>10,.0f}  {verify_cpu:9.2f}s")
        print(f"  {'ratio verify / raw':34} {verify_s / raw_s:7.2f}x  {'':10}  {verify_cpu / raw_cpu:9.2f}x")
        print(f"  projected for {TARGET_EVENTS:,} events: {projected:.1f} s wall "
              f"(target < {TARGET_SECONDS:.0f} s: {'met' if projected < TARGET_SECONDS else 'MISSED'})")
        return 0 if projected < TARGET_SECONDS else 1
    finally:
        try:
            from django.db import connections

            connections.close_all()
        except Exception:  # noqa: S110 - Django may not be set up yet; the drop below still runs
            pass
        if not args.keep:
            admin(url, f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        workdir.cleanup()


if __name__ == "__main__":
    sys.exit(main())
