"""The tamper-evident audit log.

Every state change and every access to sensitive data writes one AuditEvent through `record()`, inside
the caller's transaction. Events form a hash chain: each row's hash is SHA-256 over a versioned canonical
serialisation of the row plus the previous row's hash, and sequence numbers are gapless (they are the
primary key, assigned under a lock). The table refuses UPDATE, DELETE and TRUNCATE (PostgreSQL triggers).
Signed checkpoints written outside the database catch what the chain alone cannot: a deleted tail, or a
chain recomputed from scratch by someone with superuser rights. `verify_chain()` checks all of it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pgtrigger
from django.conf import settings
from django.db import connection, models, transaction

from ntd.bulk import insert_rows

HASH_VERSION = 1
GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key: "ntdaudit" read as a signed 64-bit integer.
_CHAIN_LOCK_ID = int.from_bytes(b"ntdaudit", "big", signed=True)
# Keys that must never reach the log: reporter contact and evidence plaintext belong encrypted elsewhere.
FORBIDDEN_DATA_KEYS = frozenset(
    {"email", "contact", "reporter_contact", "ip", "ip_address", "remote_addr", "user_agent", "plaintext",
     "password", "secret", "token"}
)


class Action(models.TextChoices):
    USER_LOGIN = "user.login", "Signed in"
    USER_LOGOUT = "user.logout", "Signed out"
    USER_LOGIN_FAILED = "user.login_failed", "Failed sign-in"
    USER_LOCKED_OUT = "user.locked_out", "Locked out after repeated failures"
    USER_SESSION_EXPIRED = "user.session_expired", "Session expired"
    USER_MFA_ENROLLED = "user.mfa_enrolled", "Enrolled a second factor"
    USER_CREATED = "user.created", "User created"
    ROLES_SYNCED = "roles.synced", "Roles and permissions synchronised"
    AUDIT_CHECKPOINT = "audit.checkpoint", "Audit checkpoint written"
    AUDIT_VERIFIED = "audit.verified", "Audit log verified"
    DEMO_SEEDED = "demo.seeded", "Demo data loaded"
    REPORT_RECEIVED = "report.received", "Report received"
    REPORT_ACKNOWLEDGED = "report.acknowledged", "Acknowledgement sent to the reporter"
    REPORT_STATUS_VIEWED = "report.status_viewed", "Reporter looked up the status"
    EMAIL_REFUSED = "email.refused", "Inbound e-mail refused"
    CASE_CREATED = "case.created", "Case opened"
    CASE_REPORT_JOINED = "case.report_joined", "Report joined the case"
    KNOWN_URLS_IMPORTED = "known_urls.imported", "Known URLs imported"
    KNOWN_URLS_DEACTIVATED = "known_urls.deactivated", "Known URLs deactivated"
    KNOWN_URL_CREATED = "known_url.created", "Known URL added"
    KNOWN_URL_CHANGED = "known_url.changed", "Known URL changed"
    PARTNER_CREATED = "partner.created", "Partner created"
    PARTNER_CHANGED = "partner.changed", "Partner changed"
    PARTNER_DELETED = "partner.deleted", "Partner deleted"
    PARTNER_API_KEY_CREATED = "partner_api_key.created", "Partner API key created"
    PARTNER_API_KEY_CHANGED = "partner_api_key.changed", "Partner API key changed"
    PARTNER_API_KEY_REVOKED = "partner_api_key.revoked", "Partner API key revoked"
    PARTNER_API_KEY_DELETED = "partner_api_key.deleted", "Partner API key deleted"
    CASE_CLAIMED = "case.claimed", "Case claimed"
    CASE_RELEASED = "case.released", "Case released"
    CASE_CLAIM_EXPIRED = "case.claim_expired", "Claim expired after inactivity"
    CASE_REASSIGNED = "case.reassigned", "Case reassigned"
    CASE_ASSESSED = "case.assessed", "Case assessed"
    CASE_SECOND_OPINION_REQUESTED = "case.second_opinion_requested", "Second opinion requested"
    CASE_ASSESSMENTS_DISAGREE = "case.assessments_disagree", "Assessments disagree: supervisor decides"
    CASE_DECIDED = "case.decided", "Supervisor decided"
    CASE_CONFIRMED = "case.confirmed", "Case confirmed"
    CASE_ACTIONING = "case.actioning", "Case moved to actioning"
    CASE_CLOSED = "case.closed", "Case closed"
    CASE_CLOSED_AS_DUPLICATE = "case.closed_as_duplicate", "Case closed as a duplicate"
    CASE_REOPENED = "case.reopened", "Case reopened"
    CASE_TRACE_REQUESTED = "case.trace_requested", "Hosting trace requested"
    CASE_TRACED = "case.traced", "Hosting traced"
    CASE_QUEUE_CHANGED = "case.queue_changed", "Case moved to another queue"
    REPORTER_CONTACT_REVEALED = "report.contact_revealed", "Reporter contact revealed"
    QUEUE_CREATED = "queue.created", "Queue created"
    QUEUE_CHANGED = "queue.changed", "Queue changed"
    QUEUE_ACCESS_GRANTED = "queue.access_granted", "Queue access granted"
    QUEUE_ACCESS_REVOKED = "queue.access_revoked", "Queue access revoked"
    SCHEME_CHANGED = "scheme.changed", "Classification scheme changed"
    HOSTING_NETWORK_CHANGED = "hosting_network.changed", "Hosting network mapping changed"
    CASE_VIEWED = "case.viewed", "Case viewed by an auditor"
    TIMELINE_EXPORTED = "timeline.exported", "Case timeline exported"
    AUDIT_LOG_EXPORTED = "audit_log.exported", "Audit log exported"
    EXPORT_DOWNLOADED = "export.downloaded", "Prepared export downloaded"
    AUDIT_VERIFICATION_STARTED = "audit.verification_started", "Audit log verification started"
    CASE_ROUTED = "case.routed", "Recipients decided"
    CASE_AWAITING_AUTHORISATION = "case.awaiting_authorisation", "Waiting for police authorisation"
    CASE_AWAITING_REMOVAL = "case.awaiting_removal", "Notices out: waiting for removal"
    CASE_REMOVAL_OBSERVED = "case.removal_observed", "Removal observed"
    CASE_REMOVAL_REJECTED = "case.removal_rejected", "Removal not confirmed: material still there"
    CASE_REMOVED = "case.removed", "Removal confirmed"
    CASE_UNDER_DISPUTE = "case.under_dispute", "Notice disputed: senior decision needed"
    NOTICE_ISSUED = "notice.issued", "Notice issued"
    NOTICE_CASE_ADDED = "notice.case_added", "Case added to a notice"
    NOTICE_SEALED = "notice.sealed", "Notice written"
    NOTICE_ATTEMPT_FAILED = "notice.attempt_failed", "Notice delivery attempt failed"
    NOTICE_SENT = "notice.sent", "Notice sent"
    NOTICE_FAILED = "notice.failed", "Notice could not be delivered"
    NOTICE_ACKNOWLEDGED = "notice.acknowledged", "Notice acknowledged"
    NOTICE_REMOVAL_REPORTED = "notice.removal_reported", "Recipient reported removal"
    NOTICE_DISPUTED = "notice.disputed", "Recipient disputed the notice"
    NOTICE_UPHELD = "notice.upheld", "Dispute decided: notice upheld"
    NOTICE_WITHDRAWN = "notice.withdrawn", "Dispute decided: notice withdrawn"
    NOTICE_LINK_REFUSED = "notice.link_refused", "Notice link refused"
    AUTHORISATION_REQUESTED = "authorisation.requested", "Police authorisation requested"
    AUTHORISATION_GRANTED = "authorisation.granted", "Police authorised the notices"
    AUTHORISATION_HELD = "authorisation.held", "Police asked to hold the notices"
    AUTHORISATION_TIMED_OUT = "authorisation.timed_out", "Police did not answer in time"
    SUPERVISOR_TASK_OPENED = "supervisor_task.opened", "Supervisor task opened"
    SUPERVISOR_TASK_RESOLVED = "supervisor_task.resolved", "Supervisor task resolved"
    PARTNER_CONTACT_CHANGED = "partner_contact.changed", "Partner contact changed"
    WEBHOOK_SECRET_CREATED = "webhook_secret.created", "Webhook signing secret created"
    ROUTING_RULE_CHANGED = "routing_rule.changed", "Routing rule changed"
    NOTICE_TEMPLATE_CHANGED = "notice_template.changed", "Notice template changed"


class ActorType(models.TextChoices):
    USER = "user", "User"
    PARTNER = "partner", "Partner"
    SYSTEM = "system", "System"


class AuditEvent(models.Model):
    seq = models.BigIntegerField(primary_key=True)
    at = models.DateTimeField()
    actor_type = models.CharField(max_length=16, choices=ActorType.choices)
    actor_id = models.CharField(max_length=64, blank=True)
    # No `choices`: the enumeration grows with every issue; record() refuses an action not in `Action`.
    action = models.CharField(max_length=64)
    target_type = models.CharField(max_length=64, blank=True)
    target_id = models.CharField(max_length=64, blank=True)
    case_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict, blank=True)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["seq"]
        permissions = [
            ("verify_audit_log", "Can verify the audit log"),
            ("export_audit_log", "Can export the audit log and case timelines"),
        ]
        indexes = [
            models.Index(fields=["actor_type", "actor_id", "seq"], name="audit_actor_idx"),
            # The auditor's filters and the case timeline (events about a case's reports and notices).
            models.Index(fields=["target_type", "target_id", "seq"], name="audit_target_idx"),
            models.Index(fields=["action", "seq"], name="audit_action_idx"),
            models.Index(fields=["at"], name="audit_at_idx"),
        ]
        triggers = [
            pgtrigger.Protect(name="append_only", operation=pgtrigger.Update | pgtrigger.Delete),
            pgtrigger.Trigger(
                name="no_truncate",
                operation=pgtrigger.Truncate,
                level=pgtrigger.Statement,
                when=pgtrigger.Before,
                func="RAISE EXCEPTION 'the audit log is append-only'; RETURN NULL;",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.action}"

    @property
    def action_label(self) -> str:
        return Action(self.action).label if self.action in Action.values else self.action

    def canonical_fields(self) -> dict[str, Any]:
        return canonical_fields(
            self.seq, self.at, self.actor_type, self.actor_id, self.action,
            self.target_type, self.target_id, self.case_id, self.data,
        )


def canonical_fields(
    seq: int, at: dt.datetime, actor_type: str, actor_id: str, action: str,
    target_type: str, target_id: str, case_id: int | None, data: dict[str, Any],
) -> dict[str, Any]:
    return {
        "v": HASH_VERSION,
        "seq": seq,
        "at": at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "actor_type": actor_type,
        "actor_id": actor_id,
        "action": action,
        "target_type": target_type,
        "target_id": target_id,
        "case_id": case_id,
        "data": data,
    }


def chain_hash(fields: dict[str, Any], prev_hash: str) -> str:
    """SHA-256 over the previous hash and the row's canonical JSON (sorted keys, no spaces, UTF-8)."""
    body = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


