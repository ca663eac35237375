from __future__ import annotations

from smtplib import SMTPException

from celery import shared_task

from reports import mail


@shared_task(acks_late=True, autoretry_for=(SMTPException, ConnectionError, TimeoutError), retry_backoff=True,
             max_retries=8)
def send_acknowledgement_task(report_id: int, status_code: str) -> bool:
    """E-mail the reporter the reference and status code (DSA Art. 16(4)); a rerun sends nothing twice."""
    return mail.send_acknowledgement(report_id, status_code)


@shared_task(acks_late=True)
def trace_case_task(case_id: int) -> str:
    """Resolve the case's host and look up its networks; a rerun only adds a newer trace."""
    from reports import hosting, services
    from reports.models import Case

    host = Case.objects.filter(pk=case_id).values_list("host", flat=True).first()
    if host is None:
        return "gone"
    resolver, lookup = hosting.hosting_from_settings()
    trace = hosting.trace_host(host, resolver=resolver, lookup=lookup)
    services.record_trace(case_id, trace)
    return trace.outcome


@shared_task(acks_late=True)
def trace_cases_task(case_ids: list[int]) -> int:
    """Trace a batch of new cases (intake queues one task per report, not one per URL)."""
    for case_id in case_ids:
        trace_case_task(case_id)
    return len(case_ids)


@shared_task(acks_late=True)
def expire_claims_task() -> int:
    """Give back to the queue the cases whose holders have been idle too long (beat, every minute)."""
    from reports import services

    return services.expire_claims()

