"""The case life cycle: one function per transition, the only place a case's status changes.

Each function locks the case, checks the actor's permission and queue grant (a case outside the actor's
queues is a 404, as if it did not exist), checks the transition against `TRANSITIONS`, changes the case,
writes the audit event and schedules what follows after commit, all in one transaction. Intake (opening and
joining cases) is in `reports.intake`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from ntd import audit
from reports import selectors
from reports.models import (
    CLAIMABLE_STATUSES,
    Assessment,
    Case,
    ClassificationOption,
    PolicyClause,
    Queue,
    Report,
    Verdict,
)

S = Case.Status
# Every move a case can make. Notices, removal and disputes (the notices issue) use the same table.
TRANSITIONS: dict[str, frozenset[str]] = {
    S.RECEIVED: frozenset({S.IN_REVIEW, S.CLOSED}),
    S.IN_REVIEW: frozenset({S.RECEIVED, S.AWAITING_SECOND_OPINION, S.CONFIRMED, S.NOT_ILLEGAL, S.UNAVAILABLE,
                            S.OUT_OF_REMIT, S.CLOSED}),
    S.AWAITING_SECOND_OPINION: frozenset({S.AWAITING_DECISION, S.CONFIRMED, S.NOT_ILLEGAL, S.UNAVAILABLE,
                                          S.OUT_OF_REMIT, S.CLOSED}),
    S.AWAITING_DECISION: frozenset({S.CONFIRMED, S.NOT_ILLEGAL, S.UNAVAILABLE, S.OUT_OF_REMIT, S.CLOSED}),
    S.CONFIRMED: frozenset({S.ACTIONING}),
    S.ACTIONING: frozenset({S.AWAITING_AUTHORISATION, S.AWAITING_REMOVAL, S.UNDER_DISPUTE}),
    S.AWAITING_AUTHORISATION: frozenset({S.ACTIONING, S.UNDER_DISPUTE}),
    S.AWAITING_REMOVAL: frozenset({S.REMOVAL_OBSERVED, S.UNDER_DISPUTE}),
    S.REMOVAL_OBSERVED: frozenset({S.REMOVED, S.AWAITING_REMOVAL, S.UNDER_DISPUTE}),
    S.UNDER_DISPUTE: frozenset({S.ACTIONING, S.AWAITING_REMOVAL, S.CLOSED}),
    S.REMOVED: frozenset({S.CLOSED}),
    S.NOT_ILLEGAL: frozenset({S.RECEIVED}),
    S.UNAVAILABLE: frozenset({S.RECEIVED}),
    S.OUT_OF_REMIT: frozenset({S.RECEIVED}),
    S.CLOSED: frozenset({S.RECEIVED}),
}
REVIEW_STATUSES = frozenset({S.RECEIVED, S.IN_REVIEW, S.AWAITING_SECOND_OPINION, S.AWAITING_DECISION})
CLOSING = {Verdict.Outcome.NOT_ILLEGAL: S.NOT_ILLEGAL, Verdict.Outcome.UNAVAILABLE: S.UNAVAILABLE,
           Verdict.Outcome.OUT_OF_REMIT: S.OUT_OF_REMIT}

WORK = "reports.work_case"
SUPERVISE = "reports.supervise_case"
REVEAL_CONTACT = "reports.reveal_reporter_contact"


class ReviewError(Exception):
    """A request that cannot be carried out as asked; the message says why, in words for the analyst."""


@dataclass(frozen=True)
class AssessmentInput:
    verdict: Verdict
    media_type: ClassificationOption | None = None
    age_group: ClassificationOption | None = None
    gender: ClassificationOption | None = None
    site_type: ClassificationOption | None = None
    commercial: bool | None = None
    clause: PolicyClause | None = None
    rationale: str = ""


def claim_idle_time() -> timedelta:
    return timedelta(minutes=settings.CASE_CLAIM_IDLE_MINUTES)


# --- locking, permission and the one place a status changes ------------------------------------------------


def _locked(case_id: int, actor: Any, perm: str, *, supervise: bool = False) -> Case:
    """The case, locked, if the actor may act on it: outside their queues it does not exist for them."""
    if not actor.has_perm(perm):
        raise PermissionDenied
    queue_ids = selectors.supervised_queue_ids(actor) if supervise else selectors.queue_ids_for(actor)
    case = Case.objects.select_for_update().filter(pk=case_id, queue_id__in=queue_ids).first()
    if case is None:
        raise Http404("No such case.")
    return case


def _move(case: Case, to: str | None, *, actor: Any, action: str, data: dict[str, Any] | None = None,
          **changes: Any) -> None:
    """Change the case (its status when `to` is given), save it and write the audit event."""
    before = case.status
    if to is not None and to != before:
        if to not in TRANSITIONS[before]:
            raise ReviewError(f"A case that is {case.get_status_display().lower()} cannot move to "
                              f"{S(to).label.lower()}.")
        case.status = to
    for name, value in changes.items():
        setattr(case, name, value)
    case.save(update_fields=["status", *changes])
    audit.record(actor=actor, action=action, target=case, case_id=case.pk,
                 data={"case": case.reference, "from": before, "to": case.status, **(data or {})})


def apply_transition(case: Case, to: str | None, *, actor: Any, action: str, data: dict[str, Any] | None = None,
                     **changes: Any) -> None:
    """For the takedown services (notices, removal, disputes): the same checked, audited move as every
    transition here. The caller holds the case's lock (`lock_case`)."""
    _move(case, to, actor=actor, action=action, data=data, **changes)


