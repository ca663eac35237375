"""Exports too large for one request: a row, a worker that writes the file, a download for its requester, expiry.

`start_export_job()` records the export (the same audit event as a direct download) and queues the job; a worker
writes `exports.export_chunks()` to a file of a random name in EXPORT_DIR with `run_export_job()`, counting
events as they stream; only the requester downloads it (`open_download()`, each download audited) until
`expire_export_jobs()` (beat) deletes it EXPORT_KEEP_HOURS after it was ready.

A task delivered twice does no harm: a finished job is left as it is, and while a worker writes a job it holds a
session advisory lock on it, so a second delivery of a job still being written does nothing. A job "running"
whose lock is free lost its worker (killed mid-way): the next delivery deletes the partial file and starts over.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError, connection, transaction
from django.http import Http404
from django.utils import timezone

from ntd import audit, exports
from ntd.exports import ExportError, ExportRequest
from ntd.models import ExportJob, User
from ntd.timeline import TimelineEntry

logger = logging.getLogger(__name__)

PERMISSION = exports.EXPORT
# One progress write per this many events exported.
PROGRESS_EVERY = 5000
# How many passes each format makes over the timeline entries (the bundle writes timeline.jsonl and timeline.csv).
ENTRY_PASSES = {"bundle": 2}
EXPIRE_BATCH = 500
# A job still queued or running this long after it was asked for, with no worker writing it, will not finish: its
# message was lost, or its worker died and the broker delivers the message no more (visibility timeout: 1 hour).
ABANDONED_AFTER = dt.timedelta(hours=2)

Status = ExportJob.Status
ACTIVE = (Status.QUEUED, Status.RUNNING)
TRANSITIONS: dict[str, set[str]] = {
    Status.QUEUED: {Status.RUNNING, Status.FAILED},
    # running → running: the worker died and the redelivered message writes the file again
    Status.RUNNING: {Status.RUNNING, Status.READY, Status.FAILED},
    Status.READY: {Status.EXPIRED},
    Status.FAILED: set(),
    Status.EXPIRED: set(),
}

# Session advisory lock of the worker writing a job: (namespace, job id), the two-key form of pg_advisory_lock.
_WRITER_LOCK_SPACE = int.from_bytes(b"ntdx", "big", signed=True)


class ExportJobError(Exception):
    """A state change the job's life cycle does not allow."""


class ExportNotReady(Exception):
    """The job is still queued or running: there is nothing to download yet."""


class ExportGone(Exception):
    """The job's file is gone (expired, or never written): the message says so in words."""


def _move(job: ExportJob, to: str, **values: Any) -> None:
    if to not in TRANSITIONS[job.status]:
        raise ExportJobError(f"a {job.status} export cannot become {to}")
    job.status = to
    for name, value in values.items():
        setattr(job, name, value)
    job.save(update_fields=["status", *values])


# --- Starting ------------------------------------------------------------------------------------------------


@transaction.atomic
def start_export_job(request: ExportRequest, *, actor: User) -> ExportJob:
    """Record the export (it checks the actor may make it, and refuses a PDF too long) and queue its job; the task
    is sent once the transaction commits."""
    pinned = exports.record_export(request, actor=actor)
    assert pinned.recorded is not None
    job = ExportJob.objects.create(requested_by=actor, params=pinned.params(), total=pinned.recorded.events,
                                   filename=pinned.filename())
    transaction.on_commit(lambda: _enqueue(job.pk))
    return job


def _enqueue(job_id: int) -> None:
    from ntd.tasks import run_export_job_task

    run_export_job_task.delay(job_id)


# --- Running (in the worker) ---------------------------------------------------------------------------------


def run_export_job(job_id: int) -> str:
    """Write the job's file and mark it ready (or failed, with the reason). Returns the job's status.

    Idempotent: a job that is ready, failed or expired is left as it is, and so is one another worker is writing.
    """
    with _writer_lock(job_id) as held:
        if not held:
            return Status.RUNNING  # another worker is writing it
        job = _begin(job_id)
        if job is None or job.status != Status.RUNNING:
            return job.status if job is not None else "gone"
        request = ExportRequest.from_params(job.params)
        path = export_dir() / job.path
        try:
            sha256, size, events = _write(path, request, _Progress(job_id, ENTRY_PASSES.get(request.format, 1)))
        except Exception as error:
            path.unlink(missing_ok=True)
            _give_up(job_id, error)
            if isinstance(error, ExportError):  # a refusal in words (a PDF grown too long), not a fault
                return Status.FAILED
            raise
        return _finish(job_id, sha256=sha256, size=size, events=events).status


