"""The recipient's answers to a notice and what staff make of them: acknowledgement, reported removal,
disputes and their senior decision, and an analyst's own check that the material is gone.

One function per state change, each in one transaction with its audit events. Locks are always taken in the
same order, notices first (by id) and then their cases (by id, `reports.services.lock_case`), so two answers
arriving at once cannot deadlock. Cases change only through `reports.services.apply_transition`, which checks
every move against the life cycle's TRANSITIONS table.

Who acts: a recipient's answers come from a Partner (its API key, or a signed link in its notice) and only on
its own notices; another partner's notice is a 404, as if it did not exist. Decisions on a dispute are a
supervisor's of every queue the notice's cases are in; checking removal is for an analyst of the case's queue.
An answer that does not fit the notice's state raises ReviewError with the reason, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone

from ntd import audit
from reports import selectors
from reports import services as life_cycle
from reports.models import Case
from reports.references import clean_reference
from reports.services import TRANSITIONS, ReviewError
from takedown.models import MATERIAL_KINDS, Notice, NoticeCase, NoticeKind, Partner, PoliceAuthorisation, SupervisorTask

S = Case.Status
N = Notice.State
WORK = life_cycle.WORK
SUPERVISE = life_cycle.SUPERVISE
REASON_MAX = 2000
NOTE_MAX = 2000
REMOVED = "Removed"
WITHDRAWN_REASON = "Notice withdrawn after a dispute"


class UnknownCases(ReviewError):
    """The answer names cases that are not in the notice: bad input, and nothing was changed."""


def is_partner(actor: Any) -> bool:
    return getattr(actor, "audit_actor_type", None) == "partner"


# --- reads for the recipient (the signed-link pages and the partner API) ------------------------------------


def partner_notices(partner: Partner) -> QuerySet[Notice]:
    """The partner's notices that have gone out, newest first (a notice still queued is not theirs to see yet)."""
    return Notice.objects.filter(partner=partner, sent_at__isnull=False).order_by("-created_at", "-pk")


def partner_notice(partner: Partner, reference: str) -> Notice:
    """One of the partner's notices; the same 404 for "no such notice" and "another partner's notice"."""
    reference = clean_reference(reference)
    notice = None if "\x00" in reference else partner_notices(partner).filter(reference=reference).first()
    if notice is None:
        raise Http404("No such notice.")
    return notice


def notice_items(notice: Notice) -> list[NoticeCase]:
    """The cases of a notice with their URLs, in the order they were added."""
    return list(notice.items.select_related("case").order_by("pk"))


# --- helpers ---------------------------------------------------------------------------------------------


def _text(value: str | None, *, what: str, limit: int, required: bool) -> str:
    text = (value or "").strip()
    if required and not text:
        raise ReviewError(f"Give a {what}.")
    if len(text) > limit:
        raise ReviewError(f"Keep the {what} to {limit:,} characters or fewer.")
    return text


def _for_recipient(notice: Notice, actor: Any) -> Notice:
    """The notice, locked, if `actor` is the partner it was sent to; anyone else is refused."""
    if not is_partner(actor):
        raise PermissionDenied
    locked = (Notice.objects.select_for_update(of=("self",)).select_related("partner")
              .filter(pk=notice.pk, partner_id=actor.pk).first())
    if locked is None:
        raise Http404("No such notice.")
    if locked.state in (N.QUEUED, N.FAILED):
        raise ReviewError("This notice has not been sent.")
    if locked.state == N.WITHDRAWN:
        raise ReviewError("This notice was withdrawn: nothing more is needed from you.")
    return locked


def _for_senior(notice: Notice, actor: Any) -> Notice:
    """The notice, locked, if `actor` supervises the queue of every case in it (else a 404, as elsewhere)."""
    if is_partner(actor) or not actor.has_perm(SUPERVISE):
        raise PermissionDenied
    locked = Notice.objects.select_for_update(of=("self",)).select_related("partner").filter(pk=notice.pk).first()
    queues = set(NoticeCase.objects.filter(notice_id=notice.pk).values_list("case__queue_id", flat=True))
    if locked is None or not queues or not queues <= set(selectors.supervised_queue_ids(actor)):
        raise Http404("No such notice.")
    return locked


def _case_for_analyst(case: Case | int, actor: Any) -> Case:
    """The case, locked, if `actor` may work its queue (outside their queues it does not exist for them)."""
    if is_partner(actor) or not actor.has_perm(WORK):
        raise PermissionDenied
    pk = case if isinstance(case, int) else case.pk
    locked = Case.objects.select_for_update().filter(pk=pk, queue_id__in=selectors.queue_ids_for(actor)).first()
    if locked is None:
        raise Http404("No such case.")
    return locked