def lock_case(case_id: int) -> Case:
    """The case, locked, for a service that has already decided the actor may act on it."""
    return Case.objects.select_for_update().get(pk=case_id)


def _claim_fields(actor: Any, now: datetime) -> dict[str, Any]:
    return {"assignee": actor, "claimed_at": now, "claim_expires_at": now + claim_idle_time()}


UNCLAIMED: dict[str, Any] = {"assignee": None, "claimed_at": None, "claim_expires_at": None}


# --- claiming ------------------------------------------------------------------------------------------------


@transaction.atomic
def take_next_case(*, actor: Any) -> Case | None:
    """Hand the actor the most urgent case they may work that no one holds, or None when there is none.

    A case the actor already holds comes back first, so no one hoards cases. Otherwise the candidate is
    locked with SKIP LOCKED: two analysts asking at once get two different cases, never the same one.
    """
    if not actor.has_perm(WORK):
        raise PermissionDenied
    held = (Case.objects.select_for_update()
            .filter(assignee=actor, status__in=CLAIMABLE_STATUSES + (S.IN_REVIEW,),
                    queue_id__in=selectors.queue_ids_for(actor))
            .order_by("claimed_at").first())
    if held is not None:
        _keep_alive(held)
        return held
    case = (selectors.claimable_cases(actor).select_for_update(skip_locked=True, of=("self",))
            .order_by("-priority", "first_reported_at", "id").first())
    if case is None:
        return None
    _claim(case, actor)
    return case


@transaction.atomic
def claim_case(case_id: int, *, actor: Any) -> Case:
    """Claim one chosen case: it must be waiting for an analyst and not held by anyone."""
    case = _locked(case_id, actor, WORK)
    if case.assignee_id is not None:
        raise ReviewError("Someone else holds this case." if case.assignee_id != actor.pk else "You hold this case.")
    if case.status not in CLAIMABLE_STATUSES:
        raise ReviewError(f"A case that is {case.get_status_display().lower()} is not waiting for an analyst.")
    if case.status == S.AWAITING_SECOND_OPINION and case.assessments.filter(assessor=actor).exists():
        raise ReviewError("You assessed this case already: the second opinion must come from someone else.")
    _claim(case, actor)
    return case


def _claim(case: Case, actor: Any) -> None:
    to = S.IN_REVIEW if case.status == S.RECEIVED else None
    _move(case, to, actor=actor, action=audit.Action.CASE_CLAIMED, **_claim_fields(actor, timezone.now()))


@transaction.atomic
def release_case(case_id: int, *, actor: Any) -> Case:
    """Give a held case back to the queue (its holder, or a supervisor of the queue)."""
    case = _locked(case_id, actor, WORK)
    if case.assignee_id is None:
        raise ReviewError("No one holds this case.")
    if case.assignee_id != actor.pk and not _supervises(actor, case):
        raise ReviewError("Only the analyst who holds the case or a supervisor can release it.")
    to = S.RECEIVED if case.status == S.IN_REVIEW else None
    _move(case, to, actor=actor, action=audit.Action.CASE_RELEASED, **UNCLAIMED)
    return case


