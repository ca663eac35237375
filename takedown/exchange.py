"""Hotline-to-hotline exchange between two ntd deployments.

Sending (our side): a referral to a partner hotline that runs ntd is a notice on channel "ntd". Its payload,
made once when the notice is sealed (`referral_payload`), is a report for their partner API, with our notice's
reference as their `partner_reference`; delivery POSTs it to their /api/v1/reports/ with our API key there.

Receiving (their side, the same code): a report filed through the partner API by a hotline that runs ntd,
with a notice reference of theirs as `partner_reference`, is acknowledged back (`on_partner_report_filed`),
and removal is reported back once every case of that report is removed (`on_case_removed`): each is a
status_update notice whose payload POSTs to their /api/v1/notices/<reference>/acknowledge or /removed.

Both hooks are idempotent: called again (a retried report, a second removal), they find the status update
already issued and issue nothing new. Nothing here names an analyst.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case as DbCase
from django.db.models import IntegerField, Q, Value, When

from reports.models import Assessment, Case, MaterialKind, Report, Verdict
from takedown.models import Notice, NoticeKind, Partner

REPORTS_PATH = "/api/v1/reports/"
ACKNOWLEDGE = "acknowledge"
REMOVED = "removed"
REMOVED_CLOSE_REASON = "Removed"
DESCRIPTION_LIMIT = 2000  # reports.serializers.PartnerReportIn.description
# A notice reference of an ntd (takedown.models.new_notice_reference): N-XXXX-XXXX in Crockford's base32.
NOTICE_REFERENCE = re.compile(r"N-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}")

# The assessed media type (a classification option's code) as the partner API's material kinds.
MATERIAL_KINDS = {
    "images": MaterialKind.IMAGES,
    "videos": MaterialKind.VIDEOS,
    "images_and_videos": MaterialKind.OTHER,
    "virtual": MaterialKind.OTHER,
    "text": MaterialKind.TEXT,
    "live_stream": MaterialKind.LIVE_STREAM,
    "other": MaterialKind.OTHER,
}


# --- sending: the referral as a report for their ntd ------------------------------------------------------


def referral_payload(notice: Notice) -> dict[str, Any]:
    """What delivery POSTs to a partner hotline's ntd for a referral: {"path": ..., "body": ...}.

    The body is a report for their partner API (reports.serializers.PartnerReportIn) with our notice's
    reference as theirs, so a retry files nothing new there. Deterministic: the same notice gives the same body.
    """
    cases = [item.case for item in notice.items.select_related("case").order_by("pk")]
    if not cases:
        raise ValueError(f"notice {notice.reference} names no case")
    decisive = {case.pk: _decisive_assessment(case) for case in cases}
    reports = list(Report.objects.filter(cases__in=cases).distinct().order_by("received_at", "pk"))
    body: dict[str, Any] = {
        "partner_reference": notice.reference,
        "urls": [case.url for case in cases],
        "material_kind": _material_kind(decisive.values(), reports),
        "encountered_via": _one_of(report.encountered_via for report in reports),
        "description": _description(notice, cases, decisive),
        "child_at_risk": any(case.child_at_risk for case in cases),
    }
    # Their API takes a choice or no key at all, not an empty choice.
    for name in ("material_kind", "encountered_via"):
        if not body[name]:
            del body[name]
    return {"path": REPORTS_PATH, "body": body}


def _decisive_assessment(case: Case) -> Assessment | None:
    """The illegal assessment the case stands on: a supervisor's decision if there is one, else the latest (a
    second opinion agrees with the first), as in the notice's own words (takedown.rendering)."""
    rank = DbCase(When(kind=Assessment.Kind.DECISION, then=Value(0)), default=Value(1), output_field=IntegerField())
    return (case.assessments.select_related("verdict", "clause", "media_type")
            .filter(verdict__outcome=Verdict.Outcome.ILLEGAL).annotate(rank=rank)
            .order_by("rank", "-created_at", "-pk").first())


def _material_kind(assessments: Iterable[Assessment | None], reports: list[Report]) -> str:
    kinds = {MATERIAL_KINDS.get(a.media_type.code, MaterialKind.OTHER)
             for a in assessments if a is not None and a.media_type is not None}
    if not kinds:  # no assessed media type: what the reporters said, if they agree
        return _one_of(report.material_kind for report in reports)
    return str(kinds.pop()) if len(kinds) == 1 else str(MaterialKind.OTHER)


def _one_of(values: Iterable[str]) -> str:
    """The value when every non-empty one agrees, else empty."""
    found = {value for value in values if value}
    return found.pop() if len(found) == 1 else ""


def _jurisdiction(code: str) -> str:
    from reports.scheme import NATIONAL

    return settings.NTD_COUNTRY if code == NATIONAL else code


