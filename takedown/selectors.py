"""Reads about notices for the staff pages: a case's notices, and the notice dashboard of the team and home pages.

Every read is limited to the user's queues (`reports.selectors.readable_queue_ids`), as the case pages are: a
notice shows only the cases of it the user may read. The dashboard's counts stop at a cap and come from one
query; a section with nothing in it costs no further query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery
from django.http import Http404
from django.utils import timezone

from reports import selectors as case_selectors
from reports.models import Case
from takedown.models import (
    MATERIAL_KINDS,
    Notice,
    NoticeCase,
    Partner,
    PoliceAuthorisation,
    SupervisorTask,
)

WORK, SUPERVISE = "reports.work_case", "reports.supervise_case"
S = Case.Status
WAITING_FOR_POLICE = (PoliceAuthorisation.State.PENDING, PoliceAuthorisation.State.HELD,
                      PoliceAuthorisation.State.OVERDUE)
# A case in these gets new notices by hand (the service says the same).
SENDS_BY_HAND = (S.ACTIONING, S.AWAITING_REMOVAL)


def ack_cutoff(now: datetime | None = None) -> datetime:
    """A notice sent before this and not acknowledged is overdue."""
    return (now or timezone.now()) - timedelta(hours=settings.NOTICE_ACK_HOURS)


def _open_for_cases(queue_ids: list[int]) -> Exists:
    return Exists(NoticeCase.objects.filter(notice=OuterRef("pk"), case__queue_id__in=queue_ids))


# --- one case's notices ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NoticeRow:
    """A notice as the case page shows it, with what concerns this case."""

    notice: Notice
    case_count: int  # the cases (URLs) in the notice, this one included
    removal_reported_at: datetime | None  # when the recipient reported this case's material removed
    overdue: bool  # sent, not acknowledged, for longer than NOTICE_ACK_HOURS
    past_deadline: bool  # sent or acknowledged, its deadline gone, no removal reported

    @property
    def start_at(self) -> datetime:
        return self.notice.sent_at or self.notice.created_at

    @property
    def removal_at(self) -> datetime | None:
        """When the removal was reported: for this case, else for the whole notice."""
        return self.removal_reported_at or self.notice.actioned_at

    @property
    def time_to_removal(self) -> timedelta | None:
        """From sending the notice to the removal reported."""
        if self.removal_at is None:
            return None
        return max(self.removal_at - self.start_at, timedelta(0))

    @property
    def is_disputed(self) -> bool:
        return self.notice.state == Notice.State.DISPUTED


def case_notices(case: Case, *, now: datetime | None = None) -> list[NoticeRow]:
    """The notices a case is in, oldest first, with their partners: one query."""
    now = now or timezone.now()
    cutoff = ack_cutoff(now)
    items = (NoticeCase.objects.filter(case=case)
             .select_related("notice", "notice__partner", "notice__authorisation")
             .annotate(case_count=Subquery(NoticeCase.objects.filter(notice=OuterRef("notice_id"))
                                           .values("notice_id").annotate(n=Count("pk")).values("n")[:1]))
             .order_by("notice__created_at", "notice_id"))
    rows = []
    for item in items:
        notice = item.notice
        overdue = notice.state == Notice.State.SENT and notice.sent_at is not None and notice.sent_at < cutoff
        past_deadline = (notice.state in (Notice.State.SENT, Notice.State.ACKNOWLEDGED)
                         and notice.deadline_at is not None and notice.deadline_at < now
                         and item.removal_reported_at is None)
        rows.append(NoticeRow(notice, item.case_count or 1, item.removal_reported_at, overdue, past_deadline))
    return rows


def case_authorisations(case: Case) -> list[PoliceAuthorisation]:
    """The case's requests for police consent, newest first."""
    return list(PoliceAuthorisation.objects.filter(case=case).select_related("police").order_by("-requested_at",
                                                                                               "-pk"))


def case_open_tasks(case: Case) -> list[SupervisorTask]:
    return list(SupervisorTask.objects.filter(case=case, resolved_at=None).select_related("notice")
                .order_by("created_at", "pk"))


def case_notice(case: Case, reference: str) -> Notice:
    """A notice the case is in, by its reference; 404 for any other."""
    if "\x00" in reference:
        raise Http404("No such notice.")
    notice = Notice.objects.filter(reference=reference, items__case=case).select_related("partner").first()
    if notice is None:
        raise Http404("No such notice.")
    return notice


def case_authorisation(case: Case, pk: int) -> PoliceAuthorisation:
    found = PoliceAuthorisation.objects.filter(pk=pk, case=case).first()
    if found is None:
        raise Http404("No such request for authorisation.")
    return found