@transaction.atomic
def reassign_case(case_id: int, *, actor: Any, to_user: Any, reason: str) -> Case:
    """A supervisor gives a case to another analyst who may work its queue."""
    case = _locked(case_id, actor, SUPERVISE, supervise=True)
    if case.status not in REVIEW_STATUSES or case.status == S.AWAITING_DECISION:
        raise ReviewError("Only a case waiting for or in review can be reassigned.")
    if not to_user.has_perm(WORK) or case.queue_id not in selectors.queue_ids_for(to_user):
        raise ReviewError(f"{to_user} may not work cases in the queue {case.queue}.")
    if case.status == S.AWAITING_SECOND_OPINION and case.assessments.filter(assessor=to_user).exists():
        raise ReviewError(f"{to_user} assessed this case already: the second opinion must come from someone else.")
    to = S.IN_REVIEW if case.status == S.RECEIVED else None
    _move(case, to, actor=actor, action=audit.Action.CASE_REASSIGNED,
          data={"to_user": to_user.pk, "reason": _reason(reason)}, **_claim_fields(to_user, timezone.now()))
    return case


def keep_claim_alive(case: Case, *, actor: Any) -> None:
    """The holder is working on the case (opened it, saved a draft): their claim's idle clock restarts."""
    if case.assignee_id == actor.pk:
        _keep_alive(case)


def _keep_alive(case: Case) -> None:
    case.claim_expires_at = timezone.now() + claim_idle_time()
    Case.objects.filter(pk=case.pk, assignee_id=case.assignee_id).update(claim_expires_at=case.claim_expires_at)


def expire_claims(*, now: datetime | None = None, batch: int = 500) -> int:
    """Return to the queue every case whose holder has been idle too long. Returns how many."""
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            cases = list(Case.objects.select_for_update(skip_locked=True)
                         .filter(assignee__isnull=False, claim_expires_at__lt=now).order_by("claim_expires_at")[:batch])
            for case in cases:
                to = S.RECEIVED if case.status == S.IN_REVIEW else None
                _move(case, to, actor="system", action=audit.Action.CASE_CLAIM_EXPIRED,
                      data={"holder": case.assignee_id}, **UNCLAIMED)
        expired += len(cases)
        if len(cases) < batch:
            return expired


# --- assessment ----------------------------------------------------------------------------------------------


@transaction.atomic
def assess_case(case_id: int, *, actor: Any, assessment: AssessmentInput) -> Assessment:
    """The holder records their assessment. Policy decides whether it stands alone or waits for four eyes."""
    case = _locked(case_id, actor, WORK)
    if case.assignee_id != actor.pk:
        raise ReviewError("Claim the case before assessing it.")
    if case.status == S.IN_REVIEW:
        recorded = _record_assessment(case, actor, Assessment.Kind.FIRST, assessment)
        if assessment.verdict.four_eyes:
            _move(case, S.AWAITING_SECOND_OPINION, actor=actor, action=audit.Action.CASE_SECOND_OPINION_REQUESTED,
                  data={"verdict": assessment.verdict.code}, **UNCLAIMED)
        else:
            _conclude(case, recorded, actor)
        return recorded
    if case.status == S.AWAITING_SECOND_OPINION:
        first = case.assessments.filter(kind=Assessment.Kind.FIRST).order_by("-created_at", "-id").first()
        if first is None or first.assessor_id == actor.pk:
            raise ReviewError("The second opinion must come from someone other than the first assessor.")
        recorded = _record_assessment(case, actor, Assessment.Kind.SECOND, assessment)
        if first.verdict_id == recorded.verdict_id:
            _conclude(case, recorded, actor)
        else:
            _move(case, S.AWAITING_DECISION, actor=actor, action=audit.Action.CASE_ASSESSMENTS_DISAGREE,
                  data={"first": first.verdict.code, "second": recorded.verdict.code}, **UNCLAIMED)
        return recorded
    raise ReviewError(f"A case that is {case.get_status_display().lower()} is not waiting for an assessment.")


