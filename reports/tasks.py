from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from reports import mail


@shared_task(acks_late=True, autoretry_for=(SMTPException, ConnectionError, TimeoutError), retry_backoff=True,
             max_retries=8)
def send_acknowledgement_task(report_id: int, status_code: str) -> bool:
    """E-mail the reporter the reference and status code (DSA Art. 16(4)); a rerun sends nothing twice."""
    return mail.send_acknowledgement(report_id, status_code)
