"""Notices: routing a confirmed case, issuing and grouping notices, their delivery outcome, the police
authorisation gate and supervisor tasks. One function per state change, each in one transaction with its
audit events; what must happen afterwards (delivery, e-mails to supervisors) is scheduled after commit.

Acknowledgement, removal and disputes (the recipient's answers) are in `takedown.responses`; delivery itself
(rendering, SMTP, webhooks, retries) is in `takedown.delivery`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from ntd import audit
from reports import services as life_cycle
from reports.models import Case
from takedown import routing
from takedown.models import (
    MATERIAL_KINDS,
    Notice,
    NoticeCase,
    NoticeKind,
    OutboxEntry,
    Partner,
    PoliceAuthorisation,
    RoutingRule,
    SupervisorTask,
)

logger = logging.getLogger(__name__)
S = Case.Status
OUT = (Notice.State.SENT, Notice.State.ACKNOWLEDGED, Notice.State.ACTIONED)  # a notice that has gone out
SUPERVISE = "reports.supervise_case"


class NoticeError(Exception):
    """A request about notices that cannot be carried out as asked; the message says why."""


# --- routing a confirmed case ------------------------------------------------------------------------------


def action_case(case: Case, *, actor: Any) -> routing.Route:
    """Decide who hears about a case that has just reached `actioning`, and tell them.

    Runs in the confirming transaction, with the case locked. A child at immediate risk goes to the national
    police first, at once; notices that need police consent wait in `awaiting_authorisation`; what routing
    cannot decide becomes a supervisor task.
    """
    facts = routing.Facts(hosting_country=case.hosting_country or "", asn=case.hosting_asn,
                          child_at_risk=case.child_at_risk)
    directory = routing.load_directory()
    decided = routing.route(facts, routing.load_rules(), directory)
    audit.record(actor=actor, action=audit.Action.CASE_ROUTED, target=case, case_id=case.pk, data={
        "case": case.reference,
        "recipients": [{"partner": r.partner_id, "kind": r.kind, "immediate": r.immediate,
                        "needs_authorisation": r.needs_authorisation} for r in decided.recipients],
        "supervisor": list(decided.supervisor_reasons),
    })
    for reason in decided.supervisor_reasons:
        open_supervisor_task(SupervisorTask.Kind.NO_ROUTE, case=case, detail=reason)
    partners = Partner.objects.in_bulk({r.partner_id for r in decided.recipients})
    gated = [r for r in decided.recipients if r.needs_authorisation]
    for recipient in decided.recipients:  # in order: a child at risk's police referral comes first
        if not recipient.needs_authorisation:
            issue_notice(partner=partners[recipient.partner_id], kind=recipient.kind, cases=[case], actor=actor,
                         immediate=recipient.immediate)
    if gated:
        _request_authorisation(case, gated, directory, actor=actor)
    return decided


# --- issuing and grouping ----------------------------------------------------------------------------------


def issue_notice(*, partner: Partner, kind: str, cases: Sequence[Case], actor: Any, immediate: bool = False,
                 payload: dict[str, Any] | None = None,
                 authorisation: PoliceAuthorisation | None = None) -> Notice:
    """Put the cases into a notice to `partner`, in the caller's transaction; delivery starts after commit.

    A case confirmed while a notice of the same kind to the same partner is still open (within
    NOTICE_GROUPING_SECONDS of its first case) joins that notice: one notice per host covering all its URLs.
    A case already in a notice of this kind to this partner is not added again. Immediate notices (a child at
    risk, answers to a recipient) are never grouped and go at once.
    """
    if not partner.is_active:
        raise NoticeError(f"{partner} is not active: no notice can be sent to it.")
    cases = list(cases)
    if not cases and kind in MATERIAL_KINDS:
        raise NoticeError("A notice about the material needs at least one case.")
    now = timezone.now()
    groupable = not immediate and kind in MATERIAL_KINDS and authorisation is None and payload is None
    notice = None
    if groupable:
        _serialise_issuing(partner.pk, kind)
        notice = (Notice.objects.select_for_update()
                  .filter(partner=partner, kind=kind, state=Notice.State.QUEUED, sealed_at=None, immediate=False,
                          authorisation=None, due_at__gt=now)
                  .order_by("created_at").first())
    if kind in (*MATERIAL_KINDS, NoticeKind.AUTHORISATION_REQUEST):
        already = set(NoticeCase.objects.filter(case__in=cases, partner=partner, kind=kind)
                      .values_list("case_id", flat=True))
        cases = [case for case in cases if case.pk not in already]
        if not cases and already:
            return NoticeCase.objects.filter(case_id__in=already, partner=partner, kind=kind).first().notice
    if notice is None:
        due = now if not groupable else now + timedelta(seconds=settings.NOTICE_GROUPING_SECONDS)
        notice = Notice.objects.create(
            partner=partner, kind=kind, channel=_channel_for(partner, kind), immediate=not groupable,
            language=_language_for(partner), issued_by=actor if getattr(actor, "is_authenticated", False) else None,
            created_at=now, due_at=due, payload=payload or {}, authorisation=authorisation,
        )
        OutboxEntry.objects.create(notice=notice, due_at=due)
        audit.record(actor=actor, action=audit.Action.NOTICE_ISSUED, target=notice,
                     case_id=cases[0].pk if len(cases) == 1 else None,
                     data={"notice": notice.reference, "partner": partner.pk, "kind": kind,
                           "cases": [c.reference for c in cases], "due_at": due.isoformat()})
        transaction.on_commit(lambda: publish(notice.pk, due))
    else:
        for case in cases:
            audit.record(actor=actor, action=audit.Action.NOTICE_CASE_ADDED, target=notice, case_id=case.pk,
                         data={"notice": notice.reference, "case": case.reference})
    NoticeCase.objects.bulk_create([NoticeCase(notice=notice, case=case, partner=partner, kind=kind, added_at=now)
                                    for case in cases])
    return notice


def _serialise_issuing(partner_id: int, kind: str) -> None:
    """Two confirmations for the same recipient at once must find each other's open notice, not open two."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"ntd.notice:{partner_id}:{kind}"])