@transaction.atomic
def decide_case(case_id: int, *, actor: Any, assessment: AssessmentInput) -> Assessment:
    """A supervisor settles a disagreement between two assessments; their decision stands."""
    case = _locked(case_id, actor, SUPERVISE, supervise=True)
    if case.status != S.AWAITING_DECISION:
        raise ReviewError("Only a case whose assessments disagree waits for a supervisor's decision.")
    if case.assessments.filter(assessor=actor).exists():
        raise ReviewError("You gave one of the assessments that disagree: another supervisor decides.")
    recorded = _record_assessment(case, actor, Assessment.Kind.DECISION, assessment)
    audit.record(actor=actor, action=audit.Action.CASE_DECIDED, target=case, case_id=case.pk,
                 data={"case": case.reference, "verdict": assessment.verdict.code, "assessment": recorded.pk})
    _conclude(case, recorded, actor)
    return recorded


def _record_assessment(case: Case, actor: Any, kind: str, given: AssessmentInput) -> Assessment:
    _validate(given)
    recorded = Assessment.objects.create(
        case=case, assessor=actor, kind=kind, verdict=given.verdict, media_type=given.media_type,
        age_group=given.age_group, gender=given.gender, site_type=given.site_type, commercial=given.commercial,
        clause=given.clause, rationale=given.rationale.strip(),
    )
    classification = {name: option.code for name in ("media_type", "age_group", "gender", "site_type")
                      if (option := getattr(given, name)) is not None}
    audit.record(actor=actor, action=audit.Action.CASE_ASSESSED, target=recorded, case_id=case.pk,
                 data={"case": case.reference, "kind": kind, "verdict": given.verdict.code,
                       "clause": given.clause.code if given.clause else "", "commercial": given.commercial,
                       **classification})
    return recorded


def _validate(given: AssessmentInput) -> None:
    verdict = given.verdict
    if not verdict.active:
        raise ReviewError(f"The verdict “{verdict.label}” is no longer in use.")
    for name in ("media_type", "age_group", "gender", "site_type"):
        option = getattr(given, name)
        if option is not None and (option.field != name or not option.active):
            raise ReviewError(f"“{option.label}” is not a {ClassificationOption.Field(name).label.lower()}.")
    if verdict.outcome == Verdict.Outcome.ILLEGAL and (given.media_type is None or given.age_group is None):
        raise ReviewError("An illegal verdict needs the media type and the apparent age group.")
    if verdict.needs_clause:
        if given.clause is None:
            raise ReviewError(f"Choose the clause of {verdict.label.lower()} that the verdict relies on.")
        if given.clause.jurisdiction != verdict.jurisdiction or not given.clause.active:
            raise ReviewError(f"Clause {given.clause.code} is not part of {verdict.label.lower()}.")
    elif given.clause is not None:
        raise ReviewError(f"The verdict “{verdict.label}” relies on no clause.")
    if len(given.rationale) > 1000:
        raise ReviewError("Keep the rationale under 1,000 characters.")


def _conclude(case: Case, assessment: Assessment, actor: Any) -> None:
    verdict = assessment.verdict
    data = {"verdict": verdict.code, "assessment": assessment.pk}
    if verdict.outcome == Verdict.Outcome.ILLEGAL:
        _move(case, S.CONFIRMED, actor=actor, action=audit.Action.CASE_CONFIRMED, data=data, **UNCLAIMED)
        _move(case, S.ACTIONING, actor=actor, action=audit.Action.CASE_ACTIONING)
        from takedown.services import action_case  # takedown builds on the life cycle, not the other way round

        action_case(case, actor=actor)
    else:
        _move(case, CLOSING[verdict.outcome], actor=actor, action=audit.Action.CASE_CLOSED, data=data,
              closed_at=timezone.now(), close_reason=verdict.label, **UNCLAIMED)


# --- supervision -------------------------------------------------------------------------------------------


def _supervises(actor: Any, case: Case) -> bool:
    return actor.has_perm(SUPERVISE) and case.queue_id in selectors.supervised_queue_ids(actor)


