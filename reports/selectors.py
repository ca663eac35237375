from __future__ import annotations

import hmac
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404

from ntd.access import objects_for_user
from ntd.audit import AuditEvent
from reports.models import (
    CLAIMABLE_STATUSES,
    CLOSED_STATUSES,
    Assessment,
    Case,
    HostingTrace,
    Queue,
    Report,
    ReportURL,
)
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
    """Coarse: received / assessed, action taken / assessed, no action. Nothing about the content.

    A case closed as a duplicate answers with the case it duplicates; any other closed case was closed after
    the material was removed.
    """
    statuses = set()
    for status, original in report.cases.values_list("status", "duplicate_of__status"):
        statuses.add(original if status == Case.Status.CLOSED and original else status)
    if statuses & (ACTION_TAKEN | {Case.Status.CLOSED}):
        return ReporterStatus.ACTION_TAKEN
    if statuses and statuses <= NO_ACTION:
        return ReporterStatus.NO_ACTION
    return ReporterStatus.RECEIVED


# --- review: which queues and cases a user may see, the triage queue and its counts ------------------------

WORK_QUEUE, SUPERVISE_QUEUE = "reports.work_queue", "reports.supervise_queue"


def queue_ids_for(user: Any) -> list[int]:
    """The queues a user may see and work: granted on the queue itself (guardian), for someone who may work."""
    cached = getattr(user, "_ntd_queue_ids", None)
    if cached is None:
        if not user.has_perm("reports.view_case"):
            cached = []
        else:
            cached = sorted(objects_for_user(user, [WORK_QUEUE, SUPERVISE_QUEUE], Queue).values_list("id", flat=True))
        user._ntd_queue_ids = cached
    return cached


def supervised_queue_ids(user: Any) -> list[int]:
    cached = getattr(user, "_ntd_supervised_ids", None)
    if cached is None:
        cached = (sorted(objects_for_user(user, SUPERVISE_QUEUE, Queue).values_list("id", flat=True))
                  if user.has_perm("reports.supervise_case") else [])
        user._ntd_supervised_ids = cached
    return cached


def forget_queue_grants(user: Any) -> None:
    for name in ("_ntd_queue_ids", "_ntd_supervised_ids"):
        user.__dict__.pop(name, None)


def readable_queue_ids(user: Any) -> list[int]:
    """The queues whose cases a user may read: their grants, or every queue for an auditor (read-only)."""
    if user.has_perm("reports.view_case") and user.has_perm("reports.view_all_cases"):
        return list(Queue.objects.order_by("id").values_list("id", flat=True))
    return queue_ids_for(user)


def visible_cases(user: Any) -> QuerySet[Case]:
    """Cases the user may read. Working on one (claim, assess...) still needs a grant: see `queue_ids_for`."""
    if user.has_perm("reports.view_case") and user.has_perm("reports.view_all_cases"):
        return Case.objects.all()
    return Case.objects.filter(queue_id__in=queue_ids_for(user))


def case_for(user: Any, reference: str) -> Case:
    """The case, if the user may see it; the same 404 for "no such case" and "not in your queues"."""
    reference = clean_reference(reference)
    if "\x00" in reference:  # PostgreSQL text cannot hold NUL: no case has such a reference
        raise Http404("No such case.")
    case = (visible_cases(user).select_related("queue", "assignee", "hosting_partner", "duplicate_of",
                                               "previous_case")
            .filter(reference=reference).first())
    if case is None:
        raise Http404("No such case.")
    return case


def claimable_cases(user: Any) -> QuerySet[Case]:
    """Cases waiting for an analyst in the user's queues; second opinions only on cases they did not assess."""
    return (Case.objects.filter(queue_id__in=queue_ids_for(user), assignee__isnull=True,
                                status__in=CLAIMABLE_STATUSES)
            .exclude(Exists(Assessment.objects.filter(case=OuterRef("pk"), assessor=user)),
                     status=Case.Status.AWAITING_SECOND_OPINION))