def _channel_for(partner: Partner, kind: str) -> str:
    """The channel as it looks now; delivery decides for good when it seals the notice (business hours)."""
    if partner.runs_ntd and kind in (NoticeKind.HOTLINE_REFERRAL, NoticeKind.STATUS_UPDATE):
        return Notice.Channel.NTD
    contact = partner.contacts.filter(is_active=True).order_by("out_of_hours", "pk").first()
    return contact.channel if contact is not None else Notice.Channel.EMAIL


def _language_for(partner: Partner) -> str:
    contact = partner.contacts.filter(is_active=True).exclude(language="").order_by("out_of_hours", "pk").first()
    if contact is not None:
        return contact.language
    return (partner.languages.split(",")[0] if partner.languages else "") or "en"


def publish(notice_id: int, due_at: datetime | None = None) -> None:
    """Hand the notice's delivery to a worker. If the broker cannot take it now, the relay will."""
    from takedown.tasks import deliver_notice_task

    try:
        deliver_notice_task.apply_async((notice_id,), eta=due_at)
    except Exception:  # the broker is down: the outbox entry stays, and the relay publishes it later
        logger.exception("could not publish the delivery of notice %s; the relay will retry", notice_id)
    else:
        OutboxEntry.objects.filter(notice_id=notice_id, done_at=None).update(published_at=timezone.now())


# --- the outcome of delivery -------------------------------------------------------------------------------


@transaction.atomic
def mark_sent(notice_id: int, *, recipient_reference: str = "") -> Notice | None:
    """The notice reached its recipient. Cases whose notices are now all out wait for removal."""
    notice = Notice.objects.select_for_update().get(pk=notice_id)
    if notice.state != Notice.State.QUEUED:
        return None  # marked already (a repeated delivery after a crash)
    now = timezone.now()
    notice.state = Notice.State.SENT
    notice.sent_at = now
    notice.deadline_at = notice.deadline_at or now + timedelta(hours=settings.NOTICE_DEADLINE_HOURS)
    notice.recipient_reference = recipient_reference[:128]
    notice.save(update_fields=["state", "sent_at", "deadline_at", "recipient_reference"])
    OutboxEntry.objects.filter(notice=notice).update(done_at=now)
    audit.record(actor=None, action=audit.Action.NOTICE_SENT, target=notice,
                 data={"notice": notice.reference, "channel": notice.channel, "attempts": notice.attempts})
    if notice.kind in MATERIAL_KINDS:
        for case_id in notice.items.order_by("case_id").values_list("case_id", flat=True):
            _await_removal_if_all_out(case_id)
    return notice


