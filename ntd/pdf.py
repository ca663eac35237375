"""Timelines as PDF: the auditor's timeline table (templates/ntd/_timeline_table.html), printed by WeasyPrint.

The page and the PDF share the table; `timeline_pdf.html` wraps it for print and `static/ntd/print.css` puts the
title (the case reference) and "page X of Y" on every page. WeasyPrint reads that one stylesheet from the static
files and nothing else: no network, no file outside the static folder.

A PDF is laid out whole in memory, so it is refused above `EXPORT_PDF_MAX_EVENTS` events (CSV has no limit).
Names: the PDF holds what the entries hold, and the entries name analysts only when the export asked for it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import cache
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string

from ntd.exports import ExportError
from ntd.timeline import TimelineEntry

if TYPE_CHECKING:
    from ntd.exports import ExportRequest

STYLESHEET = "ntd/print.css"
CHUNK_BYTES = 64 * 1024


class ExportTooLarge(ExportError):
    """The export has more events than a PDF can take; the message says to use CSV instead."""


def timeline_pdf_chunks(request: ExportRequest) -> Iterator[bytes]:
    """The export as a PDF, in chunks. Not a generator: a refusal (ExportTooLarge) or a rendering error is raised
    by this call, before any byte is sent, so a view can still answer with a message."""
    limit = settings.EXPORT_PDF_MAX_EVENTS
    count = request.count()
    if count > limit:
        raise too_large(count, limit)
    title, subtitle = heading(request)
    pdf = render_timeline_pdf(_at_most(request.entries(), limit), title=title, subtitle=subtitle,
                              note=provenance(request))
    return (pdf[i:i + CHUNK_BYTES] for i in range(0, len(pdf), CHUNK_BYTES))


def too_large(count: int, limit: int) -> ExportTooLarge:
    return ExportTooLarge(f"This timeline has {count:,} events; a PDF holds at most {limit:,}. "
                          "Use CSV (or JSON Lines, or the bundle) for the whole of it.")


def render_timeline_pdf(entries: Iterable[TimelineEntry], *, title: str, subtitle: str, note: str = "") -> bytes:
    """The entries as a paginated PDF with `title` and `subtitle` at the head of every page (`note`: a line under
    them, on the first page)."""
    from weasyprint import HTML

    rows = list(entries)
    html = render_to_string("ntd/timeline_pdf.html", {
        "title": title, "subtitle": subtitle, "note": note, "entries": rows,
        "first": rows[0] if rows else None, "last": rows[-1] if rows else None,
        "generated_at": dt.datetime.now(dt.UTC),
    })
    root = _static_root()
    fetcher = _static_files_only()(root)
    return HTML(string=html, base_url=root.as_uri() + "/", url_fetcher=fetcher).write_pdf()


def heading(request: ExportRequest) -> tuple[str, str]:
    """Title and subtitle for the export: the case reference, or the audit log and its time range."""
    if request.kind == "case":
        title = f"Timeline of {request.case.reference}"
    else:
        title = "Audit log"
    parts = []
    if request.since or request.until:
        parts.append(f"{_day(request.since) or 'start'} to {_day(request.until) or 'now'}")
    parts.append("Internal: names analysts" if request.name_analysts else "Analysts by pseudonym")
    return title, " · ".join(parts)


def provenance(request: ExportRequest) -> str:
    """Who exported it and where that is on the record (a pseudonym, unless the export names analysts)."""
    recorded = request.recorded
    if recorded is None:
        return ""
    return (f"Exported by {recorded.by}, recorded as audit event #{recorded.event_seq}; "
            f"covers the chain up to #{recorded.up_to}.")


def _day(moment: dt.datetime | None) -> str:
    if moment is None:
        return ""
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _at_most(entries: Iterable[TimelineEntry], limit: int) -> list[TimelineEntry]:
    """The entries, or ExportTooLarge if events were added past the limit since they were counted."""
    rows = list(islice(entries, limit + 1))
    if len(rows) > limit:
        raise too_large(len(rows), limit)
    return rows


@cache
def _static_root() -> Path:
    """The static folder that holds the print stylesheet (the source folder, or STATIC_ROOT once collected)."""
    found = finders.find(STYLESHEET)
    path = Path(found if isinstance(found, str) else Path(settings.STATIC_ROOT) / STYLESHEET)
    if not path.is_file():
        raise FileNotFoundError(f"the PDF stylesheet {STYLESHEET} is missing from the static files")
    return path.resolve().parents[len(Path(STYLESHEET).parts) - 1]


@cache
def _static_files_only() -> type:
    """WeasyPrint's fetcher, limited to files under the static folder (imported late: WeasyPrint loads Pango)."""
    from weasyprint.urls import URLFetcher

    class StaticFilesOnly(URLFetcher):  # type: ignore[misc]
        """Anything but a static file stops the rendering: the template asks for one stylesheet, so any other
        URL is a bug (or text that should have been escaped)."""

        def __init__(self, root: Path) -> None:
            super().__init__(allowed_protocols={"file"}, allow_redirects=False, fail_on_errors=True)
            self.root = root

        def fetch(self, url: str, headers: Any = None) -> Any:
            parts = urlsplit(url)
            path = Path(url2pathname(parts.path)).resolve()
            if parts.scheme != "file" or parts.netloc not in ("", "localhost") or not path.is_relative_to(self.root):
                raise ValueError(f"the PDF may read the static files only, not {url!r}")
            return super().fetch(url, headers)

    return StaticFilesOnly