def task_for(user: Any, pk: int) -> SupervisorTask:
    """An open or resolved supervisor task the user may see: of a case in their queues, or (without a case) for
    a supervisor or an auditor. Any other is a 404."""
    task = SupervisorTask.objects.filter(pk=pk).select_related("case").first()
    if task is None or not _may_see_task(user, task):
        raise Http404("No such task.")
    return task


def _may_see_task(user: Any, task: SupervisorTask) -> bool:
    if task.case_id is None:
        return user.has_perm(SUPERVISE) or user.has_perm("reports.view_all_cases")
    return task.case.queue_id in case_selectors.readable_queue_ids(user)


def hand_partners() -> QuerySet[Partner]:
    """Who a supervisor may send a notice to by hand: every active partner."""
    return Partner.objects.filter(is_active=True).order_by("name")


def case_notice_context(user: Any, case: Case) -> dict[str, Any]:
    """What the case page's "Notices" section needs (`templates/takedown/_case_notices.html`).

    Called by `reports.case_views._case_context`; the actions shown follow the user's permissions on the case's
    queue, and the views check them again.
    """
    from takedown.forms import SendNoticeForm

    works = user.has_perm(WORK) and case.queue_id in case_selectors.queue_ids_for(user)
    supervises = user.has_perm(SUPERVISE) and case.queue_id in case_selectors.supervised_queue_ids(user)
    notices = case_notices(case)
    tasks = case_open_tasks(case)  # shown to everyone who reads the case; resolved by a supervisor
    no_route = any(task.kind == SupervisorTask.Kind.NO_ROUTE for task in tasks)
    return {
        "notice_rows": notices,
        "authorisations": case_authorisations(case),
        "case_tasks": tasks,
        "no_route_task": no_route,
        "notice_acts": {
            "verify_removal": works and case.status == S.AWAITING_REMOVAL,
            "confirm_removal": works and case.status == S.REMOVAL_OBSERVED,
            "decide_disputes": supervises,
            "resolve_tasks": supervises,
            "answer_authorisation": supervises,
        },
        "send_notice_form": SendNoticeForm() if supervises and case.status in SENDS_BY_HAND else None,
        "waiting_for_police": WAITING_FOR_POLICE,
    }


# --- the dashboard: the team page and the staff home ----------------------------------------------------------


@dataclass
class Section:
    """One part of the dashboard: its count (None: more than the cap) and its first rows."""

    count: int | None
    rows: list[Any] = field(default_factory=list)

    @property
    def more(self) -> bool:
        return self.count is None or self.count > len(self.rows)


@dataclass
class NoticeDashboard:
    overdue: Section  # notices sent, not acknowledged after NOTICE_ACK_HOURS
    failed: Section  # notices that could not be delivered, about cases still open
    disputed: Section  # notices the recipient disputes
    tasks: Section  # open supervisor tasks
    authorisation: Section  # cases waiting for the police to authorise their notices
    removal_observed: Section  # cases whose removal waits for an analyst to confirm
    cap: int

    @property
    def is_empty(self) -> bool:
        return not any(s.count != 0 for s in (self.overdue, self.failed, self.disputed, self.tasks,
                                               self.authorisation, self.removal_observed))


@dataclass(frozen=True)
class TaskLine:
    task: SupervisorTask
    can_resolve: bool


@dataclass(frozen=True)
class NoticeLine:
    """A notice on the dashboard with the cases of it the user may read."""

    notice: Notice
    cases: list[Case]


def _overdue_notices(queue_ids: list[int], now: datetime) -> QuerySet[Notice]:
    return (Notice.objects.filter(_open_for_cases(queue_ids), state=Notice.State.SENT, kind__in=MATERIAL_KINDS,
                                  sent_at__lt=ack_cutoff(now))
            .order_by("sent_at", "pk"))


def _failed_notices(queue_ids: list[int]) -> QuerySet[Notice]:
    still_open = Exists(NoticeCase.objects.filter(notice=OuterRef("pk"), case__queue_id__in=queue_ids,
                                                  case__closed_at__isnull=True))
    return Notice.objects.filter(still_open, state=Notice.State.FAILED).order_by("-failed_at", "-pk")


def _disputed_notices(queue_ids: list[int]) -> QuerySet[Notice]:
    return (Notice.objects.filter(_open_for_cases(queue_ids), state=Notice.State.DISPUTED)
            .order_by("disputed_at", "pk"))


