"""A case's timeline: every audit event about the case, its reports and its notices, in order, in plain words.

`case_timeline()` is the one selector the auditor's page and every export (CSV, JSON Lines, PDF, the hashed
bundle) read. Each entry keeps the event's chain fields, so an export can be checked against the chain.
People are named by pseudonym unless the export is internal (`name_analysts=True`, chosen at export time).

The events are read as rows (`EventRow`), a chunk at a time, not as model instances: building an AuditEvent per
event was most of the cost of exporting a million of them. Names and labels are looked up once each.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from django.db.models import Q, QuerySet

from ntd.audit import Action, ActorType, AuditEvent

CHUNK = 2000
# A timeline entry as a flat record: the exports' columns, in order (TimelineEntry.row() and .cells()).
COLUMNS = ("seq", "at", "actor", "action", "description", "target", "case_id", "hash", "prev_hash")


class EventRow(NamedTuple):
    """An audit event as the timeline reads it: AuditEvent's fields, by the same names, read as a row."""

    seq: int
    at: datetime
    actor_type: str
    actor_id: str
    action: str
    target_type: str
    target_id: str
    case_id: int | None
    data: dict[str, Any]
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of a timeline, in words, with the event it says (an EventRow, or an AuditEvent)."""

    seq: int
    at: datetime
    actor: str  # "A-7K3M2" (pseudonym), "name (A-7K3M2)" internally, a partner's name, or "ntd"
    action: str
    description: str  # the event in plain words
    event: AuditEvent | EventRow  # the event itself: its chain fields and hashes

    def cells(self) -> tuple[Any, ...]:
        """The entry's values in the order of COLUMNS (what a CSV row holds)."""
        e = self.event
        return (self.seq, _iso(self.at), self.actor, self.action, self.description,
                f"{e.target_type}:{e.target_id}".strip(":"), e.case_id, e.hash, e.prev_hash)

    def row(self) -> dict[str, Any]:
        """The entry as a flat, JSON-safe record (the exports' columns)."""
        return dict(zip(COLUMNS, self.cells(), strict=True))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def case_events(case: Any) -> QuerySet[AuditEvent]:
    """Events about the case, about the reports merged into it, and about its notices, in chain order."""
    report_ids = [str(pk) for pk in case.reports.values_list("pk", flat=True).distinct()]
    about = Q(case_id=case.pk) | Q(target_type="reports.report", target_id__in=report_ids)
    notices = getattr(case, "notices", None)  # the notices issue adds them; their events join the timeline
    if notices is not None:
        notice_ids = [str(pk) for pk in notices.values_list("pk", flat=True)]
        about |= Q(target_type="takedown.notice", target_id__in=notice_ids)
    return AuditEvent.objects.filter(about).order_by("seq")


def event_rows(events: QuerySet[AuditEvent]) -> Iterator[EventRow]:
    """The events in chain order as rows, streamed from the database in chunks (flat memory for long runs)."""
    rows = events.order_by("seq").values_list(*EventRow._fields).iterator(chunk_size=CHUNK)
    return map(EventRow._make, rows)


def case_timeline(case: Any, *, name_analysts: bool = False) -> Iterator[TimelineEntry]:
    """The case's timeline, streamed from the database in chunks (flat memory for long ones)."""
    return log_timeline(case_events(case), name_analysts=name_analysts)


def log_timeline(events: QuerySet[AuditEvent], *, name_analysts: bool = False) -> Iterator[TimelineEntry]:
    """Any run of the audit log (a time range, a filter) as timeline entries."""
    return map(Describer(name_analysts=name_analysts).entry, event_rows(events))


