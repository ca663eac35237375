"""Intake: the only place reports and cases are written.

Reports from every channel (public form, partner API, whitelisted e-mail) go through `_file_report()`,
which turns normalised URLs into cases set-wise: one multi-row INSERT ... ON CONFLICT per chunk against
the partial unique index on open cases, so concurrent reports of one URL meet in the database and never
make two open cases. The audit events are written in the same transaction.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from evidence.crypto import seal
from evidence.keys import keyring_from_settings
from ntd import audit
from reports import selectors
from reports.models import Case, KnownURL, Priority, Report, ReportURL, new_case_reference
from reports.normalise import NormalisedURL
from reports.references import status_secret_digest
from reports.selectors import CaseOutcome
from takedown.models import Partner

UPSERT_CHUNK = 1000


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
    with transaction.atomic():
        report = _new_report(Report.Channel.WEB, "public", None, details, len(urls))
        secret = None
        if contact_email:
            secret = secrets.token_urlsafe(12)
            report.contact_sealed = seal(contact_email.encode(), aad=contact_aad(report.reference),
                                         keyring=keyring_from_settings())
            report.status_secret_digest = status_secret_digest(secret)
        report.save(force_insert=True)
        outcomes = _file_urls(report, urls, priority, details.child_at_risk, actor="system")
        if contact_email:
            from reports.tasks import send_acknowledgement_task

            report_id = report.pk
            transaction.on_commit(lambda: send_acknowledgement_task.delay(report_id, secret))
    return Filed(report, outcomes, secret)


def partner_request_digest(payload: dict[str, Any]) -> str:
    import json

    body = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(body.encode()).hexdigest()


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
    try:
        with transaction.atomic():
            report = _new_report(channel, partner.kind, partner, details, len(urls))
            report.partner_reference = partner_reference
            report.request_digest = request_digest
            report.save(force_insert=True)
            outcomes = _file_urls(report, urls, priority, details.child_at_risk, actor=partner)
    except Exception as exc:
        # Two retries of one request racing: the unique (partner, reference) constraint let one through.
        from django.db import IntegrityError

        if isinstance(exc, IntegrityError) and partner_reference:
            existing = Report.objects.filter(partner=partner, partner_reference=partner_reference).first()
            if existing is not None:
                return _existing(existing, request_digest)
        raise
    return Filed(report, outcomes)


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
    known = set(
        KnownURL.objects.filter(url_key__in=list(distinct), active=True).values_list("url_key", flat=True)
    )
    now = timezone.now()
    cases: dict[str, tuple[int, str, bool]] = {}
    items = list(distinct.values())
    for start in range(0, len(items), UPSERT_CHUNK):
        chunk = items[start:start + UPSERT_CHUNK]
        cases.update(_upsert_cases(chunk, known, priority, child_at_risk, now))

    opened_ids = [case_id for case_id, _, opened in cases.values() if opened]
    if opened_ids:
        _link_reappearances(opened_ids)

    outcomes, entries = [], []
    for position, item in sorted(distinct.values(), key=lambda pair: pair[0]):
        case_id, reference, opened = cases[item.url.key]
        outcome = CaseOutcome(position, item.as_reported[:2048], case_id, reference, opened)
        outcomes.append(outcome)
        entries.append(audit.Entry(
            actor, audit.Action.CASE_CREATED if opened else audit.Action.CASE_REPORT_JOINED,
            target=("reports.case", case_id), case_id=case_id,
            data={"case": reference, "report": report.reference, "known_url": item.url.key in known},
        ))
    ReportURL.objects.bulk_create(
        [ReportURL(report=report, case_id=o.case_id, position=o.position, as_reported=o.as_reported,
                   opened_case=o.opened) for o in outcomes],
        batch_size=2000,
    )
    entries.insert(0, audit.Entry(
        actor, audit.Action.REPORT_RECEIVED, target=report,
        data={"reference": report.reference, "channel": report.channel, "source": report.source_kind,
              "urls": len(urls), "cases": len(outcomes), "child_at_risk": child_at_risk},
    ))
    audit.record_many(entries)
    return outcomes


def _upsert_cases(chunk: list[tuple[int, ReportedURL]], known: set[str], priority: int, child_at_risk: bool,
                  now: datetime) -> dict[str, tuple[int, str, bool]]:
    """INSERT ... ON CONFLICT against the one-open-case-per-URL index; returns key → (id, reference, opened)."""
    table = Case._meta.db_table
    columns = ("reference", "url", "url_key", "host", "registrable_domain", "status", "priority", "child_at_risk",
               "police_referral", "known_url", "report_count", "first_reported_at", "last_reported_at")
    values: list[Any] = []
    for _, item in chunk:
        is_known = item.url.key in known
        row_priority = max(priority, Priority.KNOWN_URL) if is_known else priority
        values += [new_case_reference(), item.url.url, item.url.key, item.url.host, item.url.registrable_domain,
                   Case.Status.RECEIVED, row_priority, child_at_risk, child_at_risk, is_known, 1, now, now]
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    t = connection.ops.quote_name(table)
    # Only the table name (quoted by the backend) and fixed column names are formatted in; values are parameters.
    sql = (
        f"INSERT INTO {t} ({', '.join(columns)}) VALUES {', '.join([row] * len(chunk))} "  # noqa: S608
        f"ON CONFLICT (url_key) WHERE closed_at IS NULL DO UPDATE SET "
        f"report_count = {t}.report_count + 1, "
        f"last_reported_at = excluded.last_reported_at, "
        f"priority = CASE WHEN excluded.priority > {t}.priority THEN excluded.priority ELSE {t}.priority END, "
        f"child_at_risk = ({t}.child_at_risk OR excluded.child_at_risk), "
        f"police_referral = ({t}.police_referral OR excluded.police_referral), "
        f"known_url = ({t}.known_url OR excluded.known_url) "
        f"RETURNING id, reference, url_key, report_count"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        return {key: (case_id, reference, count == 1) for case_id, reference, key, count in cursor.fetchall()}


def _link_reappearances(case_ids: list[int]) -> None:
    """A URL reported again after its case closed: link the new case to the latest closed one."""
    t = connection.ops.quote_name(Case._meta.db_table)
    placeholders = ", ".join(["%s"] * len(case_ids))
    with connection.cursor() as cursor:
        # The quoted table name only; ids are parameters.
        cursor.execute(
            f"UPDATE {t} SET previous_case_id = (SELECT old.id FROM {t} old WHERE old.url_key = {t}.url_key "  # noqa: S608
            f"AND old.closed_at IS NOT NULL ORDER BY old.closed_at DESC LIMIT 1) "
            f"WHERE id IN ({placeholders}) AND EXISTS (SELECT 1 FROM {t} old WHERE old.url_key = {t}.url_key "
            f"AND old.closed_at IS NOT NULL)",
            case_ids,
        )


@transaction.atomic
def mark_acknowledged(report_id: int) -> bool:
    """Record that the acknowledgement went out; False if it already had (a task may run twice)."""
    updated = Report.objects.filter(pk=report_id, acknowledged_at__isnull=True).update(acknowledged_at=timezone.now())
    if updated:
        audit.record(actor="system", action=audit.Action.REPORT_ACKNOWLEDGED, target=("reports.report", report_id))
    return bool(updated)