def _lock_cases(case_ids: Iterable[int]) -> list[Case]:
    return [life_cycle.lock_case(case_id) for case_id in sorted(set(case_ids))]


def _notice_case_ids(notice: Notice) -> list[int]:
    return list(NoticeCase.objects.filter(notice=notice).order_by("case_id").values_list("case_id", flat=True))


def _chosen(items: Sequence[NoticeCase], references: Iterable[str] | None, notice: Notice) -> list[NoticeCase]:
    if references is None:
        return list(items)
    by_reference = {item.case.reference: item for item in items}
    chosen: list[NoticeCase] = []
    unknown: list[str] = []
    for raw in references:
        item = by_reference.get(clean_reference(str(raw)))
        if item is None:
            unknown.append(str(raw)[:40])
        elif item not in chosen:
            chosen.append(item)
    if unknown:
        more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
        raise UnknownCases(f"Not in notice {notice.reference}: {', '.join(unknown[:10])}{more}. Nothing was "
                           "recorded.")
    if not chosen:
        raise UnknownCases("Name at least one case of the notice.")
    return chosen


# --- the recipient's answers -----------------------------------------------------------------------------


@transaction.atomic
def acknowledge(notice: Notice, *, actor: Any) -> Notice:
    """The recipient has the notice. The first acknowledgement counts; a repeat changes nothing."""
    notice = _for_recipient(notice, actor)
    if notice.acknowledged_at is not None:
        return notice
    notice.acknowledged_at = timezone.now()
    if notice.state == N.SENT:
        notice.state = N.ACKNOWLEDGED
    notice.save(update_fields=["acknowledged_at", "state"])
    audit.record(actor=actor, action=audit.Action.NOTICE_ACKNOWLEDGED, target=notice,
                 data={"notice": notice.reference})
    return notice


@transaction.atomic
def report_removed(notice: Notice, *, actor: Any, case_references: Iterable[str] | None = None) -> Notice:
    """The recipient says the material at these URLs (all the notice's, unless named) is gone.

    Each case waiting for removal moves to `removal_observed`, for an analyst to confirm. When every URL of
    the notice is reported removed the notice is actioned. Reporting a URL again changes nothing.
    """
    notice = _for_recipient(notice, actor)
    if notice.kind not in MATERIAL_KINDS:
        raise ReviewError(f"A {notice.get_kind_display().lower()} asks for no removal.")
    if notice.state == N.DISPUTED:
        raise ReviewError("You disputed this notice: wait for our decision before reporting removal.")
    items = notice_items(notice)
    new = [item for item in _chosen(items, case_references, notice) if item.removal_reported_at is None]
    if not new:
        return notice
    now = timezone.now()
    locked = {case.pk: case for case in _lock_cases(item.case_id for item in new)}
    for item in new:
        item.removal_reported_at = now
        item.save(update_fields=["removal_reported_at"])
        case = locked[item.case_id]
        if case.status == S.AWAITING_REMOVAL:
            life_cycle.apply_transition(case, S.REMOVAL_OBSERVED, actor=actor,
                                        action=audit.Action.CASE_REMOVAL_OBSERVED,
                                        data={"notice": notice.reference, "source": "recipient"})
    everything = all(item.removal_reported_at is not None for item in items)
    notice.acknowledged_at = notice.acknowledged_at or now
    if everything:
        notice.state, notice.actioned_at = N.ACTIONED, notice.actioned_at or now
    elif notice.state == N.SENT:
        notice.state = N.ACKNOWLEDGED
    notice.save(update_fields=["acknowledged_at", "state", "actioned_at"])
    audit.record(actor=actor, action=audit.Action.NOTICE_REMOVAL_REPORTED, target=notice,
                 case_id=new[0].case_id if len(new) == 1 else None,
                 data={"notice": notice.reference, "cases": [item.case.reference for item in new],
                       "all_reported": everything})
    return notice