def _url_line(position: int, case: Case, assessment: Assessment | None) -> str:
    parts = [f"URL {position} (our case {case.reference})"]
    if assessment is None:
        return parts[0] + ": confirmed."
    verdict = assessment.verdict
    detail = verdict.label
    if verdict.jurisdiction:
        detail += f" ({_jurisdiction(verdict.jurisdiction)})"
    if assessment.clause is not None:
        clause = assessment.clause
        detail += f"; clause {_jurisdiction(clause.jurisdiction)} {clause.code}: {clause.title}"
    if assessment.media_type is not None:
        detail += f"; {assessment.media_type.label.lower()}"
    if case.child_at_risk:
        detail += "; a child may be at immediate risk"
    return f"{parts[0]}: {detail}."


def _description(notice: Notice, cases: list[Case], decisive: dict[int, Assessment | None]) -> str:
    """Who refers, under which reference, and per URL the verdict and clause: never a name, never the rationale."""
    head = (f"Referral from {settings.NTD_ORGANISATION} ({settings.NTD_COUNTRY}), our notice {notice.reference}. "
            f"We assessed the material at {'this URL' if len(cases) == 1 else 'these URLs'} as child sexual "
            f"abuse material hosted in your country:")
    lines = [head]
    length = len(head)
    for position, case in enumerate(cases, start=1):
        line = _url_line(position, case, decisive[case.pk])
        rest = len(cases) - position
        tail = f"… and {rest + 1} more (see our notice {notice.reference})."
        if length + 1 + len(line) + (1 + len(tail) if rest else 0) > DESCRIPTION_LIMIT:
            lines.append(tail if length + 1 + len(tail) <= DESCRIPTION_LIMIT else "…")
            break
        lines.append(line)
        length += 1 + len(line)
    return "\n".join(lines)[:DESCRIPTION_LIMIT]


# --- receiving: acknowledgement and removal back to the referring ntd ----------------------------------------


def status_path(partner_reference: str, action: str) -> str:
    return f"/api/v1/notices/{partner_reference}/{action}"


def exchanges_with(report: Report) -> bool:
    """A report from an active partner hotline that runs ntd, naming a notice of theirs."""
    partner: Partner | None = report.partner
    return (partner is not None and partner.runs_ntd and partner.is_active
            and bool(NOTICE_REFERENCE.fullmatch(report.partner_reference)))


def on_partner_report_filed(report: Report) -> Notice | None:
    """A partner that runs ntd filed a report (their referral): acknowledge it back, once.

    Call it after the report's transaction commits, for every filing, a retry too: a status update already
    issued is returned as it is, so a hook that failed the first time is made good by the partner's retry.
    """
    if not exchanges_with(report):
        return None
    return _status_update(report, ACKNOWLEDGE)


# Removed: confirmed removed, or closed after that (takedown.responses.confirm_removal closes it as "Removed").
REMOVED_CASES = Q(status=Case.Status.REMOVED) | Q(status=Case.Status.CLOSED, close_reason=REMOVED_CLOSE_REASON)


def on_case_removed(case: Case) -> list[Notice]:
    """A case's removal is confirmed: for each referral from an ntd among its reports whose cases are now all
    removed, report the removal back, once per referral. Returns those status updates (issued now or before)."""
    notices = []
    reports = (Report.objects.filter(cases=case, partner__runs_ntd=True).exclude(partner_reference="")
               .select_related("partner").distinct().order_by("pk"))
    for report in reports:
        if not exchanges_with(report):
            continue
        if Case.objects.filter(reports=report).exclude(REMOVED_CASES).exists():
            continue
        notices.append(_status_update(report, REMOVED))
    return notices


def status_update_for(report: Report, action: str) -> Notice | None:
    """The status update already issued for this referral and action, if any."""
    return (Notice.objects.filter(partner_id=report.partner_id, kind=NoticeKind.STATUS_UPDATE,
                                  payload__path=status_path(report.partner_reference, action))
            .order_by("pk").first())


def _status_update(report: Report, action: str) -> Notice:
    from takedown import services

    path = status_path(report.partner_reference, action)
    with transaction.atomic():
        _lock(f"takedown.exchange:{report.partner_id}:{path}")  # two hooks for one referral: one notice
        existing = status_update_for(report, action)
        if existing is not None:
            return existing
        cases = list(Case.objects.filter(reports=report).distinct().order_by("pk"))
        return services.issue_notice(partner=report.partner, kind=NoticeKind.STATUS_UPDATE, cases=cases,
                                     actor=None, immediate=True, payload={"path": path, "body": {}})


def _lock(name: str) -> None:
    """A transaction-scoped advisory lock on a name (PostgreSQL); nothing to do on SQLite, which has one writer."""
    if connection.vendor != "postgresql":
        return
    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])
