"""`manage.py export_audit_log [--since ISO] [--until ISO] --format csv|jsonl|pdf|bundle [--internal] [--output]`.

A run of the audit log by time: from --since (inclusive) until --until (exclusive); either may be left out.
A time without a zone is UTC; a date alone is midnight UTC at its start. Recorded as actor "system".
"""

from __future__ import annotations

from argparse import ArgumentTypeError
from datetime import UTC, datetime
from typing import Any

from django.core.management.base import CommandError

from ntd import exports
from ntd.management.commands.export_timeline import ExportCommand


def moment(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time: 2026-03-01 or 2026-03-01T12:00Z") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class Command(ExportCommand):
    help = "Export the audit log over a time range (CSV, JSON Lines, PDF or the hashed bundle), recorded in it."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", type=moment, help="from this moment (inclusive), ISO 8601")
        parser.add_argument("--until", type=moment, help="until this moment (exclusive), ISO 8601")
        super().add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            request = exports.ExportRequest(kind=exports.LOG, since=options["since"], until=options["until"],
                                            format=options["format"], name_analysts=options["internal"])
        except exports.ExportError as error:
            raise CommandError(str(error)) from None
        self.export(request, options["output"])