def _await_removal_if_all_out(case_id: int) -> None:
    case = life_cycle.lock_case(case_id)
    if case.status != S.ACTIONING:
        return
    waiting = NoticeCase.objects.filter(case_id=case_id, kind__in=MATERIAL_KINDS).exclude(notice__state__in=OUT)
    pending_consent = case.authorisations.filter(state__in=[PoliceAuthorisation.State.PENDING,
                                                            PoliceAuthorisation.State.HELD,
                                                            PoliceAuthorisation.State.OVERDUE])
    if waiting.exists() or pending_consent.exists():
        return
    life_cycle.apply_transition(case, S.AWAITING_REMOVAL, actor=None, action=audit.Action.CASE_AWAITING_REMOVAL)


@transaction.atomic
def mark_failed(notice_id: int, *, reason: str) -> Notice | None:
    """The notice could not be delivered (after its last try, or at once for a permanent error)."""
    notice = Notice.objects.select_for_update().get(pk=notice_id)
    if notice.state != Notice.State.QUEUED:
        return None
    now = timezone.now()
    notice.state = Notice.State.FAILED
    notice.failed_at = now
    notice.last_error = reason[:500]
    notice.save(update_fields=["state", "failed_at", "last_error"])
    OutboxEntry.objects.filter(notice=notice).update(done_at=now)
    audit.record(actor=None, action=audit.Action.NOTICE_FAILED, target=notice,
                 data={"notice": notice.reference, "reason": notice.last_error, "attempts": notice.attempts})
    first = notice.items.select_related("case").first()
    open_supervisor_task(SupervisorTask.Kind.NOTICE_FAILED, notice=notice, case=first.case if first else None,
                         detail=f"{notice.get_kind_display()} {notice.reference} to {notice.partner} could not "
                                f"be delivered: {notice.last_error}")
    return notice


# --- supervisor tasks ---------------------------------------------------------------------------------------


def open_supervisor_task(kind: str, *, detail: str, case: Case | None = None,
                         notice: Notice | None = None) -> SupervisorTask:
    """Tell a supervisor: a task on their dashboard, and an e-mail to the supervisors of the case's queue."""
    task = SupervisorTask.objects.create(kind=kind, case=case, notice=notice, detail=detail[:500])
    audit.record(actor=None, action=audit.Action.SUPERVISOR_TASK_OPENED, target=task,
                 case_id=case.pk if case else None,
                 data={"kind": kind, "case": case.reference if case else "",
                       "notice": notice.reference if notice else ""})
    transaction.on_commit(lambda: _enqueue_task_mail(task.pk))
    return task


def _enqueue_task_mail(task_id: int) -> None:
    from takedown.tasks import mail_supervisors_task

    try:
        mail_supervisors_task.delay(task_id)
    except Exception:  # the task is on the dashboard either way
        logger.exception("could not queue the e-mail about supervisor task %s", task_id)


def supervisor_addresses(task: SupervisorTask) -> list[str]:
    """The supervisors of the case's queue (every supervisor when there is no case) with an e-mail address."""
    from guardian.shortcuts import get_users_with_perms

    from ntd import roles
    from ntd.models import User

    if task.case is not None:
        users = get_users_with_perms(task.case.queue, only_with_perms_in=["supervise_queue"], with_group_users=True)
        users = users.filter(groups__name=roles.SUPERVISOR)
    else:
        users = User.objects.filter(groups__name=roles.SUPERVISOR)
    return sorted(set(users.filter(is_active=True).exclude(email="").values_list("email", flat=True)))


def mail_supervisors(task_id: int) -> int:
    """E-mail the supervisors about a task: what happened, with references only (no case URL, no names)."""
    task = SupervisorTask.objects.select_related("case", "notice").get(pk=task_id)
    addresses = supervisor_addresses(task)
    if not addresses:
        logger.warning("supervisor task %s: no supervisor with an e-mail address", task_id)
        return 0
    reference = task.case.reference if task.case else (task.notice.reference if task.notice else "")
    EmailMessage(
        subject=f"[{settings.NTD_DEPLOYMENT_NAME}] {task.get_kind_display()}: {reference}",
        body=f"{task.detail}\n\nOpen the team page: {settings.NTD_PUBLIC_URL}/cases/team/\n",
        from_email=settings.DEFAULT_FROM_EMAIL, to=addresses,
        headers={"Message-ID": f"<supervisor-task-{task.pk}@{_mail_domain()}>"},
    ).send()
    return len(addresses)


def _mail_domain() -> str:
    from urllib.parse import urlsplit

    return urlsplit(settings.NTD_PUBLIC_URL).hostname or "ntd.invalid"


