"""The reporter's trace: after any number of anonymous submissions, no table, cache key or log line holds the
client address or the user agent, in any spelling of the address.

Everything is read back raw: every row of every table as JSON (bytea as hex), every Redis key and value of the
test's Redis database (the cache and the Celery broker), and every log record, both as logged (caplog, all
loggers at DEBUG, every SQL statement with its parameters) and as the JSON handler writes it.
"""

from __future__ import annotations

import datetime as dt
import io
import ipaddress
import logging
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client

from reports import abuse
from reports.models import Report

pytestmark = pytest.mark.django_db

USER_AGENT = "Mozilla/5.0 (X11; NtdTraceProbe/9.7.3; rv:140.0) Gecko/20100101 Firefox/140.0"
PROXY = "192.0.2.1"
ADDRESSES = ["203.0.113.77", "2001:db8::77", "::ffff:203.0.113.78", "198.51.100.23"]  # the last behind PROXY


def spellings(address: str) -> set[str]:
    """Every way the address can be written down: dotted or compressed, expanded, hex, integer, reverse DNS."""
    ip = ipaddress.ip_address(address)
    groups = [ip.packed[i:i + 2].hex() for i in range(0, len(ip.packed), 2)]
    forms = {address, str(ip), ip.packed.hex(), str(int(ip)), ip.reverse_pointer}
    if ip.version == 4:  # also as the IPv4-mapped IPv6 address a dual-stack socket reports
        forms |= {".".join(reversed(address.split("."))), f"::ffff:{address}", f"::ffff:{groups[0]}:{groups[1]}",
                  "0000:0000:0000:0000:0000:ffff:" + ":".join(groups)}
    else:
        forms |= {":".join(groups), ":".join(f"{int(group, 16):x}" for group in groups)}
        if ip.ipv4_mapped:
            forms |= spellings(str(ip.ipv4_mapped))
    return forms


def database_text() -> str:
    """Every row of every table, as PostgreSQL renders it in JSON."""
    rows: list[str] = []
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(include_views=False):
            cursor.execute(f"SELECT row_to_json(t)::text FROM {connection.ops.quote_name(table)} t")  # noqa: S608
            rows += [row for (row,) in cursor.fetchall()]
    return "\n".join(rows)


