"""Exports of a case's timeline or a run of the audit log: CSV, JSON Lines, PDF and the hashed bundle.

Every export reads `ntd.timeline` (the one selector the pages read too) and streams: rows are turned into
bytes a chunk at a time, the database is read with `iterator(chunk_size=...)`, and the bundle's ZIP is
written as it goes, each file hashed while it streams. Memory stays flat however long the export.

No export leaves unrecorded: `record_export()` checks the actor may make it, writes its audit event and
returns the request pinned to the events before that event; `export_chunks()` refuses a request that was not
recorded. Analysts are named by pseudonym unless the export is internal (`name_analysts`, which needs
`ntd.reveal_analyst_identity`); the choice is in the audit event, in the file name and in the bundle.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.template.loader import render_to_string

from ntd import audit, bundle_verify
from ntd.audit import ActorType, AuditEvent
from ntd.timeline import CHUNK, COLUMNS, Describer, TimelineEntry, case_events, log_timeline

CASE, LOG = "case", "log"
KINDS = (CASE, LOG)
FORMATS = ("csv", "jsonl", "pdf", "bundle")
CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "jsonl": "application/jsonl; charset=utf-8",
                 "pdf": "application/pdf", "bundle": "application/zip"}
EXTENSIONS = {"csv": "csv", "jsonl": "jsonl", "pdf": "pdf", "bundle": "zip"}
EXPORT, REVEAL = "ntd.export_audit_log", "ntd.reveal_analyst_identity"
# The exports' columns are ntd.timeline.COLUMNS: TimelineEntry.row()'s keys and .cells()' order.
CHUNK_BYTES = 64 * 1024
CSV_ROWS_PER_WRITE = 200  # rows handed to csv.writer at once; the buffer is flushed when it holds CHUNK_BYTES
# A spreadsheet runs a cell that starts with one of these as a formula (CSV injection): such cells get a "'".
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_FORMULA = frozenset(FORMULA_STARTS)


class ExportError(ValueError):
    """An export that cannot be made as asked (a PDF too long, a range the wrong way round): say why, in words."""


@dataclass(frozen=True)
class Recorded:
    """How an export is on the record: its audit event, and the chain head just before it (the last event the
    export covers, so every pass over the events, in every file, reads the same ones)."""

    event_seq: int
    event_hash: str
    up_to: int
    head_hash: str
    events: int
    by: str  # the exporter as the export names them: a pseudonym, "name (pseudonym)" internally, or "ntd"
    at: datetime


@dataclass(frozen=True, kw_only=True)
class ExportRequest:
    kind: str  # CASE or LOG
    format: str
    name_analysts: bool = False  # internal: name analysts (ntd.reveal_analyst_identity); else pseudonyms
    case_id: int | None = None  # for CASE
    since: datetime | None = None  # for LOG: from this moment, inclusive; None from the first event
    until: datetime | None = None  # for LOG: up to this moment, exclusive; None up to now
    recorded: Recorded | None = None  # set by record_export()

    def __post_init__(self) -> None:
        if self.kind not in KINDS or self.format not in FORMATS:
            raise ExportError(f"no export of kind {self.kind!r} in format {self.format!r}")
        if (self.kind == CASE) != (self.case_id is not None) or (self.kind == CASE and (self.since or self.until)):
            raise ExportError("a case export names a case and no time range; an audit log export, no case")
        for moment in (self.since, self.until):
            if moment is not None and moment.tzinfo is None:
                raise ExportError("the time range needs time zones (UTC)")
        if self.since and self.until and self.since >= self.until:
            raise ExportError("The start of the range is not before its end.")

    @cached_property
    def case(self) -> Any:
        from reports.models import Case

        return Case.objects.get(pk=self.case_id)

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    def filename(self) -> str:
        if self.kind == CASE:
            stem = f"{self.case.reference}-timeline"
        else:
            start, end = _stamp(self.since) or "start", _stamp(self.until) or "now"
            stem = f"audit-log-{start}-{end}"
        stem += "-internal" if self.name_analysts else ""
        return f"{stem}{'-bundle' if self.format == 'bundle' else ''}.{EXTENSIONS[self.format]}"

    def about(self) -> dict[str, Any]:
        """What the export covers, for its audit event and the bundle's manifest."""
        if self.kind == CASE:
            return {"case": self.case.reference}
        return {"since": _iso(self.since), "until": _iso(self.until)}

    def events(self) -> QuerySet[AuditEvent]:
        """The audit events this export covers, in chain order."""
        if self.kind == CASE:
            events = case_events(self.case)
        else:
            events = AuditEvent.objects.all()
            if self.since is not None:
                events = events.filter(at__gte=self.since)
            if self.until is not None:
                events = events.filter(at__lt=self.until)
        if self.recorded is not None:
            events = events.filter(seq__lte=self.recorded.up_to)
        return events.order_by("seq")

    def entries(self) -> Iterator[TimelineEntry]:
        return log_timeline(self.events(), name_analysts=self.name_analysts)

    def count(self) -> int:
        return self.events().count()

    def params(self) -> dict[str, Any]:
        """JSON-safe, for an ExportJob's `params`; `from_params()` reads it back."""
        params = asdict(self)
        params["since"], params["until"] = _iso(self.since), _iso(self.until)
        if self.recorded is not None:
            params["recorded"]["at"] = _iso(self.recorded.at)
        return params

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ExportRequest:
        values = dict(params)
        for name in ("since", "until"):
            values[name] = datetime.fromisoformat(values[name]) if values.get(name) else None
        if values.get("recorded"):
            values["recorded"] = Recorded(**{**values["recorded"],
                                             "at": datetime.fromisoformat(values["recorded"]["at"])})
        return cls(**values)


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def _stamp(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") if moment is not None else ""


# --- who may export, and the record of it -------------------------------------------------------------


def ensure_may_export(actor: Any, request: ExportRequest) -> None:
    """The permission to export, names only with the permission to see them, and the case readable by the actor.
    "system" (a management command run by the operator) may export anything."""
    if actor == "system":
        return
    if not actor.has_perm(EXPORT):
        raise PermissionDenied("You may not export the audit log or case timelines.")
    if request.name_analysts and not actor.has_perm(REVEAL):
        raise PermissionDenied("Only someone who may see who is behind a pseudonym can export analysts' names.")
    if request.kind == CASE:
        from reports.selectors import case_for

        case_for(actor, request.case.reference)  # the same 404 for a case the actor may not read


def ensure_exportable(request: ExportRequest, events: int) -> None:
    if request.format == "pdf" and events > settings.EXPORT_PDF_MAX_EVENTS:
        raise ExportError(f"A PDF holds at most {settings.EXPORT_PDF_MAX_EVENTS:,} events and this export has "
                          f"{events:,}. Choose CSV, JSON Lines or the bundle.")


@transaction.atomic
def record_export(request: ExportRequest, *, actor: Any) -> ExportRequest:
    """Check the actor may make this export, write its audit event, and return the request pinned to the events
    before that event. The event says what was exported, in which format, with names or pseudonyms, and how many
    events; for a case, it is in the case's timeline."""
    ensure_may_export(actor, request)
    up_to, head_hash = audit.head()
    events = request.events().filter(seq__lte=up_to).count()
    ensure_exportable(request, events)
    names = "internal" if request.name_analysts else "pseudonyms"
    event = audit.record(
        actor=actor,
        action=audit.Action.TIMELINE_EXPORTED if request.kind == CASE else audit.Action.AUDIT_LOG_EXPORTED,
        target=request.case if request.kind == CASE else None,
        case_id=request.case_id,
        data={"format": request.format, "names": names, **request.about(), "events": events, "up_to": up_to},
    )
    by = "ntd" if actor == "system" else Describer(name_analysts=request.name_analysts).actor(
        ActorType.USER, str(actor.pk))
    return replace(request, recorded=Recorded(event_seq=event.seq, event_hash=event.hash, up_to=up_to,
                                              head_hash=head_hash, events=events, by=by, at=event.at))


def export_chunks(request: ExportRequest) -> Iterator[bytes]:
    """The export's bytes, a chunk at a time, in its format."""
    if request.recorded is None:
        raise ValueError("record_export() first: no export leaves unrecorded")
    if request.format == "csv":
        return csv_chunks(request.entries())
    if request.format == "jsonl":
        return jsonl_chunks(request.entries())
    if request.format == "bundle":
        return bundle_chunks(request)
    from ntd.pdf import timeline_pdf_chunks  # written with WeasyPrint, imported only when a PDF is asked for

    return timeline_pdf_chunks(request)


# --- CSV and JSON Lines -------------------------------------------------------------------------------


def csv_chunks(entries: Iterable[TimelineEntry]) -> Iterator[bytes]:
    """UTF-8 with a byte-order mark (so spreadsheets read it as UTF-8), CRLF line ends (RFC 4180), a header row,
    and every cell a spreadsheet would run as a formula prefixed with a single quote.

    One csv.writer writes into one text buffer, a few hundred rows at a time, and the buffer goes out as a chunk
    whenever it holds CHUNK_BYTES: no per-row strings or dicts to build and join."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")
    writer.writerow(COLUMNS)
    for batch in itertools.batched(entries, CSV_ROWS_PER_WRITE):
        writer.writerows([_defused(entry.cells()) for entry in batch])
        if buffer.tell() >= CHUNK_BYTES:
            yield buffer.getvalue().encode()
            buffer.seek(0)
            buffer.truncate()
    if buffer.tell():
        yield buffer.getvalue().encode()


def _defused(cells: tuple[Any, ...]) -> list[Any]:
    """The cells, each one that starts like a formula prefixed with a single quote (see FORMULA_STARTS)."""
    return [("'" + value) if type(value) is str and value[:1] in _FORMULA else value for value in cells]


# json.dumps() builds an encoder per call when given options; these are built once (the same output).
_JSON_LINE = json.JSONEncoder(ensure_ascii=False).encode
_JSON_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def jsonl_chunks(entries: Iterable[TimelineEntry]) -> Iterator[bytes]:
    """One JSON object per line, UTF-8; the same columns as the CSV, no escaping (JSON needs none)."""
    return _batched(_JSON_LINE(entry.row()) + "\n" for entry in entries)


def events_chunks(events: QuerySet[AuditEvent], counted: list[int] | None = None) -> Iterator[bytes]:
    """Each event's canonical fields exactly as hashed, with its prev_hash and hash: what verify.py rehashes.
    Read as rows, not models: this pass needs no words and no names."""
    def lines() -> Iterator[str]:
        for *row, prev_hash, event_hash in events.values_list(*_CHAIN_COLUMNS).iterator(chunk_size=CHUNK):
            if counted is not None:
                counted[0] += 1
            yield _JSON_COMPACT({"fields": audit.canonical_fields(*row), "prev_hash": prev_hash,
                                 "hash": event_hash}) + "\n"

    return _batched(lines())


_CHAIN_COLUMNS = ("seq", "at", "actor_type", "actor_id", "action", "target_type", "target_id", "case_id", "data",
                  "prev_hash", "hash")


def _batched(texts: Iterable[str]) -> Iterator[bytes]:
    parts: list[str] = []
    size = 0
    for text in texts:
        parts.append(text)
        size += len(text)
        if size >= CHUNK_BYTES:
            yield "".join(parts).encode()
            parts, size = [], 0
    if parts:
        yield "".join(parts).encode()


# --- the hashed bundle --------------------------------------------------------------------------------

BUNDLE_FORMAT = "ntd-export-bundle/1"


class _Sink:
    """What zipfile writes to: it cannot seek, so zipfile streams (sizes go in data descriptors); the generator
    hands the bytes on as they come."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        data = b"".join(self.parts)
        self.parts, self.size = [], 0
        return data


def bundle_chunks(request: ExportRequest) -> Iterator[bytes]:
    """A ZIP: timeline.jsonl, timeline.csv, events.jsonl, checkpoint.json, verify.py, README.txt and, last,
    manifest.json with the SHA-256 and size of each of the others, the chain head and who exported what."""
    recorded = request.recorded
    if recorded is None:
        raise ValueError("record_export() first: no export leaves unrecorded")
    sink, files, counted = _Sink(), [], [0]
    when = recorded.at.astimezone(UTC).timetuple()[:6]
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "export": {"kind": request.kind, **request.about(), "names": "internal" if request.name_analysts
                   else "pseudonyms", "by": recorded.by, "at": _iso(recorded.at), "audit_event": recorded.event_seq},
        "chain": {"hash_version": audit.HASH_VERSION, "genesis_hash": audit.GENESIS_HASH,
                  "head_seq": recorded.up_to, "head_hash": recorded.head_hash},
        "files": files,
    }
    members: list[tuple[str, Any]] = [
        ("timeline.jsonl", lambda: jsonl_chunks(request.entries())),
        ("timeline.csv", lambda: csv_chunks(request.entries())),
        ("events.jsonl", lambda: events_chunks(request.events(), counted)),
        ("checkpoint.json", lambda: [_json(_checkpoint(recorded))]),
        ("verify.py", lambda: [Path(bundle_verify.__file__).read_bytes()]),
        ("README.txt", lambda: [render_to_string("ntd/bundle_readme.txt", {"manifest": manifest}).encode()]),
    ]
    with zipfile.ZipFile(sink, "w") as archive:
        for name, chunks in members:
            yield from _member(archive, sink, name, chunks(), when, files)
            manifest["export"]["events"] = counted[0]  # final once events.jsonl is written (README says it)
        yield from _member(archive, sink, "manifest.json", [_json(manifest)], when, None)
    yield sink.take()


