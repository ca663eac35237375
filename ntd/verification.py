"""Verifying the audit chain from the UI and by schedule: one run at a time, as a row with its progress.

`start_verification()` queues a run (or hands back the one already under way); a worker runs it with
`run_verification()`, which walks the chain with `audit.verify_chain()` (the code of `manage.py
verify_audit_log`), stores the result and, when the chain is broken, has the admins e-mailed.

One run at a time, and a run whose worker is gone does not block the next one for ever: the worker holds a
session advisory lock (the verifier's lock) for as long as it verifies. A run that is "running" while nobody
holds that lock lost its worker; a run "queued" for longer than QUEUED_TIMEOUT lost its message. Either is
closed as an error when someone starts the next run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.core.mail import EmailMessage
from django.db import DatabaseError, connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from ntd import audit, roles
from ntd.models import User, VerificationRun

logger = logging.getLogger(__name__)

PERMISSION = "ntd.verify_audit_log"
# One progress write per this many events checked (and the chunk read from the database at a time).
PROGRESS_EVERY = 5000
# A run still queued after this long will never be picked up (its message was lost): the next start closes it.
QUEUED_TIMEOUT = dt.timedelta(hours=1)

Status = VerificationRun.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)
TRANSITIONS: dict[str, set[str]] = {
    Status.QUEUED: {Status.RUNNING, Status.ERROR},
    # running → running: the worker died and the redelivered message starts the walk again
    Status.RUNNING: {Status.RUNNING, Status.PASSED, Status.FAILED, Status.ERROR},
    Status.PASSED: set(),
    Status.FAILED: set(),
    Status.ERROR: set(),
}

# pg_advisory locks, keys read from 8 ASCII bytes like audit._CHAIN_LOCK_ID: starting a run (transaction-level,
# held for the few milliseconds a start takes) and verifying (session-level, held by the worker while it walks).
_START_LOCK_ID = int.from_bytes(b"ntdvstrt", "big", signed=True)
_VERIFIER_LOCK_ID = int.from_bytes(b"ntdverif", "big", signed=True)


class VerificationError(Exception):
    """A state change the run's life cycle does not allow."""


def _move(run: VerificationRun, to: str, **fields: Any) -> None:
    if to not in TRANSITIONS[run.status]:
        raise VerificationError(f"a {run.status} verification cannot become {to}")
    run.status = to
    for name, value in fields.items():
        setattr(run, name, value)
    run.save(update_fields=["status", *fields])


# --- Starting ------------------------------------------------------------------------------------------------


@transaction.atomic
def start_verification(*, actor: Any) -> VerificationRun:
    """Queue a verification of the whole chain, or return the one already queued or running.

    `actor` is a user, or None for the nightly schedule. The run task is sent once the transaction commits.
    """
    if actor is not None and not actor.has_perm(PERMISSION):
        raise PermissionDenied
    _lock_transaction(_START_LOCK_ID)  # two starts at once: the second waits here, then sees the first's run
    current = VerificationRun.objects.select_for_update().filter(status__in=ACTIVE).order_by("-pk").first()
    if current is not None:
        if _is_alive(current):
            return current
        _move(current, Status.ERROR, finished_at=timezone.now(), detail=(
            "The worker stopped before it finished." if current.status == Status.RUNNING
            else "No worker picked the run up."))
    run = VerificationRun.objects.create(started_by=actor)
    audit.record(actor=actor or "system", action=audit.Action.AUDIT_VERIFICATION_STARTED, target=run,
                 data={"scheduled": actor is None})
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _enqueue(run_id: int) -> None:
    from ntd.tasks import verify_audit_log_task

    verify_audit_log_task.delay(run_id)


def _is_alive(run: VerificationRun) -> bool:
    if run.status == Status.QUEUED:
        return timezone.now() - run.requested_at < QUEUED_TIMEOUT
    if connection.vendor != "postgresql":
        return True
    # Running: its worker holds the verifier's lock while it works. If the lock is free, the worker is gone.
    # (Taken at transaction level here: it goes with this transaction's commit.)
    return not _try_lock(_VERIFIER_LOCK_ID, transaction_level=True)


# --- Running (in the worker) ---------------------------------------------------------------------------------


def run_verification(run_id: int) -> VerificationRun:
    """Walk the chain for this run, store the verdict, record it, alert the admins if it is broken.

    Idempotent: a run that has finished is left as it is, and so is a run another worker is verifying.
    """
    with _verifier_lock() as held:
        if not held:
            return VerificationRun.objects.get(pk=run_id)  # another worker is verifying
        run = _begin(run_id)
        if run.status != Status.RUNNING:
            return run
        try:
            result = audit.verify_chain(chunk_size=PROGRESS_EVERY, progress=lambda n: _save_progress(run_id, n))
        except Exception as error:
            _give_up(run_id, error)
            raise
        return _finish(run_id, result)