@transaction.atomic
def resolve_supervisor_task(task_id: int, *, actor: Any, note: str = "") -> SupervisorTask:
    if not actor.has_perm(SUPERVISE):
        raise PermissionDenied
    task = SupervisorTask.objects.select_for_update(of=("self",)).select_related("case").get(pk=task_id)
    if task.case is not None and task.case.queue_id not in life_cycle.selectors.supervised_queue_ids(actor):
        raise PermissionDenied
    if task.resolved_at is None:
        task.resolved_at = timezone.now()
        task.resolved_by = actor
        task.save(update_fields=["resolved_at", "resolved_by"])
        audit.record(actor=actor, action=audit.Action.SUPERVISOR_TASK_RESOLVED, target=task,
                     case_id=task.case_id, data={"kind": task.kind, "note": note[:500]})
    return task


@transaction.atomic
def send_notice_by_hand(case_id: int, *, partner: Partner, kind: str, actor: Any) -> Notice:
    """A supervisor names the recipient routing could not find (or one more): the notice goes like any other."""
    if kind not in MATERIAL_KINDS:
        raise NoticeError("Choose a takedown notice, a referral or information to police.")
    case = life_cycle.lock_case(case_id)
    if not actor.has_perm(SUPERVISE) or case.queue_id not in life_cycle.selectors.supervised_queue_ids(actor):
        raise PermissionDenied
    if case.status not in (S.ACTIONING, S.AWAITING_REMOVAL):
        raise NoticeError(f"A case that is {case.get_status_display().lower()} gets no new notices.")
    if NoticeCase.objects.filter(case=case, partner=partner, kind=kind).exists():
        raise NoticeError(f"{partner} already has a {NoticeKind(kind).label.lower()} about this case.")
    notice = issue_notice(partner=partner, kind=kind, cases=[case], actor=actor)
    for task in case.supervisor_tasks.filter(kind=SupervisorTask.Kind.NO_ROUTE, resolved_at=None):
        resolve_supervisor_task(task.pk, actor=actor, note=f"Sent to {partner} by hand.")
    return notice


# --- the police authorisation gate --------------------------------------------------------------------------


def _request_authorisation(case: Case, gated: Iterable[routing.Recipient], directory: routing.Directory, *,
                           actor: Any) -> PoliceAuthorisation | None:
    gated = list(gated)
    police_id = directory.police_by_country.get(directory.own_country)
    if police_id is None:
        open_supervisor_task(SupervisorTask.Kind.NO_ROUTE, case=case,
                             detail="These notices need police authorisation, but no national police partner is "
                                    "configured: nothing was sent to the host.")
        return None
    waits = [r.authorisation_wait_minutes for r in gated]
    fallback = (RoutingRule.Fallback.SEND if all(r.authorisation_fallback == RoutingRule.Fallback.SEND for r in gated)
                else RoutingRule.Fallback.WAIT)
    now = timezone.now()
    request = PoliceAuthorisation.objects.create(
        case=case, police_id=police_id, fallback=fallback, requested_at=now,
        answer_by=now + timedelta(minutes=min(waits)),
        pending=[{"partner": r.partner_id, "kind": r.kind, "immediate": r.immediate} for r in gated],
    )
    life_cycle.apply_transition(case, S.AWAITING_AUTHORISATION, actor=actor,
                                action=audit.Action.CASE_AWAITING_AUTHORISATION,
                                data={"authorisation": request.pk, "answer_by": request.answer_by.isoformat()})
    audit.record(actor=actor, action=audit.Action.AUTHORISATION_REQUESTED, target=request, case_id=case.pk,
                 data={"case": case.reference, "police": police_id, "fallback": fallback,
                       "answer_by": request.answer_by.isoformat(), "pending": request.pending})
    issue_notice(partner=Partner.objects.get(pk=police_id), kind=NoticeKind.AUTHORISATION_REQUEST, cases=[case],
                 actor=actor, immediate=True, authorisation=request)
    return request


def _locked_authorisation(authorisation: PoliceAuthorisation | int, actor: Any) -> PoliceAuthorisation:
    pk = authorisation if isinstance(authorisation, int) else authorisation.pk
    request = PoliceAuthorisation.objects.select_for_update().select_related("case").get(pk=pk)
    if getattr(actor, "audit_actor_type", None) == "partner":
        if actor.pk != request.police_id:
            raise PermissionDenied
    elif not (actor.has_perm(SUPERVISE)
              and request.case.queue_id in life_cycle.selectors.supervised_queue_ids(actor)):
        raise PermissionDenied  # a supervisor may record consent given by phone
    return request


