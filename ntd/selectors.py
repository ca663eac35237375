from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from ntd.audit import ActorType, AuditEvent
from ntd.models import VerificationRun


def recent_audit_events(*, limit: int = 50) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.order_by("-seq")[:limit]


@dataclass(frozen=True)
class AuditFilters:
    since: datetime | None = None
    until: datetime | None = None
    actor: str = ""  # a username, a pseudonym, a partner's name, or "system"
    action: str = ""
    case: str = ""  # a case reference
    target_type: str = ""
    target_id: str = ""
    before: int | None = None  # keyset: events older than this sequence number


@dataclass(frozen=True)
class AuditPage:
    events: list[AuditEvent]
    older: int | None  # the `before` of the next page, None on the last
    unmatched: str = ""  # a filter that names nothing (an unknown actor or case): no events, and why


def search_audit_log(filters: AuditFilters, *, size: int = 100) -> AuditPage:
    """Events matching every filter given, newest first, a page at a time by sequence number."""
    events = AuditEvent.objects.all()
    if filters.since:
        events = events.filter(at__gte=filters.since)
    if filters.until:
        events = events.filter(at__lte=filters.until)
    if filters.action:
        events = events.filter(action=filters.action)
    if filters.target_type:
        events = events.filter(target_type=filters.target_type)
    if filters.target_id:
        events = events.filter(target_id=filters.target_id)
    if filters.actor:
        actor = _actor_filter(filters.actor)
        if actor is None:
            return AuditPage([], None, f"No user, partner or “system” is called “{filters.actor}”.")
        events = events.filter(actor)
    if filters.case:
        from reports.models import Case
        from reports.references import clean_reference

        case_id = Case.objects.filter(reference=clean_reference(filters.case)).values_list("pk", flat=True).first()
        if case_id is None:
            return AuditPage([], None, f"No case has the reference “{filters.case}”.")
        events = events.filter(case_id=case_id)
    if filters.before:
        events = events.filter(seq__lt=filters.before)
    page = list(events.order_by("-seq")[: size + 1])
    return AuditPage(page[:size], page[size - 1].seq if len(page) > size else None)


def _actor_filter(text: str) -> Q | None:
    from ntd.models import User
    from takedown.models import Partner

    if text.lower() in ("system", "ntd"):
        return Q(actor_type=ActorType.SYSTEM)
    user = User.objects.filter(Q(username=text) | Q(pseudonym=text.upper())).values_list("pk", flat=True).first()
    if user is not None:
        return Q(actor_type=ActorType.USER, actor_id=str(user))
    partner = Partner.objects.filter(name__iexact=text).values_list("pk", flat=True).first()
    if partner is not None:
        return Q(actor_type=ActorType.PARTNER, actor_id=str(partner))
    return None


def describe(events: list[AuditEvent], *, with_names: bool) -> list[Any]:
    from ntd.timeline import Describer

    words = Describer(name_analysts=with_names)
    return [words.entry(event) for event in events]


def verification_runs(*, limit: int = 20) -> list[VerificationRun]:
    """The latest verifications of the audit chain, newest first, with who started them."""
    return list(VerificationRun.objects.select_related("started_by").order_by("-pk")[:limit])


def failed_verification() -> VerificationRun | None:
    """The latest verification that reached a verdict, if that verdict is "broken" (the banner's run)."""
    latest = (VerificationRun.objects.select_related("started_by")
              .filter(status__in=[VerificationRun.Status.PASSED, VerificationRun.Status.FAILED])
              .order_by("-pk").first())
    return latest if latest is not None and latest.status == VerificationRun.Status.FAILED else None