def redis_content() -> bytes:
    """Every key of the test's Redis database with its value, whatever its type."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    parts: list[bytes] = []
    for key in client.scan_iter(count=1000):
        parts.append(key)
        kind = client.type(key)
        if kind == b"string":
            parts.append(client.get(key) or b"")
        elif kind == b"list":
            parts += client.lrange(key, 0, -1)
        elif kind == b"set":
            parts += client.smembers(key)
        elif kind == b"zset":
            parts += [member for member, _ in client.zrange(key, 0, -1, withscores=True)]
        elif kind == b"hash":
            for field, value in client.hgetall(key).items():
                parts += [field, value]
        elif kind == b"stream":
            parts += [repr(entry).encode() for entry in client.xrange(key)]
    return b"\n".join(part for part in parts if part is not None)


def traces_in(text: str | bytes, needles: set[str]) -> set[str]:
    """The needles found in `text`, ignoring case (hex may be written either way)."""
    haystack = text.decode("utf-8", "backslashreplace") if isinstance(text, bytes) else text
    return {needle for needle in needles if re.search(re.escape(needle), haystack, re.IGNORECASE)}


@pytest.fixture
def every_log_line(caplog: pytest.LogCaptureFixture) -> Iterator[Callable[[], str]]:
    """All loggers at DEBUG and every SQL statement logged; returns every record as logged and every line written.

    ScrubFilter masks addresses in the record it filters, and caplog's handler comes after the console handler,
    so a handler of ours goes first on every logger that has handlers: it sees each record as it was logged.
    The JSON console handler writes to a buffer meanwhile: that is the line as it leaves the process.
    """
    root = logging.getLogger()
    loggers = [root] + [logger for logger in logging.root.manager.loggerDict.values()
                        if isinstance(logger, logging.Logger)]
    levels = {logger: logger.level for logger in loggers}
    as_logged = io.StringIO()
    raw = logging.StreamHandler(as_logged)
    raw.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    first_in_line = [logger for logger in loggers if logger is root or not logger.propagate]
    console = next(handler for handler in root.handlers if handler.name == "console")
    as_written = io.StringIO()
    previous_stream = console.setStream(as_written)
    caplog.set_level(logging.DEBUG)
    for logger in loggers:
        logger.setLevel(logging.DEBUG)
    for logger in first_in_line:
        logger.handlers.insert(0, raw)
    connection.force_debug_cursor = True
    try:
        yield lambda: "\n".join((as_logged.getvalue(), caplog.text, as_written.getvalue()))
    finally:
        connection.force_debug_cursor = False
        for logger in first_in_line:
            logger.removeHandler(raw)
        for logger, level in levels.items():
            logger.setLevel(level)
        console.setStream(previous_stream)


@pytest.fixture
def intake(settings: Any, time_machine: Any) -> None:
    """Small limits and a fresh cache key space; the clock frozen mid-hour so the counters stay in one hour."""
    import uuid

    settings.CACHES = {**settings.CACHES, "default": {**settings.CACHES["default"],
                                                      "KEY_PREFIX": f"trace-{uuid.uuid4().hex[:12]}"}}
    settings.INTAKE_MIN_FORM_SECONDS = 0
    settings.INTAKE_CHALLENGE_AFTER = 4
    settings.INTAKE_LIMIT_PER_HOUR = 6
    settings.NUM_PROXIES = 1
    time_machine.move_to(dt.datetime(2026, 3, 2, 10, 20, tzinfo=dt.UTC), tick=False)


def from_(address: str) -> dict[str, str]:
    """The WSGI environ of a browser at `address` (behind the trusted proxy for the last one)."""
    environ = {"REMOTE_ADDR": address, "HTTP_USER_AGENT": USER_AGENT, "HTTP_ACCEPT_LANGUAGE": "nl-NL"}
    if address == ADDRESSES[-1]:
        environ |= {"REMOTE_ADDR": PROXY, "HTTP_X_FORWARDED_FOR": f"10.9.8.7, {address}"}
    return environ


def report_data(**fields: Any) -> dict[str, Any]:
    return {"urls": "https://example.com/a\nhxxp://example[.]net/b", "material_kind": "images",
            "encountered_via": "website", "contact": "anonymous", "stamp": abuse.form_stamp(), **fields}


def submit_everything(client: Client) -> dict[str, list[int]]:
    """Valid, invalid and refused submissions and status look-ups from every address; the statuses seen."""
    seen: dict[str, list[int]] = {}
    for number, address in enumerate(ADDRESSES):
        environ = from_(address)
        statuses = seen.setdefault(address, [])
        statuses.append(client.get("/report/", **environ).status_code)
        statuses.append(client.post("/report/", report_data(description=f"Seen on a forum, {number}"),
                                    **environ).status_code)
        statuses.append(client.post("/report/", report_data(child_at_risk="on"), **environ).status_code)
        statuses.append(client.post("/report/", report_data(urls="javascript:alert(1)"), **environ).status_code)
        statuses.append(client.post("/report/", report_data(stamp="forged:stamp:value"), **environ).status_code)
        upload = SimpleUploadedFile("photo.jpg", b"\xff\xd8\xff\xe0" + b"0" * 64, content_type="image/jpeg")
        statuses.append(client.post("/report/", {"urls": "https://example.com/c", "file": upload},
                                    **environ).status_code)
        statuses.append(client.post("/report/status/", {"reference": "R-0000-0000", "code": "guess"},
                                    **environ).status_code)
        statuses.append(client.post("/report/", report_data(website="http://spam.example/"), **environ).status_code)
        statuses.append(client.post("/report/", report_data(), **environ).status_code)  # the challenge, unsolved
        statuses.append(client.post("/report/", report_data(), **environ).status_code)  # past the limit
        statuses.append(client.get("/report/", **environ).status_code)
    return seen


def test_no_table_cache_key_or_log_line_holds_the_client_address_or_user_agent(client, intake, every_log_line):
    seen = submit_everything(client)

    # the submissions did what they should: filed, refused, challenged and finally limited
    expected = [200, 302, 302, 400, 400, 400, 400, 400, 400, 429, 429]
    assert seen == dict.fromkeys(ADDRESSES, expected)
    assert Report.objects.count() == 2 * len(ADDRESSES)
    needles = {USER_AGENT, "NtdTraceProbe", PROXY, "10.9.8.7"}.union(*(spellings(a) for a in ADDRESSES))
    database, cache_and_broker, logs = database_text(), redis_content(), every_log_line()
    assert "example.com/a" in database and b"intake:count" in cache_and_broker and "INSERT INTO" in logs

    assert traces_in(database, needles) == set()
    assert traces_in(cache_and_broker, needles) == set()
    assert not any(ipaddress.ip_address(a).packed in cache_and_broker for a in ADDRESSES if ":" in a)
    assert traces_in(logs, needles) == set()


def test_the_spellings_cover_the_usual_forms():
    assert {"203.0.113.77", "cb00714d", "3405803853", "77.113.0.203.in-addr.arpa", "77.113.0.203",
            "::ffff:203.0.113.77", "::ffff:cb00:714d"} <= spellings("203.0.113.77")
    assert {"2001:db8::77", "2001:0db8:0000:0000:0000:0000:0000:0077", "20010db8000000000000000000000077",
            "2001:db8:0:0:0:0:0:77", "42540766411282592856903984951653826679"} <= spellings("2001:db8::77")
    assert "203.0.113.78" in spellings("::ffff:203.0.113.78")


@pytest.mark.parametrize("leak", ["203.0.113.77", "CB00714D", "2001:0DB8:0000:0000:0000:0000:0000:0077",
                                  "7.7.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"])
def test_the_search_finds_a_trace_wherever_it_is(leak):
    """The check itself can fail: a planted trace is found in a table and in a Redis value."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    key = f"ntd-trace-probe-{leak}"
    needles = spellings("203.0.113.77") | spellings("2001:db8::77")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE django_content_type SET model = %s WHERE id = (SELECT min(id) FROM "
                       "django_content_type)", [f"x{leak}x"])
    client.set(key, f"seen from {leak}", ex=60)
    try:
        assert traces_in(database_text(), needles)
        assert traces_in(redis_content(), needles)
    finally:
        client.delete(key)
