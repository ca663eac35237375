"""Intake: the only place reports are written and cases opened or joined.

Reports from every channel (public form, partner API, whitelisted e-mail) go through `_file_report()`,
which turns normalised URLs into cases set-wise: one multi-row INSERT ... ON CONFLICT per chunk against
the partial unique index on open cases, so concurrent reports of one URL meet in the database and never
make two open cases. The audit events are written in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from evidence.crypto import seal
from evidence.keys import keyring_from_settings
from ntd import audit
from ntd.bulk import COPY_FROM, insert_rows
from reports import selectors
from reports.models import Case, KnownURL, Priority, Queue, Report, ReportURL, new_case_reference
from reports.normalise import NormalisedURL
from reports.references import status_secret_digest
from reports.selectors import CaseOutcome
from takedown.models import Partner

REFERENCE_TRIES = 3


@dataclass(frozen=True)
class ReportedURL:
    """A URL as the reporter wrote it, and its normalised form."""

    as_reported: str
    url: NormalisedURL


@dataclass(frozen=True)
class ReportDetails:
    material_kind: str = ""
    encountered_via: str = ""
    encountered_at: datetime | None = None
    description: str = ""
    child_at_risk: bool = False
    content_hashes: list[dict[str, str]] = field(default_factory=list)
    attachment_refused: bool = False


@dataclass(frozen=True)
class Filed:
    report: Report
    outcomes: list[CaseOutcome]
    status_secret: str | None = None  # given to an identified public reporter once, stored only as a digest
    created: bool = True  # False when an idempotent retry found the report already filed


def contact_aad(report_reference: str) -> bytes:
    """The associated data that binds an encrypted reporter contact to its report."""
    return f"reports.report:{report_reference}:contact".encode()


def file_public_report(*, urls: Sequence[ReportedURL], details: ReportDetails, contact_email: str | None) -> Filed:
    """A report from the public web form. Anonymous unless an e-mail address is given for the acknowledgement."""
    priority = Priority.CHILD_AT_RISK if details.child_at_risk else Priority.PUBLIC

    @transaction.atomic
    def file() -> Filed:
        report = _new_report(Report.Channel.WEB, "public", None, details, len(urls))
        secret = None
        if contact_email:
            secret = secrets.token_urlsafe(12)
            report.contact_sealed = seal(contact_email.encode(), aad=contact_aad(report.reference),
                                         keyring=keyring_from_settings())
            report.status_secret_digest = status_secret_digest(secret)
        report.save(force_insert=True)
        outcomes = _file_urls(report, urls, priority, details.child_at_risk, actor="system")
        if secret is not None:
            from reports.tasks import send_acknowledgement_task

            report_id, code = report.pk, secret
            transaction.on_commit(lambda: send_acknowledgement_task.delay(report_id, code))
        return Filed(report, outcomes, secret)

    return _retrying_reference_clashes(file)


def _retrying_reference_clashes(file: Callable[[], Filed]) -> Filed:
    """References are 40 random bits: on the rare clash with an existing one, file again with fresh ones."""
    for attempt in range(REFERENCE_TRIES):
        try:
            return file()
        except IntegrityError as exc:
            text = str(exc)
            clash = "reference" in text and "partner_reference" not in text
            if not clash or attempt + 1 == REFERENCE_TRIES:
                raise
    raise AssertionError("unreachable")


def partner_request_digest(payload: dict[str, Any]) -> str:
    import json

    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    # JSON may spell a lone surrogate ("\ud800") that no field keeps but an unknown key can carry: hash it as
    # it came rather than fail. Every other string encodes exactly as with plain UTF-8, so digests are unchanged.
    return hashlib.sha256(body.encode("utf-8", "surrogatepass")).hexdigest()


class ReferenceConflict(Exception):
    """The partner re-used its own reference for a different request."""


def file_partner_report(
    *, partner: Partner, urls: Sequence[ReportedURL], details: ReportDetails, channel: str,
    partner_reference: str = "", request_digest: str = "",
) -> Filed:
    """A report from a partner (API or whitelisted e-mail). A retry with the same reference and body is a no-op."""
    if partner_reference:
        existing = Report.objects.filter(partner=partner, partner_reference=partner_reference).first()
        if existing is not None:
            return _existing(existing, request_digest)
    priority = Priority.CHILD_AT_RISK if details.child_at_risk else Priority.PARTNER

    @transaction.atomic
    def file() -> Filed:
        report = _new_report(channel, partner.kind, partner, details, len(urls))
        report.partner_reference = partner_reference
        report.request_digest = request_digest
        report.save(force_insert=True)
        filed = Filed(report, _file_urls(report, urls, priority, details.child_at_risk, actor=partner))
        if partner.runs_ntd and partner_reference:
            # A referral from a hotline that runs ntd: tell its ntd that we have it (takedown.exchange).
            from takedown.exchange import on_partner_report_filed

            on_partner_report_filed(report)
        return filed

    try:
        return _retrying_reference_clashes(file)
    except IntegrityError:
        # Two retries of one request racing: the unique (partner, reference) constraint let one through.
        existing = Report.objects.filter(partner=partner, partner_reference=partner_reference).first()
        if partner_reference and existing is not None:
            return _existing(existing, request_digest)
        raise


def _existing(report: Report, request_digest: str) -> Filed:
    if request_digest and report.request_digest and not hmac.compare_digest(report.request_digest, request_digest):
        raise ReferenceConflict(report.partner_reference)
    return Filed(report, selectors.report_outcomes(report), created=False)


def _new_report(channel: str, source_kind: str, partner: Partner | None, details: ReportDetails,
                url_count: int) -> Report:
    return Report(
        channel=channel,
        source_kind=source_kind,
        partner=partner,
        material_kind=details.material_kind,
        encountered_via=details.encountered_via,
        encountered_at=details.encountered_at,
        description=details.description,
        child_at_risk=details.child_at_risk,
        content_hashes=details.content_hashes,
        attachment_refused=details.attachment_refused,
        url_count=url_count,
    )


def _file_urls(report: Report, urls: Sequence[ReportedURL], priority: int, child_at_risk: bool,
               *, actor: Any) -> list[CaseOutcome]:
    """Open or join one case per distinct URL, link the report to them, and audit it all."""
    distinct: dict[str, tuple[int, ReportedURL]] = {}
    for position, item in enumerate(urls):
        distinct.setdefault(item.url.key, (position, item))
    cases = _upsert_cases([item.url for _, item in distinct.values()], priority, child_at_risk, timezone.now())

    outcomes, entries, rows = [], [], []
    for position, item in enumerate(urls):
        case_id, reference, opened, known = cases[item.url.key]
        first = distinct[item.url.key][0] == position
        outcome = CaseOutcome(position, item.as_reported[:2048], case_id, reference, opened and first,
                              duplicate=not first)
        outcomes.append(outcome)
        rows.append((report.pk, case_id, position, outcome.as_reported, outcome.opened))
        if first:
            entries.append(audit.Entry(
                actor, audit.Action.CASE_CREATED if opened else audit.Action.CASE_REPORT_JOINED,
                target=("reports.case", case_id), case_id=case_id,
                data={"case": reference, "report": report.reference, "known_url": known},
            ))
    insert_rows(ReportURL._meta.db_table, ("report_id", "case_id", "position", "as_reported", "opened_case"), rows)
    entries.insert(0, audit.Entry(
        actor, audit.Action.REPORT_RECEIVED, target=report,
        data={"reference": report.reference, "channel": report.channel, "source": report.source_kind,
              "urls": len(urls), "cases": len(distinct), "child_at_risk": child_at_risk},
    ))
    audit.record_many(entries)
    _trace_after_commit([outcome.case_id for outcome in outcomes if outcome.opened])
    return outcomes


def _trace_after_commit(case_ids: list[int], chunk: int = 500) -> None:
    """New cases get their hosting trace from a task once the report is committed (one task per chunk)."""
    if not case_ids or not settings.TRACE_NEW_CASES:
        return
    from reports.tasks import trace_cases_task

    for start in range(0, len(case_ids), chunk):
        ids = case_ids[start:start + chunk]
        transaction.on_commit(lambda ids=ids: trace_cases_task.delay(ids))


def _upsert_cases(urls: list[NormalisedURL], priority: int, child_at_risk: bool,
                  now: datetime) -> dict[str, tuple[int, str, bool, bool]]:
    """Open or join the case of each URL in one statement; returns key → (id, reference, opened, known URL).

    INSERT ... ON CONFLICT against the partial unique index on open cases: concurrent reports of one URL meet
    in the index, never in a check-then-insert. The same statement flags known URLs (top priority) and links a
    new case to the closed case of the same URL (re-appearance). Rows go in url_key order, so two reports that
    share URLs lock their cases in the same order and cannot deadlock. A large batch is first COPYed into a
    temporary table on PostgreSQL; a small one is inline VALUES (and that is all SQLite needs).
    """
    rows = sorted(((new_case_reference(), u.url, u.key, u.host, u.registrable_domain) for u in urls),
                  key=lambda row: row[2])
    qn = connection.ops.quote_name
    case, known = qn(Case._meta.db_table), qn(KnownURL._meta.db_table)
    queue_id = Queue.objects.default_id()
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(rows) >= COPY_FROM:
            cursor.execute("CREATE TEMP TABLE IF NOT EXISTS ntd_intake_batch (column1 text, column2 text, "
                           "column3 text, column4 text, column5 text) ON COMMIT DELETE ROWS")
            cursor.execute("TRUNCATE ntd_intake_batch")
            insert_rows("ntd_intake_batch", ("column1", "column2", "column3", "column4", "column5"), rows)
            source, row_params = "ntd_intake_batch", []
        else:
            source = f"(VALUES {', '.join(['(%s, %s, %s, %s, %s)'] * len(rows))})"
            row_params = [value for row in rows for value in row]
        # Formatted in: quoted table names and constants only; every value is a parameter.
        cursor.execute(
            f"INSERT INTO {case} (reference, url, url_key, host, registrable_domain, status, priority, "  # noqa: S608
            f"child_at_risk, police_referral, known_url, report_count, first_reported_at, last_reported_at, "
            f"previous_case_id, queue_id) "
            f"SELECT v.column1, v.column2, v.column3, v.column4, v.column5, %s, "
            f"CASE WHEN k.id IS NOT NULL AND %s < {int(Priority.KNOWN_URL)} THEN {int(Priority.KNOWN_URL)} "
            f"ELSE %s END, %s, %s, k.id IS NOT NULL, 1, %s, %s, "
            f"(SELECT old.id FROM {case} old WHERE old.url_key = v.column3 AND old.closed_at IS NOT NULL "
            f"ORDER BY old.closed_at DESC LIMIT 1), %s "
            f"FROM {source} v LEFT JOIN {known} k ON k.url_key = v.column3 AND k.active "
            f"WHERE true ORDER BY v.column3 "
            f"ON CONFLICT (url_key) WHERE closed_at IS NULL DO UPDATE SET "
            f"report_count = {case}.report_count + 1, "
            f"last_reported_at = excluded.last_reported_at, "
            f"priority = CASE WHEN excluded.priority > {case}.priority THEN excluded.priority "
            f"ELSE {case}.priority END, "
            f"child_at_risk = ({case}.child_at_risk OR excluded.child_at_risk), "
            f"police_referral = ({case}.police_referral OR excluded.police_referral), "
            f"known_url = ({case}.known_url OR excluded.known_url) "
            f"RETURNING id, reference, url_key, report_count, known_url",
            [Case.Status.RECEIVED.value, priority, priority, child_at_risk, child_at_risk, now, now, queue_id,
             *row_params],
        )
        return {key: (case_id, reference, count == 1, bool(is_known))
                for case_id, reference, key, count, is_known in cursor.fetchall()}


@transaction.atomic
def mark_acknowledged(report_id: int) -> bool:
    """Record that the acknowledgement went out; False if it already had (a task may run twice)."""
    updated = Report.objects.filter(pk=report_id, acknowledged_at__isnull=True).update(acknowledged_at=timezone.now())
    if updated:
        audit.record(actor="system", action=audit.Action.REPORT_ACKNOWLEDGED, target=("reports.report", report_id))
    return bool(updated)