@transaction.atomic
def dispute(notice: Notice, *, actor: Any, reason: str) -> Notice:
    """The recipient disputes the notice: its cases wait for a senior decision, and a supervisor is told."""
    text = _text(reason, what="reason for the dispute", limit=REASON_MAX, required=True)
    notice = _for_recipient(notice, actor)
    if notice.kind not in MATERIAL_KINDS:
        raise ReviewError(f"A {notice.get_kind_display().lower()} cannot be disputed.")
    if notice.state == N.DISPUTED:
        if notice.dispute_reason == text:
            return notice  # the same dispute again (a retry)
        raise ReviewError("You disputed this notice already; we will answer that dispute.")
    if notice.disputed_at is not None:
        raise ReviewError("Your dispute of this notice was decided and the notice stands. Contact us directly.")
    now = timezone.now()
    notice.state, notice.disputed_at, notice.dispute_reason = N.DISPUTED, now, text
    notice.acknowledged_at = notice.acknowledged_at or now
    notice.save(update_fields=["state", "disputed_at", "dispute_reason", "acknowledged_at"])
    audit.record(actor=actor, action=audit.Action.NOTICE_DISPUTED, target=notice,
                 data={"notice": notice.reference, "reason": text})
    cases = _lock_cases(_notice_case_ids(notice))
    for case in cases:
        if S.UNDER_DISPUTE in TRANSITIONS[case.status]:
            life_cycle.apply_transition(case, S.UNDER_DISPUTE, actor=actor, action=audit.Action.CASE_UNDER_DISPUTE,
                                        data={"notice": notice.reference})
    _open_dispute_task(notice, cases[0] if cases else None, text)
    return notice


def _open_dispute_task(notice: Notice, case: Case | None, reason: str) -> SupervisorTask:
    from takedown.services import open_supervisor_task

    urls = notice.items.count()
    detail = (f"{notice.partner} disputes {notice.get_kind_display().lower()} {notice.reference} "
              f"({urls} URL{'s' if urls != 1 else ''}): {reason}")
    return open_supervisor_task(SupervisorTask.Kind.DISPUTE, detail=detail, case=case, notice=notice)


# --- the senior decision on a dispute ----------------------------------------------------------------------


@transaction.atomic
def uphold(notice: Notice, *, actor: Any, note: str = "") -> Notice:
    """The notice stands: it is back as it was before the dispute, its cases wait for removal again, and the
    recipient is told (with `note`, which goes to them)."""
    text = _text(note, what="note", limit=NOTE_MAX, required=False)
    notice = _for_senior(notice, actor)
    if notice.state != N.DISPUTED:
        raise ReviewError("Only a disputed notice waits for a decision.")
    items = notice_items(notice)
    notice.state = (N.ACTIONED if items and all(item.removal_reported_at for item in items)
                    else N.ACKNOWLEDGED if notice.acknowledged_at else N.SENT)
    notice.save(update_fields=["state"])
    cases = _lock_cases(item.case_id for item in items)
    for case in cases:
        if case.status != S.UNDER_DISPUTE or _disputed_elsewhere(case, notice):
            continue
        if _still_issuing(case):
            life_cycle.apply_transition(case, S.ACTIONING, actor=actor, action=audit.Action.CASE_ACTIONING,
                                        data={"notice": notice.reference, "dispute": "upheld"})
        else:
            life_cycle.apply_transition(case, S.AWAITING_REMOVAL, actor=actor,
                                        action=audit.Action.CASE_AWAITING_REMOVAL,
                                        data={"notice": notice.reference, "dispute": "upheld"})
    return _decided(notice, cases, actor=actor, action=audit.Action.NOTICE_UPHELD, outcome="upheld", note=text)


@transaction.atomic
def withdraw(notice: Notice, *, actor: Any, note: str = "") -> Notice:
    """The dispute is right: the notice is withdrawn, its disputed cases are closed, and the recipient is told
    (with `note`, which goes to them)."""
    text = _text(note, what="note", limit=NOTE_MAX, required=False)
    notice = _for_senior(notice, actor)
    if notice.state != N.DISPUTED:
        raise ReviewError("Only a disputed notice waits for a decision.")
    now = timezone.now()
    notice.state, notice.withdrawn_at = N.WITHDRAWN, now
    notice.save(update_fields=["state", "withdrawn_at"])
    cases = _lock_cases(_notice_case_ids(notice))
    for case in cases:
        if case.status == S.UNDER_DISPUTE:
            life_cycle.apply_transition(case, S.CLOSED, actor=actor, action=audit.Action.CASE_CLOSED,
                                        data={"notice": notice.reference, "dispute": "withdrawn"},
                                        closed_at=now, close_reason=WITHDRAWN_REASON, **life_cycle.UNCLAIMED)
    return _decided(notice, cases, actor=actor, action=audit.Action.NOTICE_WITHDRAWN, outcome="withdrawn", note=text)


def _disputed_elsewhere(case: Case, notice: Notice) -> bool:
    """Another notice about the case is disputed too: the case stays under dispute until that is decided."""
    return NoticeCase.objects.filter(case=case, notice__state=N.DISPUTED).exclude(notice=notice).exists()