@dataclass(frozen=True)
class TriageFilters:
    statuses: tuple[str, ...] = ()
    source_kind: str = ""
    reported_country: str = ""
    hosting_country: str = ""
    hosting_asn: int | None = None
    known_url: bool | None = None
    child_at_risk: bool | None = None
    queue: int | None = None
    mine: bool = False


@dataclass(frozen=True)
class Cursor:
    """Where a page of the triage queue ends: the urgency key of its last row."""

    priority: int
    first_reported_at: datetime
    id: int

    def encode(self) -> str:
        return f"{self.priority}~{self.first_reported_at.isoformat()}~{self.id}"

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError for anything that is not a cursor this page gave out."""
        priority, at, ident = text.split("~")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            raise ValueError("cursor without a time zone")
        return cls(int(priority), moment, int(ident))


@dataclass(frozen=True)
class TriageRow:
    case: Case
    sources: tuple[str, ...]


@dataclass(frozen=True)
class TriagePage:
    rows: list[TriageRow]
    next_cursor: Cursor | None


TRIAGE_COLUMNS = ("id", "reference", "url", "host", "registrable_domain", "status", "priority", "child_at_risk",
                  "known_url", "report_count", "first_reported_at", "last_reported_at", "hosting_country",
                  "hosting_asn", "queue_id", "assignee_id", "claimed_at")


def triage_cases(user: Any, filters: TriageFilters) -> QuerySet[Case]:
    """The user's cases in urgency order (priority, then age), filtered; open cases unless a status is chosen."""
    cases = visible_cases(user)
    if filters.statuses:
        cases = cases.filter(status__in=filters.statuses)
    else:
        cases = cases.filter(closed_at__isnull=True)
    if filters.queue is not None:
        cases = cases.filter(queue_id=filters.queue)
    if filters.mine:
        cases = cases.filter(assignee=user)
    if filters.source_kind:
        cases = cases.filter(Exists(ReportURL.objects.filter(case=OuterRef("pk"),
                                                             report__source_kind=filters.source_kind)))
    if filters.reported_country:
        cases = cases.filter(Exists(ReportURL.objects.filter(case=OuterRef("pk"),
                                                             report__partner__country=filters.reported_country)))
    if filters.hosting_country:
        cases = cases.filter(hosting_country=filters.hosting_country)
    if filters.hosting_asn is not None:
        cases = cases.filter(hosting_asn=filters.hosting_asn)
    if filters.known_url is not None:
        cases = cases.filter(known_url=filters.known_url)
    if filters.child_at_risk is not None:
        cases = cases.filter(child_at_risk=filters.child_at_risk)
    return cases.order_by("-priority", "first_reported_at", "id")


def triage_page(user: Any, filters: TriageFilters, *, after: Cursor | None = None, size: int = 50) -> TriagePage:
    """One page of the triage queue by keyset: two queries whatever the page size (cases with holders, sources)."""
    cases = triage_cases(user, filters)
    if after is not None:
        # priority DESC, first_reported_at ASC, id ASC: past the cursor within its priority, or any lower one.
        cases = cases.filter(Q(priority__lt=after.priority) | Q(
            priority=after.priority, first_reported_at__gt=after.first_reported_at) | Q(
            priority=after.priority, first_reported_at=after.first_reported_at, id__gt=after.id),
            priority__lte=after.priority)
    rows = list(cases.select_related("assignee").only(*TRIAGE_COLUMNS, "assignee__username",
                                                       "assignee__pseudonym")[: size + 1])
    more = len(rows) > size
    rows = rows[:size]
    last = rows[-1] if rows else None
    return TriagePage(triage_rows(user, rows),
                      Cursor(last.priority, last.first_reported_at, last.pk) if more and last else None)


def triage_rows(user: Any, cases: list[Case]) -> list[TriageRow]:
    """The cases with the kinds of source that reported each: one query for all of them."""
    sources: dict[int, set[str]] = {}
    for case_id, kind in (ReportURL.objects.filter(case_id__in=[c.pk for c in cases])
                          .values_list("case_id", "report__source_kind").distinct()):
        sources.setdefault(case_id, set()).add(kind)
    return [TriageRow(case, tuple(sorted(sources.get(case.pk, ())))) for case in cases]