@transaction.atomic
def close_duplicates(case_ids: Iterable[int], *, actor: Any, duplicate_of: Case, reason: str = "") -> list[Case]:
    """Close cases that are duplicates of another (the same material at URLs normalisation did not join)."""
    ids = sorted(set(case_ids) - {duplicate_of.pk})
    if not ids:
        raise ReviewError("Choose at least one case other than the one they duplicate.")
    # All of them locked in id order, the original too: two supervisors closing overlapping sets cannot deadlock.
    locked = {case_id: _locked(case_id, actor, SUPERVISE, supervise=True)
              for case_id in sorted({*ids, duplicate_of.pk})}
    original = locked[duplicate_of.pk]
    if original.duplicate_of_id is not None:
        raise ReviewError(f"{original.reference} is itself closed as a duplicate: choose the case it duplicates.")
    closed = []
    for case_id in ids:
        case = locked[case_id]
        if case.status not in REVIEW_STATUSES:
            raise ReviewError(f"{case.reference} is {case.get_status_display().lower()}: only a case in review "
                              "can be closed as a duplicate.")
        _move(case, S.CLOSED, actor=actor, action=audit.Action.CASE_CLOSED_AS_DUPLICATE,
              data={"duplicate_of": original.reference, "reason": _reason(reason, required=False)},
              closed_at=timezone.now(), close_reason=f"Duplicate of {original.reference}", duplicate_of=original,
              **UNCLAIMED)
        closed.append(case)
    return closed


@transaction.atomic
def reopen_case(case_id: int, *, actor: Any, reason: str) -> Case:
    """A supervisor sends a closed case back to the queue for a fresh review."""
    case = _locked(case_id, actor, SUPERVISE, supervise=True)
    if case.closed_at is None:
        raise ReviewError("The case is open.")
    try:
        with transaction.atomic():
            _move(case, S.RECEIVED, actor=actor, action=audit.Action.CASE_REOPENED,
                  data={"reason": _reason(reason)}, closed_at=None, close_reason="", duplicate_of=None)
    except IntegrityError:
        other = Case.objects.filter(url_key=case.url_key, closed_at__isnull=True).values_list("reference", flat=True)
        raise ReviewError(f"The URL has an open case already ({', '.join(other)}): work that one.") from None
    return case


def _reason(reason: str, *, required: bool = True) -> str:
    reason = (reason or "").strip()
    if required and not reason:
        raise ReviewError("Give a reason: it goes into the case's history.")
    if len(reason) > 500:
        raise ReviewError("Keep the reason under 500 characters.")
    return reason


@transaction.atomic
def reveal_reporter_contact(report_id: int, *, actor: Any, reason: str, case_id: int | None = None) -> str:
    """Decrypt a reporter's contact for a user allowed to see it; every reveal is audited with its reason."""
    from evidence.crypto import open_sealed
    from evidence.keys import keyring_from_settings
    from reports.intake import contact_aad

    if not actor.has_perm(REVEAL_CONTACT):
        raise PermissionDenied
    report = Report.objects.filter(pk=report_id, cases__queue_id__in=selectors.readable_queue_ids(actor)).first()
    if report is None:
        raise Http404("No such report.")
    if report.contact_sealed is None:
        raise ReviewError("The reporter chose to stay anonymous.")
    text = _reason(reason)
    audit.record(actor=actor, action=audit.Action.REPORTER_CONTACT_REVEALED, target=report, case_id=case_id,
                 data={"report": report.reference, "reason": text})
    return open_sealed(bytes(report.contact_sealed), aad=contact_aad(report.reference),
                       keyring=keyring_from_settings()).decode()


def note_case_viewed(case: Case, *, actor: Any) -> None:
    """An auditor (who reads every queue but works none) opened the case: that reading is on the record too."""
    if actor.has_perm("reports.view_all_cases") and case.queue_id not in selectors.queue_ids_for(actor):
        with transaction.atomic():
            audit.record(actor=actor, action=audit.Action.CASE_VIEWED, target=case, case_id=case.pk,
                         data={"case": case.reference})


# --- hosting trace ---------------------------------------------------------------------------------------------


@transaction.atomic
def request_trace(case_id: int, *, actor: Any) -> Case:
    """Trace the case's host again (DNS and network lookup run in a task, after commit)."""
    case = _locked(case_id, actor, WORK)
    audit.record(actor=actor, action=audit.Action.CASE_TRACE_REQUESTED, target=case, case_id=case.pk,
                 data={"case": case.reference})
    schedule_trace(case.pk)
    return case