class Describer:
    """Turns events into words, looking names up once each (people, partners, verdicts)."""

    def __init__(self, *, name_analysts: bool) -> None:
        self.name_analysts = name_analysts
        self._actors: dict[tuple[str, str], str] = {}
        self._verdicts: dict[str, str] | None = None

    def entry(self, event: AuditEvent | EventRow) -> TimelineEntry:
        actor = self.actor(event.actor_type, event.actor_id)
        return TimelineEntry(event.seq, event.at, actor, event.action, self._describe(event, actor), event)

    def actor(self, actor_type: str, actor_id: str) -> str:
        key = (actor_type, actor_id)
        if key not in self._actors:
            self._actors[key] = self._look_up(actor_type, actor_id)
        return self._actors[key]

    def _look_up(self, actor_type: str, actor_id: str) -> str:
        if actor_type == ActorType.SYSTEM or not actor_id:
            return "ntd"
        if actor_type == ActorType.PARTNER:
            from takedown.models import Partner

            name = Partner.objects.filter(pk=actor_id).values_list("name", flat=True).first()
            return name or f"partner {actor_id}"
        from ntd.models import User

        user = User.objects.filter(pk=actor_id).values("username", "pseudonym").first()
        if user is None:
            return f"user {actor_id}"
        return f"{user['username']} ({user['pseudonym']})" if self.name_analysts else user["pseudonym"]

    def verdict(self, code: str) -> str:
        if self._verdicts is None:
            from reports.models import Verdict

            self._verdicts = dict(Verdict.objects.values_list("code", "label"))
        return self._verdicts.get(code, code)

    def describe(self, event: AuditEvent | EventRow) -> str:
        return self._describe(event, self.actor(event.actor_type, event.actor_id))

    def _describe(self, event: AuditEvent | EventRow, actor: str) -> str:
        d = event.data or {}
        label = _LABELS.get(event.action, event.action)
        match event.action:
            case Action.REPORT_RECEIVED:
                return (f"Report {d.get('reference', '')} received ({d.get('channel', '')}, from "
                        f"{d.get('source', '')}) naming {d.get('urls', 0)} URL(s)")
            case Action.CASE_CREATED:
                return f"Case {d.get('case', '')} opened by report {d.get('report', '')}" + (
                    ", a known URL" if d.get("known_url") else "")
            case Action.CASE_REPORT_JOINED:
                return f"Report {d.get('report', '')} joined case {d.get('case', '')}"
            case Action.CASE_ASSESSED:
                clause = f", clause {d['clause']}" if d.get("clause") else ""
                kind = {"second": "Second opinion", "decision": "Decision"}.get(d.get("kind", ""), "Assessed")
                return f"{kind}: {self.verdict(d.get('verdict', '')).lower()}{clause}, by {actor}"
            case Action.CASE_CLAIMED:
                return f"Claimed by {actor}"
            case Action.CASE_RELEASED:
                return f"Released to the queue by {actor}"
            case Action.CASE_REASSIGNED:
                return (f"Reassigned by {actor} to {self.actor(ActorType.USER, str(d.get('to_user', '')))}: "
                        f"{d.get('reason', '')}")
            case Action.CASE_REOPENED | Action.CASE_CLOSED_AS_DUPLICATE:
                extra = f" of {d['duplicate_of']}" if d.get("duplicate_of") else ""
                reason = f": {d['reason']}" if d.get("reason") else ""
                return f"{label}{extra} by {actor}{reason}"
            case Action.REPORTER_CONTACT_REVEALED:
                return f"Contact of the reporter of {d.get('report', '')} revealed to {actor}: {d.get('reason', '')}"
            case Action.CASE_TRACED:
                where = d.get("country") or "unknown country"
                network = f", AS{d['asn']}" if d.get("asn") else ""
                return f"Hosting traced ({d.get('outcome', '')}): {where}{network}"
            case Action.CASE_VIEWED | Action.TIMELINE_EXPORTED:
                return f"{label} by {actor}"
        moved = f" ({d['from']} → {d['to']})" if d.get("from") and d.get("to") and d["from"] != d["to"] else ""
        return f"{label}{moved}"


# An action's label, or the action itself when it is not (or no longer) one of Action's.
_LABELS = {action.value: str(action.label) for action in Action}