OPEN_STATUSES = [status for status in Case.Status.values if status not in CLOSED_STATUSES]


def status_counts(user: Any, *, cap: int = 1_000) -> dict[str, int | None]:
    """Open cases per status in the user's queues, in one query. Counting stops at `cap` (None: "more than cap"),
    so each count is a short range of the status index, however large the queue grows."""
    queue_ids = readable_queue_ids(user)
    if not queue_ids:
        return dict.fromkeys(OPEN_STATUSES, 0)
    table = connection.ops.quote_name(Case._meta.db_table)
    marks = ", ".join(["%s"] * len(queue_ids))
    one = (f"SELECT %s, (SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE status = %s AND "  # noqa: S608
           f"closed_at IS NULL AND queue_id IN ({marks}) LIMIT %s) capped)")
    sql = " UNION ALL ".join([one] * len(OPEN_STATUSES))
    params = [p for status in OPEN_STATUSES for p in (status, status, *queue_ids, cap + 1)]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {status: (None if count > cap else count) for status, count in cursor.fetchall()}


def team_load(user: Any) -> QuerySet[Case]:
    """Cases held in the queues a supervisor supervises, longest held first."""
    return (Case.objects.filter(queue_id__in=supervised_queue_ids(user), assignee__isnull=False)
            .select_related("assignee", "queue").order_by("claimed_at"))


def awaiting_supervisor(user: Any) -> QuerySet[Case]:
    """Second opinions and disagreements in the supervisor's queues, oldest first."""
    return (Case.objects.filter(queue_id__in=supervised_queue_ids(user),
                                status__in=[Case.Status.AWAITING_SECOND_OPINION, Case.Status.AWAITING_DECISION])
            .select_related("queue", "assignee").order_by("first_reported_at", "id"))


def case_reports(case: Case) -> QuerySet[Report]:
    return case.reports.select_related("partner").order_by("received_at", "id").distinct()


def case_assessments(case: Case) -> QuerySet[Assessment]:
    return (case.assessments.select_related("assessor", "verdict", "clause", "media_type", "age_group", "gender",
                                            "site_type")
            .prefetch_related("verdict__mappings").order_by("created_at", "id"))


def latest_trace(case: Case) -> HostingTrace | None:
    return case.traces.order_by("-traced_at", "-id").first()


def case_history(case: Case, *, limit: int = 200) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(case_id=case.pk).order_by("seq")[:limit])


def team_analysts(user: Any) -> QuerySet[Any]:
    """Active users who may work at least one of the queues this supervisor supervises."""
    from guardian.shortcuts import get_users_with_perms

    from ntd.models import User

    ids: set[int] = set()
    for queue in Queue.objects.filter(pk__in=supervised_queue_ids(user)):
        ids |= {u.pk for u in get_users_with_perms(queue, only_with_perms_in=["work_queue", "supervise_queue"],
                                                   with_group_users=True)}
    return User.objects.filter(pk__in=ids, is_active=True).order_by("username")


def queue_ids_for_fresh(user: Any) -> list[int]:
    """`queue_ids_for` without the per-request memo, after grants have changed."""
    forget_queue_grants(user)
    for name in ("_perm_cache", "_user_perm_cache", "_group_perm_cache"):
        user.__dict__.pop(name, None)
    return queue_ids_for(user)


@dataclass(frozen=True)
class HomeSummary:
    held: list[Case]
    waiting: int | None  # claimable in the user's queues, None: more than the cap
    supervising: int | None  # second opinions and disagreements in supervised queues; None when not a supervisor


def home_summary(user: Any, *, cap: int = 1_000) -> HomeSummary | None:
    """What a member of staff who works cases sees first: the cases they hold and what waits for them."""
    if not user.has_perm("reports.view_case"):
        return None
    held = list(Case.objects.filter(assignee=user, queue_id__in=queue_ids_for(user)).order_by("claimed_at")[:20])
    waiting = claimable_cases(user)[: cap + 1].count()
    supervising = awaiting_supervisor(user)[: cap + 1].count() if supervised_queue_ids(user) else None
    return HomeSummary(held, None if waiting > cap else waiting,
                       None if supervising is None else min(supervising, cap))