def _still_issuing(case: Case) -> bool:
    """A notice about the material is still to go out, or police consent is awaited: the case is actioning."""
    queued = NoticeCase.objects.filter(case=case, kind__in=MATERIAL_KINDS, notice__state=N.QUEUED).exists()
    waiting = case.authorisations.filter(state__in=[PoliceAuthorisation.State.PENDING,
                                                    PoliceAuthorisation.State.HELD,
                                                    PoliceAuthorisation.State.OVERDUE]).exists()
    return queued or waiting


def _decided(notice: Notice, cases: list[Case], *, actor: Any, action: str, outcome: str, note: str) -> Notice:
    from takedown.services import issue_notice, resolve_supervisor_task

    for task in SupervisorTask.objects.filter(kind=SupervisorTask.Kind.DISPUTE, notice=notice, resolved_at=None):
        resolve_supervisor_task(task.pk, actor=actor, note=f"Notice {outcome}.")
    told = None
    if notice.partner.is_active:  # the recipient hears the outcome at once, in a notice of its own
        told = issue_notice(partner=notice.partner, kind=NoticeKind.DISPUTE_OUTCOME, cases=cases, actor=actor,
                            immediate=True,
                            payload={"dispute": {"notice": notice.reference, "outcome": outcome, "note": note}})
    audit.record(actor=actor, action=action, target=notice,
                 data={"notice": notice.reference, "note": note, "outcome_notice": told.reference if told else ""})
    return notice


# --- an analyst's own check of removal -------------------------------------------------------------------------


@transaction.atomic
def record_removal_verified(case: Case, *, actor: Any) -> Case:
    """An analyst saw for themselves that the material is gone (a repeat changes nothing)."""
    case = _case_for_analyst(case, actor)
    if case.status == S.REMOVAL_OBSERVED:
        return case
    if case.status != S.AWAITING_REMOVAL:
        raise ReviewError(f"A case that is {case.get_status_display().lower()} is not waiting for removal.")
    life_cycle.apply_transition(case, S.REMOVAL_OBSERVED, actor=actor, action=audit.Action.CASE_REMOVAL_OBSERVED,
                                data={"source": "analyst"})
    return case


@transaction.atomic
def confirm_removal(case: Case, *, actor: Any) -> Case:
    """The removal is confirmed: the case is removed and closed (a repeat changes nothing). A referral from a
    hotline that runs ntd hears of it once all its cases are removed (`takedown.exchange.on_case_removed`),
    in this same transaction."""
    from takedown.exchange import on_case_removed

    case = _case_for_analyst(case, actor)
    if case.status == S.CLOSED and case.close_reason == REMOVED:
        return case
    if case.status != S.REMOVAL_OBSERVED:
        raise ReviewError(f"A case that is {case.get_status_display().lower()} has no removal to confirm.")
    life_cycle.apply_transition(case, S.REMOVED, actor=actor, action=audit.Action.CASE_REMOVED)
    life_cycle.apply_transition(case, S.CLOSED, actor=actor, action=audit.Action.CASE_CLOSED,
                                closed_at=timezone.now(), close_reason=REMOVED, **life_cycle.UNCLAIMED)
    on_case_removed(case)
    return case


@transaction.atomic
def reject_removal(case: Case, *, actor: Any, note: str) -> Case:
    """The material is still there: the case waits for removal again, and the notices whose recipient
    reported it removed are open again for that URL (no longer actioned)."""
    if is_partner(actor) or not actor.has_perm(WORK):
        raise PermissionDenied
    text = _text(note, what="reason", limit=500, required=True)
    pk = case if isinstance(case, int) else case.pk
    reported = (NoticeCase.objects.filter(case_id=pk, removal_reported_at__isnull=False)
                .values_list("notice_id", flat=True))
    notices = list(Notice.objects.select_for_update().filter(pk__in=list(reported)).order_by("pk"))  # notices first
    case = _case_for_analyst(pk, actor)
    if case.status != S.REMOVAL_OBSERVED:
        raise ReviewError(f"A case that is {case.get_status_display().lower()} has no removal to reject.")
    life_cycle.apply_transition(case, S.AWAITING_REMOVAL, actor=actor, action=audit.Action.CASE_REMOVAL_REJECTED,
                                data={"reason": text, "notices": [n.reference for n in notices]})
    NoticeCase.objects.filter(case=case, notice__in=notices).update(removal_reported_at=None)
    for notice in notices:
        if notice.state == N.ACTIONED:
            notice.state, notice.actioned_at = N.ACKNOWLEDGED, None
            notice.save(update_fields=["state", "actioned_at"])
    return case
