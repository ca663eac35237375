"""`manage.py ingest_email < message.eml`: the mail server's pipe into the e-mail intake.

Exit status: 0 and the report reference on standard output when the report was filed (or had been, for a
re-delivered message); when refused, one line on standard error and a status per reason (see
`email_intake.Reason`: 65 no URLs, 67 unknown sender, 73 too big, 76 Message-ID reused, 77 not authenticated);
75 (EX_TEMPFAIL) when the database, the cache or DNS did not answer, so that the mail server tries again.
"""

from __future__ import annotations

import sys
from typing import Any, BinaryIO

import redis.exceptions
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import InterfaceError, OperationalError

from reports import email_intake

CHUNK = 64 * 1024


def read_limited(stream: BinaryIO, limit: int) -> bytes:
    """Up to `limit` + 1 bytes of `stream`; the rest is read and dropped, so the writer never sees a broken pipe."""
    kept, size = [], 0
    while chunk := stream.read(CHUNK):
        if size <= limit:
            kept.append(chunk[: limit + 1 - size])
        size += len(chunk)
    return b"".join(kept)


class Command(BaseCommand):
    help = "File a partner report from one e-mail message read on standard input (for a mail server's pipe)."
    # A pipe runs this for every message: no system checks on each run, and no check can stop the intake.
    requires_system_checks: list[str] = []
    # For call_command() only: the input stream, and a DNS lookup that stands in for DNS in tests.
    stealth_options = ("stdin", "dnsfunc")

    def handle(self, *args: Any, **options: Any) -> None:
        stream = options.get("stdin") or sys.stdin.buffer
        raw = read_limited(getattr(stream, "buffer", stream), settings.EMAIL_INTAKE_MAX_BYTES)
        try:
            filed = email_intake.ingest(raw, dnsfunc=options.get("dnsfunc"))
        except email_intake.Refused as refusal:
            raise CommandError(f"refused ({refusal.reason}): {refusal.detail}",
                               returncode=refusal.reason.exit_status) from None
        except email_intake.TemporaryFailure as failure:
            raise CommandError(f"try again later: {failure}", returncode=email_intake.EX_TEMPFAIL) from None
        except (OperationalError, InterfaceError, redis.exceptions.ConnectionError,
                redis.exceptions.TimeoutError) as exc:
            raise CommandError(f"try again later: {type(exc).__name__}",
                               returncode=email_intake.EX_TEMPFAIL) from None
        self.stdout.write(filed.report.reference)