def _open_tasks(user: Any, queue_ids: list[int]) -> QuerySet[SupervisorTask]:
    visible = Q(case__queue_id__in=queue_ids)
    if user.has_perm(SUPERVISE) or user.has_perm("reports.view_all_cases"):
        visible |= Q(case__isnull=True)
    return SupervisorTask.objects.filter(visible, resolved_at=None).order_by("created_at", "pk")


def _waiting_for_police(queue_ids: list[int]) -> QuerySet[PoliceAuthorisation]:
    return (PoliceAuthorisation.objects.filter(case__queue_id__in=queue_ids, state__in=WAITING_FOR_POLICE,
                                               case__status=S.AWAITING_AUTHORISATION)
            .order_by("answer_by", "pk"))


def _removal_observed(queue_ids: list[int]) -> QuerySet[Case]:
    return Case.objects.filter(queue_id__in=queue_ids, status=S.REMOVAL_OBSERVED).order_by("first_reported_at",
                                                                                           "id")


def _capped_counts(querysets: list[QuerySet[Any]], cap: int) -> list[int | None]:
    """Each queryset's count, stopping at `cap` (None: more), in one query (none when all are empty)."""
    parts, params = [], []
    for qs in querysets:
        try:
            sql, qs_params = qs.order_by().values("pk")[: cap + 1].query.sql_with_params()
        except EmptyResultSet:  # filtered on no queue at all: nothing to count
            parts.append(None)
            continue
        # The ORM's own SQL, its values kept apart as parameters: nothing from the request is pasted in.
        parts.append(f"(SELECT COUNT(*) FROM ({sql}) capped)")  # noqa: S608
        params.extend(qs_params)
    found: list[int] = []
    if any(parts):
        with connection.cursor() as cursor:
            cursor.execute("SELECT " + ", ".join(p for p in parts if p), params)
            found = list(cursor.fetchone())
    counts = [0 if part is None else found.pop(0) for part in parts]
    return [None if n > cap else n for n in counts]


def notice_dashboard(user: Any, *, rows: int = 10, cap: int = 1_000,
                     now: datetime | None = None) -> NoticeDashboard | None:
    """What waits about notices in the user's queues; None for someone who reads no cases."""
    if not user.has_perm("reports.view_case"):
        return None
    now = now or timezone.now()
    queue_ids = case_selectors.readable_queue_ids(user)
    querysets = [_overdue_notices(queue_ids, now), _failed_notices(queue_ids), _disputed_notices(queue_ids),
                 _open_tasks(user, queue_ids), _waiting_for_police(queue_ids), _removal_observed(queue_ids)]
    counts = _capped_counts(querysets, cap)
    overdue_qs, failed_qs, disputed_qs, tasks_qs, police_qs, observed_qs = querysets
    notice_sections = []
    for qs, count in zip((overdue_qs, failed_qs, disputed_qs), counts[:3], strict=True):
        notice_sections.append(list(qs.select_related("partner")[:rows]) if count != 0 else [])
    lines = _with_cases([n for section in notice_sections for n in section], queue_ids)
    sections = [Section(count, [lines[n.pk] for n in notices]) for count, notices in
                zip(counts[:3], notice_sections, strict=True)]
    tasks = Section(counts[3], _task_lines(user, list(tasks_qs.select_related("case", "notice")[:rows]))
                    if counts[3] != 0 else [])
    police = Section(counts[4], list(police_qs.select_related("case", "police")[:rows]) if counts[4] != 0 else [])
    observed = Section(counts[5], list(observed_qs[:rows]) if counts[5] != 0 else [])
    return NoticeDashboard(*sections, tasks=tasks, authorisation=police, removal_observed=observed, cap=cap)


def _task_lines(user: Any, tasks: list[SupervisorTask]) -> list[TaskLine]:
    supervises = user.has_perm(SUPERVISE)
    supervised = set(case_selectors.supervised_queue_ids(user)) if supervises and tasks else set()
    return [TaskLine(task, supervises and (task.case_id is None or task.case.queue_id in supervised))
            for task in tasks]


def _with_cases(notices: list[Notice], queue_ids: list[int]) -> dict[int, NoticeLine]:
    """The notices with the cases of them in the user's queues: one query for all of them."""
    cases: dict[int, list[Case]] = {n.pk: [] for n in notices}
    if notices:
        for item in (NoticeCase.objects.filter(notice_id__in=list(cases), case__queue_id__in=queue_ids)
                     .select_related("case").only("notice_id", "case__id", "case__reference", "case__status",
                                                  "case__queue_id")
                     .order_by("pk")):
            cases[item.notice_id].append(item.case)
    return {n.pk: NoticeLine(n, cases[n.pk]) for n in notices}