def schedule_trace(case_id: int) -> None:
    from reports.tasks import trace_case_task

    transaction.on_commit(lambda: trace_case_task.delay(case_id))


@transaction.atomic
def record_trace(case_id: int, trace: Any) -> Any:
    """Store a finished trace, update where the case is hosted, and move it to its country's queue."""
    from reports.models import HostingTrace
    from takedown.models import HostingNetwork

    case = Case.objects.select_for_update().get(pk=case_id)
    row = HostingTrace.objects.create(case=case, host=trace.host, outcome=trace.outcome, detail=trace.detail,
                                      **{k: v for k, v in trace.to_json().items()
                                         if k in ("cname_chain", "addresses", "source", "data_date")})
    primary = trace.primary
    changes: dict[str, Any] = {"traced_at": row.traced_at, "hosting_country": "", "hosting_asn": None,
                               "hosting_network": "", "hosting_partner": None}
    if primary is not None:
        network = HostingNetwork.objects.filter(asn=primary.asn).select_related("partner").first()
        changes |= {"hosting_country": primary.country, "hosting_asn": primary.asn,
                    "hosting_network": primary.network[:200], "hosting_partner": network.partner if network else None}
    queue = _queue_for_country(case, changes["hosting_country"]) if case.assignee_id is None else None
    if queue is not None:
        changes["queue"] = queue
    _move(case, None, actor="system", action=audit.Action.CASE_TRACED,
          data={"outcome": trace.outcome, "country": changes["hosting_country"], "asn": changes["hosting_asn"],
                "addresses": len(trace.addresses), "source": trace.source, "queue": case.queue_id
                if queue is None else queue.pk}, **changes)
    return row


def _queue_for_country(case: Case, country: str) -> Queue | None:
    """A case still in the default queue moves to the queue that takes its hosting country, if one does.

    A case someone holds stays where it is: moving it could take it out of its holder's queues mid-review."""
    if not country or not case.queue.is_default:
        return None
    for queue in Queue.objects.exclude(pk=case.queue_id):
        if country in queue.hosting_countries:
            return queue
    return None


# --- queue access (admins) ---------------------------------------------------------------------------------------

QUEUE_PERMS = ("work_queue", "supervise_queue")


@transaction.atomic
def set_queue_access(queue: Queue, *, actor: Any, perm: str, users: Iterable[Any]) -> tuple[list[int], list[int]]:
    """Make exactly `users` hold `perm` (work_queue or supervise_queue) on the queue; audit each grant and revoke.

    Returns the ids granted and the ids revoked. A user who loses a queue keeps no claim in it: their cases
    there go back to the queue.
    """
    from guardian.shortcuts import assign_perm, get_users_with_perms, remove_perm

    if perm not in QUEUE_PERMS:
        raise ValueError(perm)
    wanted = {user.pk: user for user in users}
    current = {user.pk: user for user in get_users_with_perms(queue, only_with_perms_in=[perm],
                                                               with_group_users=False)}
    granted = sorted(set(wanted) - set(current))
    revoked = sorted(set(current) - set(wanted))
    for user_id in granted:
        assign_perm(f"reports.{perm}", wanted[user_id], queue)
    for user_id in revoked:
        remove_perm(f"reports.{perm}", current[user_id], queue)
    entries = [audit.Entry(actor, audit.Action.QUEUE_ACCESS_GRANTED, target=queue, data={"user": i, "perm": perm})
               for i in granted]
    entries += [audit.Entry(actor, audit.Action.QUEUE_ACCESS_REVOKED, target=queue, data={"user": i, "perm": perm})
                for i in revoked]
    if entries:
        audit.record_many(entries)
    for case in Case.objects.select_for_update().filter(queue=queue, assignee_id__in=revoked).order_by("pk"):
        if queue.pk not in selectors.queue_ids_for_fresh(case.assignee):
            to = S.RECEIVED if case.status == S.IN_REVIEW else None
            _move(case, to, actor=actor, action=audit.Action.CASE_RELEASED, data={"queue_access_revoked": True},
                  **UNCLAIMED)
    return granted, revoked
