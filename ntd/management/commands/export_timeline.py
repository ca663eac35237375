"""`manage.py export_timeline C-XXXX-XXXX --format csv|jsonl|pdf|bundle [--internal] [--output FILE|-]`.

The export is recorded in the audit log with the actor "system": whoever runs manage.py holds the server, and
the log names no person for it. Without --internal analysts appear by pseudonym.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ntd import exports


class ExportCommand(BaseCommand):
    """What both export commands share: the format, names or pseudonyms, the output, the record."""

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--format", required=True, choices=exports.FORMATS)
        parser.add_argument("--internal", action="store_true",
                            help="name analysts (for the deployment's own auditors only); default: pseudonyms")
        parser.add_argument("--output", help="the file to write, or - for standard output; default: the export's "
                                             "own file name, in the current folder")

    def export(self, request: exports.ExportRequest, output: str | None) -> None:
        try:
            pinned = exports.record_export(request, actor="system")
        except exports.ExportError as error:
            raise CommandError(str(error)) from None
        recorded = pinned.recorded
        assert recorded is not None
        if output == "-":
            size = sum(sys.stdout.buffer.write(chunk) for chunk in exports.export_chunks(pinned))
            sys.stdout.buffer.flush()
            where, report = "standard output", self.stderr
        else:
            path = Path(output or pinned.filename())
            size = _write(path, exports.export_chunks(pinned))
            where, report = str(path), self.stdout
        report.write(f"Wrote {size:,} bytes to {where}: {recorded.events:,} events "
                     f"({'analysts named' if pinned.name_analysts else 'pseudonyms'}), "
                     f"recorded as audit event #{recorded.event_seq}.")


def _write(path: Path, chunks: Any) -> int:
    """Into a .part file renamed when complete: a failed export leaves no file that looks whole."""
    partial = path.with_name(path.name + ".part")
    size = 0
    try:
        with partial.open("wb") as fh:
            for chunk in chunks:
                size += fh.write(chunk)
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return size


class Command(ExportCommand):
    help = "Export one case's timeline (CSV, JSON Lines, PDF or the hashed bundle), recorded in the audit log."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("reference", help="the case reference, C-XXXX-XXXX")
        super().add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        from reports.models import Case
        from reports.references import clean_reference

        reference = clean_reference(options["reference"])
        found = Case.objects.filter(reference=reference) if "\x00" not in reference else Case.objects.none()
        case_id = found.values_list("pk", flat=True).first()
        if case_id is None:
            raise CommandError(f"No case {reference!r}.")
        request = exports.ExportRequest(kind=exports.CASE, case_id=case_id, format=options["format"],
                                        name_analysts=options["internal"])
        self.export(request, options["output"])