def _actor(actor: Any) -> tuple[str, str]:
    if actor is None or actor == "system":
        return ActorType.SYSTEM, ""
    if getattr(actor, "audit_actor_type", None) == ActorType.PARTNER:
        return ActorType.PARTNER, str(actor.pk)
    if getattr(actor, "is_authenticated", False):
        return ActorType.USER, str(actor.pk)
    raise TypeError(f"an audit actor is a user, a partner or 'system', not {actor!r}")


def _target(target: Any) -> tuple[str, str]:
    if target is None:
        return "", ""
    if isinstance(target, tuple):
        kind, ident = target
        return str(kind), str(ident)
    return target._meta.label_lower, str(target.pk)


def _check_data(data: dict[str, Any]) -> None:
    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError("audit data keys must be strings")
                if key.lower() in FORBIDDEN_DATA_KEYS:
                    raise ValueError(f"audit data must not hold {key!r}: it is personal or secret")
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, float):
            raise ValueError("audit data holds no floats (they do not round-trip canonically); use a string")
        elif value is not None and not isinstance(value, str | int | bool):
            raise ValueError(f"audit data holds JSON scalars only, not {type(value).__name__}")

    walk(data)


def _check_case_id(case_id: Any) -> None:
    # The hash covers the value given to record() and verification rehashes the value read back: a case_id of
    # "7" would be stored as the bigint 7 and the event would fail verification for ever, a false tamper alarm.
    if case_id is not None and (isinstance(case_id, bool) or not isinstance(case_id, int)):
        raise TypeError(f"audit case_id is an int or None, not {case_id!r}")


