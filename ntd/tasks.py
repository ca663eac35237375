from smtplib import SMTPException

from celery import shared_task

from ntd import audit, export_jobs, verification


@shared_task(acks_late=True)
def checkpoint_audit_log_task() -> int | None:
    """Sign the audit chain's head into the checkpoint file if it moved (beat, every few minutes)."""
    entry = audit.checkpoint_head()
    return entry["seq"] if entry else None


@shared_task(acks_late=True)
def verify_audit_log_task(run_id: int) -> str:
    """Walk the audit chain for one verification run; a rerun of a finished run does nothing."""
    return verification.run_verification(run_id).status


@shared_task(acks_late=True)
def verify_audit_log_nightly_task() -> int:
    """Start the nightly verification (beat); the run already under way if there is one."""
    return verification.start_verification(actor=None).pk


@shared_task(acks_late=True, autoretry_for=(SMTPException, ConnectionError, TimeoutError), retry_backoff=True,
             max_retries=8)
def alert_verification_failed_task(run_id: int) -> int:
    """E-mail the admins that a verification found the audit chain broken."""
    return verification.alert_admins(run_id)


@shared_task(acks_late=True)
def run_export_job_task(job_id: int) -> str:
    """Write one prepared export's file; a rerun of a finished job does nothing, nor one another worker writes."""
    return export_jobs.run_export_job(job_id)


@shared_task(acks_late=True)
def expire_export_jobs_task() -> int:
    """Delete the files of prepared exports past their keeping time (beat)."""
    return export_jobs.expire_export_jobs()
