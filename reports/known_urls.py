"""The list of known URLs: URLs already confirmed elsewhere (a partner hotline's list). A report of one of them
gets top priority and the case is flagged (`intake._file_urls` looks them up by `url_key`).

`import_known_urls()` takes a CSV (first column the URL, an optional header row naming it "url") and upserts
it set-wise on `url_key`, so a re-import changes nothing and two spellings of one URL are one entry. An entry
that is already on the list takes the source of the latest import and is active again: importing a URL is a
statement that it is confirmed. Lines that do not hold a reportable URL are returned with their line number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.utils import timezone

from ntd import audit
from reports.models import KnownURL
from reports.normalise import InvalidURL, NormalisedURL, normalise

MAX_SOURCE_LENGTH = KnownURL._meta.get_field("source").max_length or 200
CHUNK = 2000
# pg_advisory_xact_lock key: "ntdknown" read as a signed 64-bit integer. Imports run one at a time, so the
# counts of added and updated entries are exact even when two admins import overlapping lists at once.
_IMPORT_LOCK_ID = int.from_bytes(b"ntdknown", "big", signed=True)


@dataclass(frozen=True)
class ImportResult:
    added: int = 0
    updated: int = 0  # already listed, now with another source or active again
    unchanged: int = 0
    duplicates: int = 0  # lines naming a URL an earlier line of the same file named (in any spelling)
    invalid: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


def read_csv(rows: str | Iterable[str]) -> Iterator[tuple[int, str] | tuple[int, InvalidURL]]:
    """(line number, first cell) of each non-blank row, skipping a header row and `#` comments."""
    reader = csv.reader(io.StringIO(rows) if isinstance(rows, str) else rows)
    first, line = True, 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a NUL byte, an unterminated quote, a field too large
            yield line, InvalidURL(f"This line is not valid CSV ({exc}).", code="csv")
            line = reader.line_num + 1
            continue
        start, line = line, reader.line_num + 1
        cell = (row[0] if row else "").lstrip("\ufeff").strip()
        if first and cell.lower() in ("url", "urls"):
            first = False
            continue
        if cell and not cell.startswith("#"):
            first = False
            yield start, cell


def _parse(rows: str | Iterable[str]) -> tuple[dict[str, NormalisedURL], int, list[tuple[int, str]]]:
    urls: dict[str, NormalisedURL] = {}
    duplicates, invalid = 0, []
    for line, cell in read_csv(rows):
        if isinstance(cell, InvalidURL):
            invalid.append((line, cell.reason))
            continue
        try:
            url = normalise(cell)
        except InvalidURL as exc:
            invalid.append((line, exc.reason))
            continue
        if url.key in urls:
            duplicates += 1
        else:
            urls[url.key] = url
    return urls, duplicates, invalid


def _lock_imports() -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_IMPORT_LOCK_ID])
    # SQLite (`make run`): one writer at a time already.


def import_known_urls(rows: str | Iterable[str], *, source: str, actor: Any) -> ImportResult:
    """Add the URLs of a CSV to the known-URL list, set-wise; one audit event with the counts.

    `rows` is the CSV text, or an iterable of its lines (an open text file). `actor` is a user holding the
    add and change permissions of KnownURL, or "system" (the management command).
    """
    source = source.strip()
    if not source or len(source) > MAX_SOURCE_LENGTH:
        raise ValueError(f"The source is required, at most {MAX_SOURCE_LENGTH} characters.")
    if actor != "system" and not (actor.has_perm("reports.add_knownurl") and actor.has_perm("reports.change_knownurl")):
        raise PermissionDenied("Importing known URLs takes the add and change permissions of known URLs.")

    urls, duplicates, invalid = _parse(rows)
    added = updated = 0
    now = timezone.now()
    with transaction.atomic():
        _lock_imports()
        keys = list(urls)
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            listed = {key: (listed_source, active) for key, listed_source, active in
                      KnownURL.objects.filter(url_key__in=chunk).values_list("url_key", "source", "active")}
            write = [key for key in chunk if listed.get(key) != (source, True)]  # new, or listed otherwise
            changed = sum(1 for key in write if key in listed)
            updated += changed
            added += len(write) - changed
            KnownURL.objects.bulk_create(
                [KnownURL(url=urls[key].url, url_key=key, registrable_domain=urls[key].registrable_domain,
                          source=source, active=True, added_at=now,
                          added_by=actor if actor != "system" else None) for key in write],
                update_conflicts=True, unique_fields=["url_key"], update_fields=["source", "active"],
            )
        result = ImportResult(added=added, updated=updated, unchanged=len(urls) - added - updated,
                              duplicates=duplicates, invalid=invalid)
        audit.record(actor=actor, action=audit.Action.KNOWN_URLS_IMPORTED, target=("reports.knownurl", ""), data={
            "source": source, "added": result.added, "updated": result.updated, "unchanged": result.unchanged,
            "duplicates": result.duplicates, "invalid": len(result.invalid),
        })
    return result


@transaction.atomic
def deactivate_known_urls(ids: Iterable[int], *, actor: Any) -> int:
    """Take entries off the active list (a report of them is no longer escalated); one audit event."""
    if actor != "system" and not actor.has_perm("reports.change_knownurl"):
        raise PermissionDenied("Deactivating known URLs takes the change permission of known URLs.")
    changed = list(KnownURL.objects.select_for_update().filter(pk__in=list(ids), active=True)
                   .values_list("pk", flat=True))
    KnownURL.objects.filter(pk__in=changed).update(active=False)
    if changed:
        audit.record(actor=actor, action=audit.Action.KNOWN_URLS_DEACTIVATED, target=("reports.knownurl", ""),
                     data={"count": len(changed), "ids": sorted(changed)})
    return len(changed)
