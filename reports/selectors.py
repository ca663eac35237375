from __future__ import annotations

import hmac
from dataclasses import dataclass

from reports.models import Case, Report
from reports.references import clean_reference, status_secret_digest


@dataclass(frozen=True)
class CaseOutcome:
    """What became of one URL of a report."""

    position: int
    as_reported: str
    case_id: int
    case_reference: str
    opened: bool  # True: this report opened the case; False: it joined an open one
    duplicate: bool = False  # the report named this URL before, in another spelling or the same


def report_outcomes(report: Report) -> list[CaseOutcome]:
    outcomes, seen = [], set()
    for ru in report.urls.select_related("case").order_by("position"):
        outcomes.append(CaseOutcome(ru.position, ru.as_reported, ru.case_id, ru.case.reference, ru.opened_case,
                                    duplicate=ru.case_id in seen))
        seen.add(ru.case_id)
    return outcomes

ACTION_TAKEN = {
    Case.Status.CONFIRMED, Case.Status.ACTIONING, Case.Status.AWAITING_AUTHORISATION, Case.Status.AWAITING_REMOVAL,
    Case.Status.REMOVAL_OBSERVED, Case.Status.REMOVED, Case.Status.UNDER_DISPUTE,
}
NO_ACTION = {Case.Status.NOT_ILLEGAL, Case.Status.UNAVAILABLE, Case.Status.OUT_OF_REMIT}


class ReporterStatus:
    RECEIVED = "received"
    ACTION_TAKEN = "action_taken"
    NO_ACTION = "no_action"


def identified_report(reference: str, code: str) -> Report | None:
    """The report an identified reporter asks about, only with its status code; None for any mismatch."""
    report = Report.objects.filter(reference=clean_reference(reference), channel=Report.Channel.WEB).first()
    expected = report.status_secret_digest if report else "x" * 64
    if not hmac.compare_digest(expected, status_secret_digest(code.strip())) or report is None:
        return None
    return report


def reporter_status(report: Report) -> str:
    """Coarse: received / assessed, action taken / assessed, no action. Nothing about the content."""
    statuses = set(report.cases.values_list("status", flat=True))
    if statuses & ACTION_TAKEN:
        return ReporterStatus.ACTION_TAKEN
    if statuses and statuses <= NO_ACTION:
        return ReporterStatus.NO_ACTION
    return ReporterStatus.RECEIVED