def _member(archive: zipfile.ZipFile, sink: _Sink, name: str, chunks: Iterable[bytes], when: Any,
            files: list[dict[str, Any]] | None) -> Iterator[bytes]:
    """Write one file into the ZIP, hashing it as it streams; list it in `files` (the manifest's)."""
    info = zipfile.ZipInfo(name, date_time=when)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.compress_level = 1  # fast: the hashes and ids that fill these files barely compress anyway (3.13+)
    info.external_attr = 0o644 << 16
    digest, size = hashlib.sha256(), 0
    with archive.open(info, "w", force_zip64=True) as member:  # sizes unknown up front: allow > 4 GiB
        for chunk in chunks:
            digest.update(chunk)
            size += len(chunk)
            member.write(chunk)
            if sink.size >= CHUNK_BYTES:
                yield sink.take()
    if files is not None:
        files.append({"name": name, "sha256": digest.hexdigest(), "size": size})
    if sink.size:
        yield sink.take()


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, indent=2) + "\n").encode()


def _checkpoint(recorded: Recorded) -> dict[str, Any]:
    """The latest signed checkpoint at or before the export's head, and the head: anchors outside the bundle."""
    signed = [entry for entry in audit.read_checkpoints()
              if audit.is_signed_checkpoint(entry) and entry["seq"] <= recorded.up_to]
    return {
        "head": {"seq": recorded.up_to, "hash": recorded.head_hash},
        "checkpoint": max(signed, key=lambda entry: entry["seq"], default=None),
        "export_event": {"seq": recorded.event_seq, "hash": recorded.event_hash},
    }