@transaction.atomic
def _begin(job_id: int) -> ExportJob | None:
    job = ExportJob.objects.select_for_update().filter(pk=job_id).first()
    if job is None or job.status not in ACTIVE:
        return job
    if job.path:  # running: its worker died part of the way; its file is incomplete
        (export_dir() / job.path).unlink(missing_ok=True)
    extension = exports.EXTENSIONS.get(job.params.get("format", ""), "bin")
    _move(job, Status.RUNNING, done=0, path=f"{secrets.token_urlsafe(24)}.{extension}", error="")
    return job


def export_dir() -> Path:
    return Path(settings.EXPORT_DIR)


def _write(path: Path, request: ExportRequest, progress: _Progress) -> tuple[str, int, int]:
    """Stream the export into `path` (created here, readable by this user only); its SHA-256, size and events."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    digest, size = hashlib.sha256(), 0
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        for chunk in exports.export_chunks(_Counted.of(request, progress)):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest(), size, progress.events


class _Progress:
    """Counts the entries as they stream and saves `done` once per PROGRESS_EVERY (autocommit: the page sees it)."""

    def __init__(self, job_id: int, passes: int) -> None:
        self.job_id, self.passes, self.seen = job_id, passes, 0

    def __call__(self) -> None:
        self.seen += 1
        if self.seen % PROGRESS_EVERY == 0:
            ExportJob.objects.filter(pk=self.job_id, status=Status.RUNNING).update(done=self.events)

    @property
    def events(self) -> int:
        return self.seen // self.passes


@dataclass(frozen=True, kw_only=True)
class _Counted(ExportRequest):
    """The request, its entries counted as they are read."""

    progress: Callable[[], None] = field(default=lambda: None, compare=False, repr=False)

    @classmethod
    def of(cls, request: ExportRequest, progress: Callable[[], None]) -> _Counted:
        return cls(**{f.name: getattr(request, f.name) for f in fields(request)}, progress=progress)

    def entries(self) -> Iterator[TimelineEntry]:
        for entry in super().entries():
            self.progress()
            yield entry


@transaction.atomic
def _finish(job_id: int, *, sha256: str, size: int, events: int) -> ExportJob:
    job = ExportJob.objects.select_for_update().get(pk=job_id)
    now = timezone.now()
    _move(job, Status.READY, sha256=sha256, size=size, done=events, total=max(job.total, events),
          finished_at=now, expires_at=now + dt.timedelta(hours=settings.EXPORT_KEEP_HOURS))
    return job


@transaction.atomic
def _give_up(job_id: int, error: Exception) -> None:
    job = ExportJob.objects.select_for_update().get(pk=job_id)
    if isinstance(error, ExportError):
        reason = str(error)
    elif isinstance(error, OSError):
        reason = f"The file could not be written: {error.strerror or type(error).__name__}."
    else:  # the class only: an error's message may quote what the database held
        reason = f"Stopped by an error: {type(error).__name__}."
    _move(job, Status.FAILED, error=reason[:500], path="", finished_at=timezone.now())


# --- Reading and downloading -----------------------------------------------------------------------------------


def job_for(user: Any, pk: int) -> ExportJob:
    """The user's own export job; the same 404 for one that does not exist and one that is someone else's."""
    job = ExportJob.objects.filter(pk=pk, requested_by_id=user.pk).first()
    if job is None:
        raise Http404("No such export.")
    return job


@dataclass(frozen=True)
class Download:
    job: ExportJob
    file: BinaryIO


def open_download(pk: int, *, actor: User) -> Download:
    """Open the requester's ready export and record the download (one audit event each time).

    Http404 for a job that is not theirs; ExportNotReady while it is written; ExportGone for one expired, failed or
    whose file is missing. The file is
    opened under the row's lock before the event commits, so an expiry sweep cannot take it away mid-download.
    """
    if not actor.has_perm(PERMISSION):
        raise PermissionDenied
    with transaction.atomic():
        job = ExportJob.objects.select_for_update().filter(pk=pk, requested_by_id=actor.pk).first()
        if job is None:
            raise Http404("No such export.")
        if job.status in ACTIVE:
            raise ExportNotReady  # the page offers no link before it is
        if job.status == Status.FAILED:
            raise ExportGone(f"This export failed: {job.error}")
        if job.status == Status.EXPIRED or (job.expires_at and job.expires_at <= timezone.now()):
            raise ExportGone("This export has expired and its file was deleted. Export again to get a new one.")
        try:
            file = (export_dir() / job.path).open("rb")
        except FileNotFoundError:
            logger.error("export %s is ready but its file is missing", job.pk)
            raise ExportGone("This export's file is missing. Export again to get a new one.") from None
        params = job.params
        audit.record(actor=actor, action=audit.Action.EXPORT_DOWNLOADED, target=job,
                     case_id=params.get("case_id"),
                     data={"export": job.pk, "format": params.get("format", ""), "sha256": job.sha256,
                           "size": job.size, "events": job.done})
    return Download(job, file)


# --- Expiry (beat) ----------------------------------------------------------------------------------------------


def expire_export_jobs(*, now: dt.datetime | None = None) -> int:
    """Delete the files of ready exports past their expiry and mark them expired; returns how many. Jobs abandoned
    by their workers are closed as failed (their pages stop waiting).

    In batches, each under `select_for_update(skip_locked=True)`: a download holding a row waits for the next sweep.
    Files are deleted before the rows commit: a failed commit leaves a "ready" row without a file (downloading it
    says so), never a file nobody will delete. Files left by a worker that died mid-way are deleted here too.
    """
    now = now or timezone.now()
    expired = 0
    while True:
        with transaction.atomic():
            batch = list(ExportJob.objects.select_for_update(skip_locked=True)
                         .filter(status=Status.READY, expires_at__lte=now).order_by("pk")[:EXPIRE_BATCH])
            for job in batch:
                if job.path:
                    (export_dir() / job.path).unlink(missing_ok=True)
            ExportJob.objects.filter(pk__in=[job.pk for job in batch]).update(status=Status.EXPIRED, path="")
        expired += len(batch)
        if len(batch) < EXPIRE_BATCH:
            break
    _close_abandoned(now)
    _delete_strays(now)
    return expired


@transaction.atomic
def _close_abandoned(now: dt.datetime) -> None:
    stale = ExportJob.objects.select_for_update(skip_locked=True).filter(
        status__in=ACTIVE, requested_at__lt=now - ABANDONED_AFTER)
    for job in stale:
        if not _writer_lock_free(job.pk):
            continue  # a worker is still writing it
        if job.path:
            (export_dir() / job.path).unlink(missing_ok=True)
        _move(job, Status.FAILED, path="", finished_at=now, error=(
            "The worker stopped before it finished. Export again." if job.status == Status.RUNNING
            else "No worker picked the export up. Export again."))


def _delete_strays(now: dt.datetime) -> None:
    """Files in EXPORT_DIR no job points at any more, older than the keeping time (partial files of dead runs)."""
    folder = export_dir()
    if not folder.is_dir():
        return
    keep = set(ExportJob.objects.exclude(path="").values_list("path", flat=True))
    cutoff = (now - dt.timedelta(hours=settings.EXPORT_KEEP_HOURS)).timestamp()
    for path in folder.iterdir():
        with contextlib.suppress(FileNotFoundError):
            if path.is_file() and path.name not in keep and path.stat().st_mtime < cutoff:
                path.unlink()


# --- The writer's lock ------------------------------------------------------------------------------------------
# PostgreSQL only. SQLite (`make run`: one worker) has nobody to race.


def _writer_key(job_id: int) -> tuple[int, int]:
    return _WRITER_LOCK_SPACE, job_id % 2**31


def _writer_lock_free(job_id: int) -> bool:
    """Nobody writes the job (checked by taking its lock until this transaction ends)."""
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", _writer_key(job_id))
        return bool(cursor.fetchone()[0])


@contextlib.contextmanager
def _writer_lock(job_id: int) -> Iterator[bool]:
    """Hold the job's writer lock for the block (True), or say that another session holds it (False)."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = _writer_key(job_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with contextlib.suppress(DatabaseError), connection.cursor() as cursor:  # a lost connection took it along
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