def _lock_chain_and_read_head() -> tuple[int, str]:
    """Take the chain's lock, then read the head: concurrent writers queue here and cannot fork the chain.

    On PostgreSQL the lock is a transaction-level advisory lock. The head is read by a second statement, whose
    snapshot is taken after the lock is held (READ COMMITTED); both go in one round trip (pipeline mode).
    SQLite (`make run`) takes its single write lock at BEGIN IMMEDIATE: writers are already serial there.
    """
    if connection.vendor != "postgresql":
        return head()
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    with connection.cursor() as cursor:
        with cursor.cursor.connection.pipeline():
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_CHAIN_LOCK_ID])
            cursor.execute(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")  # noqa: S608
        last = cursor.fetchone()
    return (last[0], last[1]) if last else (0, GENESIS_HASH)


def head() -> tuple[int, str]:
    """The last sequence number and hash, or (0, GENESIS_HASH) for an empty log."""
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    return last if last else (0, GENESIS_HASH)


def record(
    *,
    actor: Any,
    action: str,
    target: Any = None,
    case_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> AuditEvent:
    """Append one event to the chain, inside the caller's transaction (it commits or rolls back with it)."""
    row = _append([Entry(actor, action, target, case_id, data)], "audit.record()")[0]
    event = AuditEvent(**dict(zip(_COLUMNS, row, strict=True)))
    event._state.adding = False
    return event


@dataclass(frozen=True)
class Entry:
    """One event for `record_many()`: the same arguments as `record()`."""

    actor: Any
    action: str
    target: Any = None
    case_id: int | None = None
    data: dict[str, Any] | None = None


def record_many(entries: list[Entry]) -> int:
    """Append many events at once (a partner's batch of 10,000 URLs): one lock, one set-wise insert."""
    return len(_append(entries, "audit.record_many()"))


_ACTIONS = frozenset(Action.values)
_COLUMNS = ("seq", "at", "actor_type", "actor_id", "action", "target_type", "target_id", "case_id", "data",
            "prev_hash", "hash")


def _append(entries: list[Entry], caller: str) -> list[tuple[Any, ...]]:
    if not connection.in_atomic_block:
        raise RuntimeError(f"{caller} must run inside the transaction of the change it records")
    prepared = []
    for entry in entries:
        if entry.action not in _ACTIONS:
            raise ValueError(f"unknown audit action {entry.action!r}")
        _check_case_id(entry.case_id)
        data = entry.data or {}
        _check_data(data)
        prepared.append((*_actor(entry.actor), entry.action, *_target(entry.target), entry.case_id, data))
    if not prepared:
        return []

    seq, prev_hash = _lock_chain_and_read_head()
    now = dt.datetime.now(dt.UTC)
    rows, db_rows = [], []
    checkpoint: tuple[int, str] | None = None
    for actor_type, actor_id, action, target_type, target_id, case_id, data in prepared:
        seq += 1
        fields = canonical_fields(seq, now, actor_type, actor_id, action, target_type, target_id, case_id, data)
        event_hash = chain_hash(fields, prev_hash)
        row = (seq, now, actor_type, actor_id, action, target_type, target_id, case_id, data, prev_hash, event_hash)
        rows.append(row)
        db_rows.append((*row[:8], json.dumps(data), *row[9:]))
        prev_hash = event_hash
        if seq % settings.AUDIT_CHECKPOINT_EVERY == 0:
            checkpoint = (seq, event_hash)
    insert_rows(AuditEvent._meta.db_table, _COLUMNS, db_rows)
    if checkpoint is not None:
        cp_seq, cp_hash = checkpoint
        transaction.on_commit(lambda: write_checkpoint(cp_seq, cp_hash))
    return rows


# --- Checkpoints -------------------------------------------------------------------------------------


def _checkpoint_signature(seq: int, event_hash: str, at: str) -> str:
    key = settings.AUDIT_CHECKPOINT_KEY.encode()
    return hmac.new(key, f"ntd-audit-checkpoint/v1\n{seq}\n{event_hash}\n{at}".encode(), "sha256").hexdigest()


def write_checkpoint(seq: int, event_hash: str) -> dict[str, Any]:
    """Append a signed checkpoint line to the file outside the database."""
    at = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    entry = {"seq": seq, "hash": event_hash, "at": at, "sig": _checkpoint_signature(seq, event_hash, at)}
    path = Path(settings.AUDIT_CHECKPOINT_PATH)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(entry, sort_keys=True) + "\n")
        fh.flush()
    return entry


def read_checkpoints(path: Path | None = None) -> list[Any]:
    """Every entry of the checkpoint file, in file order. A line that is not JSON is kept as its text: the file
    lives outside the database and may be damaged, and `verify_chain()` must report that, not crash."""
    path = Path(path or settings.AUDIT_CHECKPOINT_PATH)
    if not path.exists():
        return []
    entries: list[Any] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                try:
                    entries.append(json.loads(line))
                except ValueError:
                    entries.append(line.rstrip("\n"))
    return entries


def is_signed_checkpoint(entry: Any) -> bool:
    """True for a well-formed checkpoint whose signature verifies under AUDIT_CHECKPOINT_KEY."""
    if not isinstance(entry, dict):
        return False
    seq, event_hash, at, sig = entry.get("seq"), entry.get("hash"), entry.get("at"), entry.get("sig")
    # type(), not isinstance(): True is an int, and the string "5" would sign exactly like 5.
    if type(seq) is not int or seq < 1:
        return False
    if not (isinstance(event_hash, str) and isinstance(at, str) and isinstance(sig, str)):
        return False
    return hmac.compare_digest(sig.encode(), _checkpoint_signature(seq, event_hash, at).encode())


def checkpoint_head() -> dict[str, Any] | None:
    """Checkpoint the current head if it moved since the last checkpoint (run by beat)."""
    last_seq, last_hash = head()
    # Only signed entries count: an unsigned line naming a far-off seq must not silence checkpointing. And the
    # highest, not the last line: on_commit checkpoints and this task append in whatever order they finish.
    signed = [entry["seq"] for entry in read_checkpoints() if is_signed_checkpoint(entry)]
    if last_seq == 0 or (signed and max(signed) >= last_seq):
        return None
    return write_checkpoint(last_seq, last_hash)


# --- Verification ------------------------------------------------------------------------------------


class Fault(models.TextChoices):
    EDITED = "edited", "row content does not match its hash"
    BROKEN_LINK = "broken_link", "row does not link to the previous row's hash"
    MISSING = "missing", "sequence gap: a row was deleted"
    REORDERED = "reordered", "sequence does not follow on"
    BAD_CHECKPOINT = "bad_checkpoint", "checkpoint signature is invalid"
    CHECKPOINT_MISMATCH = "checkpoint_mismatch", "chain differs from a signed checkpoint (rewritten)"
    TAIL_MISSING = "tail_missing", "rows after the last row were removed (a signed checkpoint names them)"


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    last_seq: int
    head_hash: str
    first_bad_seq: int | None = None
    fault: str | None = None
    detail: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"audit log intact: {self.checked} events, up to #{self.last_seq}, head {self.head_hash}"
        where = f" at #{self.first_bad_seq}" if self.first_bad_seq is not None else ""
        return f"audit log FAILED{where}: {self.fault} ({self.detail})"


def _rows(chunk_size: int) -> Iterator[tuple[Any, ...]]:
    return (
        AuditEvent.objects.order_by("seq")
        .values_list(
            "seq", "at", "actor_type", "actor_id", "action", "target_type", "target_id", "case_id", "data",
            "prev_hash", "hash",
        )
        .iterator(chunk_size=chunk_size)
    )


def verify_chain(
    *, checkpoints: list[Any] | None = None, chunk_size: int = 5000,
    progress: Any = None,
) -> Verification:
    """Walk the whole chain; name the first bad sequence number and the kind of fault."""
    if checkpoints is None:
        checkpoints = read_checkpoints()
    for number, cp in enumerate(checkpoints, 1):
        if not is_signed_checkpoint(cp):
            seq = cp.get("seq") if isinstance(cp, dict) else None
            return Verification(
                False, 0, 0, "", seq if type(seq) is int else None, Fault.BAD_CHECKPOINT,
                f"checkpoint entry {number} is malformed or its signature does not verify",
            )
    expected_at: dict[int, str] = {}
    for cp in checkpoints:
        expected_at.setdefault(cp["seq"], cp["hash"])

    prev_hash, expected_seq, checked = GENESIS_HASH, 1, 0
    for seq, at, actor_type, actor_id, action, t_type, t_id, case_id, data, row_prev, row_hash in _rows(
        chunk_size
    ):
        if seq != expected_seq:
            fault = Fault.MISSING if seq > expected_seq else Fault.REORDERED
            return Verification(False, checked, seq, prev_hash, expected_seq, fault, f"found #{seq} next")
        fields = canonical_fields(seq, at, actor_type, actor_id, action, t_type, t_id, case_id, data)
        if chain_hash(fields, row_prev) != row_hash:
            return Verification(False, checked, seq, prev_hash, seq, Fault.EDITED, "stored hash differs")
        if row_prev != prev_hash:
            return Verification(False, checked, seq, prev_hash, seq, Fault.BROKEN_LINK, "prev_hash differs")
        if seq in expected_at and not hmac.compare_digest(expected_at[seq], row_hash):
            return Verification(
                False, checked, seq, prev_hash, seq, Fault.CHECKPOINT_MISMATCH,
                "the chain was recomputed: a row at or before this one was changed",
            )
        prev_hash, expected_seq, checked = row_hash, seq + 1, checked + 1
        if progress is not None and checked % chunk_size == 0:
            progress(checked)
    last_seq = expected_seq - 1
    beyond = [cp["seq"] for cp in checkpoints if cp["seq"] > last_seq]
    if beyond:
        return Verification(
            False, checked, last_seq, prev_hash, last_seq + 1, Fault.TAIL_MISSING,
            f"a signed checkpoint names #{max(beyond)} but the log ends at #{last_seq}",
        )
    return Verification(True, checked, last_seq, prev_hash)