def _release(request: PoliceAuthorisation, *, actor: Any) -> None:
    """The case goes back to actioning and the waiting notices go out."""
    case = life_cycle.lock_case(request.case_id)
    if case.status == S.AWAITING_AUTHORISATION:
        life_cycle.apply_transition(case, S.ACTIONING, actor=actor, action=audit.Action.CASE_ACTIONING,
                                    data={"authorisation": request.pk})
    partners = Partner.objects.in_bulk([item["partner"] for item in request.pending])
    for item in request.pending:
        partner = partners.get(item["partner"])
        if partner is None or not partner.is_active:
            open_supervisor_task(SupervisorTask.Kind.NO_ROUTE, case=case,
                                 detail=f"Authorised, but partner #{item['partner']} is no longer active.")
            continue
        issue_notice(partner=partner, kind=item["kind"], cases=[case], actor=actor,
                     immediate=item.get("immediate", False))
    for task in case.supervisor_tasks.filter(kind__in=[SupervisorTask.Kind.AUTHORISATION_HELD,
                                                       SupervisorTask.Kind.AUTHORISATION_OVERDUE], resolved_at=None):
        task.resolved_at = timezone.now()
        task.save(update_fields=["resolved_at"])
    _await_removal_if_all_out(case.pk)


@transaction.atomic
def authorise(authorisation: PoliceAuthorisation | int, *, actor: Any, note: str = "") -> PoliceAuthorisation:
    """The police consent: the waiting notices go out now."""
    request = _locked_authorisation(authorisation, actor)
    if request.state in (PoliceAuthorisation.State.AUTHORISED, PoliceAuthorisation.State.SENT_WITHOUT):
        return request  # answered already: a second click changes nothing
    request.state = PoliceAuthorisation.State.AUTHORISED
    request.answered_at = timezone.now()
    request.note = note[:2000]
    request.save(update_fields=["state", "answered_at", "note"])
    audit.record(actor=actor, action=audit.Action.AUTHORISATION_GRANTED, target=request, case_id=request.case_id,
                 data={"case": request.case.reference})
    _release(request, actor=actor)
    return request


@transaction.atomic
def hold(authorisation: PoliceAuthorisation | int, *, actor: Any, note: str = "") -> PoliceAuthorisation:
    """The police ask us to hold (an investigation is running): nothing goes to the host; a supervisor knows."""
    request = _locked_authorisation(authorisation, actor)
    if request.state in (PoliceAuthorisation.State.AUTHORISED, PoliceAuthorisation.State.SENT_WITHOUT):
        raise NoticeError("The notices have already gone out; they can no longer be held.")
    if request.state == PoliceAuthorisation.State.HELD:
        return request
    request.state = PoliceAuthorisation.State.HELD
    request.answered_at = timezone.now()
    request.note = note[:2000]
    request.save(update_fields=["state", "answered_at", "note"])
    audit.record(actor=actor, action=audit.Action.AUTHORISATION_HELD, target=request, case_id=request.case_id,
                 data={"case": request.case.reference})
    open_supervisor_task(SupervisorTask.Kind.AUTHORISATION_HELD, case=request.case,
                         detail=f"The police asked to hold the notices about {request.case.reference}.")
    return request


def authorisation_timeouts(now: datetime | None = None, batch: int = 200) -> int:
    """Apply the policy's fallback to requests the police left unanswered past their time; the number handled."""
    now = now or timezone.now()
    handled = 0
    while True:
        with transaction.atomic():
            due = list(PoliceAuthorisation.objects.select_for_update(skip_locked=True).select_related("case")
                       .filter(Q(state=PoliceAuthorisation.State.PENDING), answer_by__lte=now)
                       .order_by("answer_by")[:batch])
            for request in due:
                _time_out(request)
        handled += len(due)
        if len(due) < batch:
            return handled


def _time_out(request: PoliceAuthorisation) -> None:
    send = request.fallback == RoutingRule.Fallback.SEND
    request.state = PoliceAuthorisation.State.SENT_WITHOUT if send else PoliceAuthorisation.State.OVERDUE
    request.save(update_fields=["state"])
    audit.record(actor=None, action=audit.Action.AUTHORISATION_TIMED_OUT, target=request, case_id=request.case_id,
                 data={"case": request.case.reference, "fallback": request.fallback})
    if send:
        _release(request, actor=None)
    else:
        open_supervisor_task(SupervisorTask.Kind.AUTHORISATION_OVERDUE, case=request.case,
                             detail=f"The police did not answer in time about {request.case.reference}; the "
                                    f"notices still wait for their consent.")