@transaction.atomic
def _begin(run_id: int) -> VerificationRun:
    run = VerificationRun.objects.select_for_update().get(pk=run_id)
    if run.status in ACTIVE:  # running: its worker died and this is the message delivered again
        _move(run, Status.RUNNING, total=audit.head()[0], checked=0)
    return run


def _save_progress(run_id: int, checked: int) -> None:
    # Autocommit, so the page sees it at once; one UPDATE per PROGRESS_EVERY events. Events appended since the
    # start are walked too: the total grows with them.
    VerificationRun.objects.filter(pk=run_id, status=Status.RUNNING).update(
        checked=checked, total=Greatest(F("total"), checked))


@transaction.atomic
def _finish(run_id: int, result: audit.Verification) -> VerificationRun:
    run = VerificationRun.objects.select_for_update().get(pk=run_id)
    _move(
        run, Status.PASSED if result.ok else Status.FAILED,
        finished_at=timezone.now(), checked=result.checked, total=max(run.total, result.checked),
        last_seq=result.last_seq, first_bad_seq=result.first_bad_seq, fault=result.fault or "",
        detail=result.detail[:500],
    )
    if result.ok:
        record_verified(result, run=run)
    else:
        transaction.on_commit(lambda: _enqueue_alert(run_id))
    return run


def _enqueue_alert(run_id: int) -> None:
    from ntd.tasks import alert_verification_failed_task

    alert_verification_failed_task.delay(run_id)


@transaction.atomic
def _give_up(run_id: int, error: Exception) -> None:
    run = VerificationRun.objects.select_for_update().get(pk=run_id)
    # The exception's class only: its message may quote what the database held.
    _move(run, Status.ERROR, finished_at=timezone.now(), detail=f"Stopped by an error: {type(error).__name__}")


def record_verified(result: audit.Verification, *, run: VerificationRun | None = None) -> None:
    """Append audit.verified for an intact chain (`manage.py verify_audit_log` and the worker both end here).

    A broken chain gets no audit.verified: the run's row and the admins' alert say it.
    """
    if not result.ok:
        raise ValueError("only an intact chain is recorded as verified")
    data: dict[str, Any] = {"up_to": result.last_seq, "head": result.head_hash, "ok": True}
    if run is not None:
        data["run"] = run.pk
    audit.record(actor="system", action=audit.Action.AUDIT_VERIFIED, target=run, data=data)


# --- The alert ----------------------------------------------------------------------------------------------


def admin_addresses() -> list[str]:
    """Every active user with the admin role who has an e-mail address."""
    return list(
        User.objects.filter(is_active=True, groups__name=roles.ADMIN).exclude(email="")
        .order_by("email").values_list("email", flat=True).distinct()
    )


def alert_admins(run_id: int) -> int:
    """E-mail the admins that a verification found the chain broken; the number of addresses written to."""
    run = VerificationRun.objects.filter(pk=run_id, status=Status.FAILED).first()
    if run is None:
        return 0
    to = admin_addresses()
    if not to:
        logger.warning("audit verification %s failed and no active admin has an e-mail address", run.pk)
        return 0
    body = render_to_string("ntd/verification_failed.txt", {
        "run": run, "deployment_name": settings.NTD_DEPLOYMENT_NAME,
        "page_url": settings.NTD_PUBLIC_URL + reverse("audit_verify"),
    })
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2] or "ntd.invalid"
    where = f" at #{run.first_bad_seq}" if run.first_bad_seq is not None else ""
    EmailMessage(
        subject=f"[{settings.NTD_DEPLOYMENT_NAME}] Audit log verification FAILED{where}",
        body=body,
        to=to,
        # Stable: if the task runs twice, mail systems can tell it is the same alert.
        headers={"Message-ID": f"<audit-verification.{run.pk}.failed@{domain}>",
                 "Auto-Submitted": "auto-generated"},
    ).send()
    return len(to)


# --- Locks --------------------------------------------------------------------------------------------------
# PostgreSQL only. SQLite (`make run`: one web process, one worker) takes its single write lock at BEGIN.


def _lock_transaction(key: int) -> None:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _try_lock(key: int, *, transaction_level: bool = False) -> bool:
    if connection.vendor != "postgresql":
        return True
    function = "pg_try_advisory_xact_lock" if transaction_level else "pg_try_advisory_lock"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {function}(%s)", [key])  # noqa: S608 - one of two names, no input
        return bool(cursor.fetchone()[0])


@contextlib.contextmanager
def _verifier_lock() -> Iterator[bool]:
    """Hold the verifier's lock for the block (True), or say that another session holds it (False)."""
    held = _try_lock(_VERIFIER_LOCK_ID)
    try:
        yield held
    finally:
        if held and connection.vendor == "postgresql":
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:  # a lost connection took it along
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_VERIFIER_LOCK_ID])
