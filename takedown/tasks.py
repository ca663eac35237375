"""Celery tasks of the takedown app: delivering notices, the outbox relay, authorisation time-outs, and the
e-mail that tells supervisors about a task."""

from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task


@shared_task(bind=True, acks_late=True, max_retries=None)
def deliver_notice_task(self, notice_id: int) -> str:
    """Seal and send one notice (takedown.delivery). Runs again for a retry or a grouping window still open.

    max_retries is None on purpose: the attempts are counted in the database (Notice.attempts, checked against
    NOTICE_MAX_ATTEMPTS), because a message the relay re-publishes starts Celery's own count again.
    """
    from takedown import delivery

    outcome = delivery.deliver(notice_id)
    if outcome.retry_at is not None:
        if self.request.called_directly:
            deliver_notice_task.apply_async((notice_id,), eta=outcome.retry_at)
        else:  # the same queue as this run, with the same task id
            self.retry(eta=outcome.retry_at, max_retries=None, throw=False)
    return outcome.status


@shared_task(acks_late=True)
def relay_outbox_task() -> int:
    """Re-publish deliveries whose message was lost (beat, every 30 s); the number re-published."""
    from takedown import delivery

    return delivery.relay_outbox()


@shared_task(acks_late=True)
def authorisation_timeouts_task() -> int:
    """Apply the fallback to police authorisations not answered in time (beat, every minute)."""
    from takedown import services

    return services.authorisation_timeouts()


@shared_task(acks_late=True, autoretry_for=(SMTPException, ConnectionError, TimeoutError), retry_backoff=True,
             max_retries=8)
def mail_supervisors_task(task_id: int) -> int:
    """E-mail the supervisors about a supervisor task (a failed notice, no route, an unanswered request)."""
    from takedown import services

    return services.mail_supervisors(task_id)
