"""`manage.py import_known_urls FILE --source NAME`: add a CSV of confirmed URLs to the known-URL list."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from reports.known_urls import import_known_urls


class Command(BaseCommand):
    help = ("Import a CSV of URLs already confirmed elsewhere (first column the URL, an optional header row). "
            "Re-importing changes nothing; invalid lines are listed on standard error.")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("file", help="the CSV file (UTF-8), or - for standard input")
        parser.add_argument("--source", required=True, help="where the list comes from, e.g. the hotline's name")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["file"] == "-":
                result = import_known_urls(sys.stdin, source=options["source"], actor="system")
            else:
                with open(options["file"], encoding="utf-8-sig", newline="") as rows:
                    result = import_known_urls(rows, source=options["source"], actor="system")
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise CommandError(str(exc)) from None
        for line, reason in result.invalid:
            self.stderr.write(f"line {line}: {reason}")
        self.stdout.write(
            f"{result.added} added, {result.updated} updated, {result.unchanged} unchanged, "
            f"{result.duplicates} duplicate lines, {len(result.invalid)} invalid lines"
        )
