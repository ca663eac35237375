"""Delivering a notice: seal it once, then send it by e-mail, signed webhook or the partner's own ntd, and
report the outcome to `takedown.services` (mark_sent / mark_failed), which owns the notice's state.

The steps of one delivery (`deliver()`, run by `takedown.tasks.deliver_notice_task`):

1. A session-level PostgreSQL advisory lock on the notice: two runs of the task for one notice (the relay
   re-published it, a broker redelivered it) never send at the same time; the lock dies with a killed worker's
   connection, so a crash never leaves it held.
2. Seal, in one short transaction with the notice row locked: a notice no longer queued is left alone; one still
   open for grouping (due later) waits for its due time; otherwise render it (takedown.rendering), choose the
   contact (business hours now, else the out-of-hours contact, else any active one), store what will be sent
   (subject, body, payload, addresses, channel, deadline) and audit NOTICE_SEALED. Sealed once: a retry sends
   the same bytes, with the same Message-ID and webhook-id (`notice.idempotency_key`).
3. Send, outside any transaction. Success → mark_sent. A transient failure (5xx, 408, 429, a time-out, no
   connection, an SMTP 4xx) counts an attempt and is retried with exponential backoff from
   NOTICE_RETRY_SECONDS (at most an hour); the outbox entry's due time moves with it, so the relay picks it up
   if the retry message is lost. A permanent failure (a redirect, another 4xx, an SMTP 5xx, no address, an
   http:// address in production), or the last of NOTICE_MAX_ATTEMPTS → mark_failed, which tells a supervisor.

A notice is therefore sent at least once and marked once: a worker killed between sending and marking sends it
again, recognisably the same message. The attempts are counted in the database (`Notice.attempts`), not in the
broker message, so a message re-published by the relay does not start the count again.

`relay_outbox()` re-publishes deliveries whose message was lost (a broker restart, a worker killed with the
message unacknowledged): outbox entries not done, due more than NOTICE_RELAY_GRACE_SECONDS ago, and not
published within that grace.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import smtplib
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import holidays
import httpx
from django.conf import settings
from django.core.mail import EmailMessage
from django.db import connection, transaction
from django.db.models import F, Q
from django.template import TemplateSyntaxError
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from ntd import audit
from takedown import rendering, services
from takedown import secrets as partner_secrets
from takedown.models import Notice, NoticeKind, OutboxEntry, Partner, PartnerContact

logger = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 3600
LOCK_NAMESPACE = 0x6E74_6431  # the first key of the two-key advisory lock: "ntd1"; the second is the notice id
USER_AGENT = "ntd-notices/1"


class DeliveryError(Exception):
    """A delivery attempt that failed; `permanent` ones are not tried again."""

    def __init__(self, reason: str, *, permanent: bool, retry_after: float | None = None,
                 status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after
        self.status = status  # the HTTP status that was answered, if any


@dataclass(frozen=True)
class Outcome:
    """What one run did: gone (no such notice), done (no longer queued), waiting (grouping window open), busy
    (another run is sending it), sent, retry, failed. `retry_at`: when the task should run again."""

    status: str
    retry_at: dt.datetime | None = None
    detail: str = ""


# --- The run -----------------------------------------------------------------------------------------------


def deliver(notice_id: int) -> Outcome:
    with sending_lock(notice_id) as held:
        if not held:
            return Outcome("busy")
        sealed = seal(notice_id)
        if isinstance(sealed, Outcome):
            return sealed
        try:
            recipient_reference = send(sealed)
        except DeliveryError as error:
            return record_failure(notice_id, error)
        with transaction.atomic():
            Notice.objects.filter(pk=notice_id).update(attempts=F("attempts") + 1)
            services.mark_sent(notice_id, recipient_reference=recipient_reference)
        return Outcome("sent")


@contextmanager
def sending_lock(notice_id: int) -> Iterator[bool]:
    """Hold the notice's delivery lock for the duration of the block (True), or not get it (False)."""
    if connection.vendor != "postgresql":
        yield True
        return
    key = (LOCK_NAMESPACE, notice_id % 2**31)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", key)
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s, %s)", key)
            except Exception:  # a broken connection: the lock went with it
                logger.warning("could not release the delivery lock of notice %s", notice_id, exc_info=True)


def seal(notice_id: int, now: dt.datetime | None = None) -> Notice | Outcome:
    """The notice to send, sealed (now or earlier), or what to do instead."""
    now = now or timezone.now()
    with transaction.atomic():
        notice = (Notice.objects.select_for_update(of=("self",)).select_related("partner", "contact")
                  .filter(pk=notice_id).first())
        if notice is None:
            return Outcome("gone")
        if notice.state != Notice.State.QUEUED:
            OutboxEntry.objects.filter(notice_id=notice_id, done_at=None).update(done_at=now)
            return Outcome("done", detail=notice.state)
        if notice.sealed_at is not None:
            return notice
        if notice.due_at > now:
            return Outcome("waiting", retry_at=notice.due_at)
        try:
            _seal(notice, now)
        except DeliveryError as error:
            notice.last_error = error.reason[:500]
            notice.save(update_fields=["last_error"])
            services.mark_failed(notice_id, reason=error.reason)
            return Outcome("failed", detail=error.reason)
        return notice


def _seal(notice: Notice, now: dt.datetime) -> None:
    partner = notice.partner
    contact = None
    if notice.channel == Notice.Channel.NTD:
        if not partner.ntd_url:
            raise DeliveryError(f"{partner} runs ntd, but the address of their ntd is not set.", permanent=True)
        channel = Notice.Channel.NTD
    else:
        contact = choose_contact(partner, now)
        if contact is None:
            raise DeliveryError(f"{partner} has no active contact with an e-mail address or a webhook.",
                                permanent=True)
        channel = contact_channel(contact)
        notice.language = contact.language or notice.language or "en"
    notice.deadline_at = rendering.notice_deadline(notice, now)
    if notice.kind == NoticeKind.STATUS_UPDATE:
        if channel != Notice.Channel.NTD:
            raise DeliveryError(f"A status update goes only to a partner's ntd, and {partner} no longer runs one.",
                                permanent=True)
        if not notice.payload.get("path"):
            raise DeliveryError("A status update carries no request for the partner's ntd.", permanent=True)
        case_ids = tuple(notice.items.order_by("pk").values_list("case_id", flat=True))
    else:
        try:
            rendered = rendering.render(notice, now)
        except (rendering.NoTemplate, TemplateSyntaxError) as error:
            raise DeliveryError(f"The notice could not be written: {error}", permanent=True) from None
        notice.subject, notice.body, case_ids = rendered.subject, rendered.body, rendered.case_ids
        if channel == Notice.Channel.NTD:
            from takedown import exchange

            try:
                notice.payload = exchange.referral_payload(notice)
            except ValueError as error:
                raise DeliveryError(f"The referral could not be written: {error}", permanent=True) from None
        else:
            notice.payload = rendered.payload
    notice.contact = contact
    notice.channel = channel
    notice.email_to = contact.email if contact is not None and channel in ("email", "both") else ""
    notice.webhook_url = contact.webhook_url if contact is not None and channel in ("webhook", "both") else ""
    notice.sealed_at = now
    notice.save(update_fields=["contact", "channel", "language", "deadline_at", "subject", "body", "payload",
                               "email_to", "webhook_url", "sealed_at"])
    audit.record(actor=None, action=audit.Action.NOTICE_SEALED, target=notice,
                 case_id=case_ids[0] if len(case_ids) == 1 else None, data={
                     "notice": notice.reference, "kind": notice.kind, "channel": channel,
                     "partner_contact": contact.pk if contact is not None else None, "language": notice.language,
                     "cases": len(case_ids), "deadline_at": notice.deadline_at.isoformat()})


# --- Choosing the contact ----------------------------------------------------------------------------------


def contact_channel(contact: PartnerContact) -> str:
    email = contact.sends_email and bool(contact.email)
    webhook = contact.sends_webhook and bool(contact.webhook_url)
    if email and webhook:
        return Notice.Channel.BOTH
    return Notice.Channel.EMAIL if email else Notice.Channel.WEBHOOK


def _reachable(contact: PartnerContact) -> bool:
    return (contact.sends_email and bool(contact.email)) or (contact.sends_webhook and bool(contact.webhook_url))


def choose_contact(partner: Partner, now: dt.datetime) -> PartnerContact | None:
    """An active contact in its business hours now, else the out-of-hours contact, else any active contact."""
    contacts = [c for c in partner.contacts.filter(is_active=True).order_by("pk") if _reachable(c)]
    for contact in contacts:
        if not contact.out_of_hours and in_business_hours(contact, now):
            return contact
    for contact in contacts:
        if contact.out_of_hours:
            return contact
    return contacts[0] if contacts else None


def in_business_hours(contact: PartnerContact, now: dt.datetime) -> bool:
    if contact.around_the_clock:
        return True
    try:
        zone = zoneinfo.ZoneInfo(contact.time_zone or "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        zone = zoneinfo.ZoneInfo("UTC")
    local = now.astimezone(zone)
    days = {int(day) for day in contact.working_days.split(",") if day.strip().isdigit()}
    if local.weekday() not in days:
        return False
    if contact.holidays_country and local.date() in _holidays(contact.holidays_country,
                                                               contact.holidays_subdivision, local.year):
        return False
    start, end = contact.hours_start, contact.hours_end
    if start is None or end is None:
        return True
    moment = local.time().replace(tzinfo=None)
    return start <= moment < end if start <= end else (moment >= start or moment < end)


def _holidays(country: str, subdivision: str, year: int) -> Any:
    try:
        return holidays.country_holidays(country.upper(), subdiv=subdivision or None, years=year)
    except (NotImplementedError, KeyError, ValueError):
        logger.warning("unknown holiday calendar %s/%s: business days only", country, subdivision)
        return {}


# --- Sending -----------------------------------------------------------------------------------------------


def send(notice: Notice) -> str:
    """Send the sealed notice on its channel; the recipient's reference (their ntd's) or ''. DeliveryError."""
    if notice.channel == Notice.Channel.NTD:
        return send_ntd(notice)
    if notice.channel in (Notice.Channel.EMAIL, Notice.Channel.BOTH):
        send_email(notice)
    if notice.channel in (Notice.Channel.WEBHOOK, Notice.Channel.BOTH):
        send_webhook(notice)
    return ""


def email_message(notice: Notice) -> EmailMessage:
    """The e-mail of a sealed notice: plain text, no attachment, the same Message-ID on every attempt."""
    return EmailMessage(
        subject=notice.subject, body=notice.body, from_email=settings.DEFAULT_FROM_EMAIL, to=[notice.email_to],
        headers={"Message-ID": notice.message_id, "Auto-Submitted": "auto-generated",
                 "X-Ntd-Notice": notice.reference},
    )


def send_email(notice: Notice) -> None:
    if not notice.email_to:
        raise DeliveryError("The notice has no e-mail address to go to.", permanent=True)
    try:
        email_message(notice).send()
    except smtplib.SMTPRecipientsRefused as error:
        codes = [code for code, _ in error.recipients.values()]
        answers = "; ".join(f"{code} {_text(message)}" for code, message in error.recipients.values())
        raise DeliveryError(f"The mail server refused the address: {answers}"[:500],
                            permanent=all(code >= 500 for code in codes)) from None
    except smtplib.SMTPResponseException as error:
        raise DeliveryError(f"The mail server answered {error.smtp_code} {_text(error.smtp_error)}"[:500],
                            permanent=error.smtp_code >= 500) from None
    except (smtplib.SMTPException, OSError) as error:
        raise DeliveryError(f"The mail server could not be reached: {error or type(error).__name__}"[:500],
                            permanent=False) from None


def _text(message: Any) -> str:
    return message.decode(errors="replace") if isinstance(message, bytes) else str(message)


_CLIENT: tuple[int, httpx.Client] | None = None


def http_client() -> httpx.Client:
    """One connection pool per process (a forked worker child makes its own)."""
    global _CLIENT
    if _CLIENT is None or _CLIENT[0] != os.getpid():
        _CLIENT = (os.getpid(), httpx.Client(follow_redirects=False, headers={"User-Agent": USER_AGENT}))
    return _CLIENT[1]


def check_address(url: str, what: str) -> None:
    if url.startswith("https://") or (settings.NOTICE_ALLOW_HTTP and url.startswith("http://")):
        return
    raise DeliveryError(f"The {what} address must start with https:// ({url[:80]}).", permanent=True)


def webhook_request(notice: Notice, secret: str, now: dt.datetime | None = None) -> tuple[bytes, dict[str, str]]:
    """The body and the Standard Webhooks headers: webhook-id is the notice's idempotency key, on every attempt."""
    body = json.dumps(notice.payload, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    message_id = str(notice.idempotency_key)
    moment = now or timezone.now()
    return body, {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(moment.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, moment, body),
    }


def send_webhook(notice: Notice) -> None:
    url = notice.webhook_url
    if not url:
        raise DeliveryError("The notice has no webhook address to go to.", permanent=True)
    check_address(url, "webhook")
    contact = notice.contact
    if contact is None:
        raise DeliveryError("The webhook contact was removed after the notice was written.", permanent=True)
    secret = partner_secrets.webhook_secret(contact)
    if not secret:
        raise DeliveryError("The webhook contact has no signing secret: make one in the admin.", permanent=True)
    body, headers = webhook_request(notice, secret)
    _post(url, body, headers, "webhook")


def send_ntd(notice: Notice) -> str:
    partner = notice.partner
    path, body = notice.payload.get("path"), notice.payload.get("body")
    if not isinstance(path, str) or not path.startswith("/") or not isinstance(body, dict):
        raise DeliveryError("The notice carries no request for the partner's ntd.", permanent=True)
    url = partner.ntd_url.rstrip("/") + path
    check_address(url, "partner's ntd")
    key = partner_secrets.ntd_api_key(partner)
    if not key:
        raise DeliveryError(f"There is no API key for the ntd of {partner}: set it in the admin.", permanent=True)
    content = json.dumps(body, ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
    try:
        response = _post(url, content, {"Content-Type": "application/json", "Accept": "application/json",
                                        "X-Api-Key": key}, "partner's ntd")
    except DeliveryError as error:
        if notice.kind == NoticeKind.STATUS_UPDATE and error.status in (404, 409):
            # Their referral may not be marked sent on their side yet (our answer can outrun it): try again.
            raise DeliveryError(error.reason, permanent=False, status=error.status) from None
        raise
    try:
        answer = response.json()
    except ValueError:
        return ""
    reference = answer.get("reference") if isinstance(answer, dict) else None
    return reference[:128] if isinstance(reference, str) else ""


def _post(url: str, content: bytes, headers: dict[str, str], what: str) -> httpx.Response:
    timeout = settings.NOTICE_HTTP_TIMEOUT
    try:
        response = http_client().post(url, content=content, headers=headers, timeout=timeout)
    except httpx.TimeoutException:
        raise DeliveryError(f"The {what} did not answer within {timeout:g} s.", permanent=False) from None
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as error:
        raise DeliveryError(f"The {what} address is not usable: {error}"[:500], permanent=True) from None
    except httpx.TransportError as error:
        raise DeliveryError(f"The {what} could not be reached: {error or type(error).__name__}"[:500],
                            permanent=False) from None
    status = response.status_code
    if 200 <= status < 300:
        return response
    answered = f"{status} {response.reason_phrase}".strip()
    if 300 <= status < 400:
        raise DeliveryError(f"The {what} answered with a redirect ({answered}), which ntd does not follow.",
                            permanent=True)
    if status in (408, 429) or status >= 500:
        raise DeliveryError(f"The {what} answered {answered}.", permanent=False,
                            retry_after=_retry_after(response.headers.get("Retry-After")))
    raise DeliveryError(f"The {what} answered {answered}.", permanent=True, status=status)


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - timezone.now()).total_seconds())


# --- After a failed attempt --------------------------------------------------------------------------------


def backoff(attempts: int) -> float:
    """Seconds before attempt `attempts + 1`: NOTICE_RETRY_SECONDS, doubling, at most an hour."""
    return min(settings.NOTICE_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS)


def record_failure(notice_id: int, error: DeliveryError, now: dt.datetime | None = None) -> Outcome:
    """Count the attempt; fail the notice (permanent, or the last attempt) or schedule the next one."""
    now = now or timezone.now()
    with transaction.atomic():
        notice = Notice.objects.select_for_update().filter(pk=notice_id).first()
        if notice is None or notice.state != Notice.State.QUEUED:
            return Outcome("done")
        notice.attempts += 1
        notice.last_error = error.reason[:500]
        notice.save(update_fields=["attempts", "last_error"])
        last = error.permanent or notice.attempts >= settings.NOTICE_MAX_ATTEMPTS
        retry_at = None
        if not last:
            delay = min(max(backoff(notice.attempts), error.retry_after or 0), MAX_BACKOFF_SECONDS)
            retry_at = now + dt.timedelta(seconds=delay)
            OutboxEntry.objects.filter(notice_id=notice_id, done_at=None).update(due_at=retry_at, published_at=now)
        audit.record(actor=None, action=audit.Action.NOTICE_ATTEMPT_FAILED, target=notice, data={
            "notice": notice.reference, "attempt": notice.attempts, "error": notice.last_error,
            "permanent": error.permanent, "retry_at": retry_at.isoformat() if retry_at else None})
        if last:
            reason = error.reason if error.permanent else f"{error.reason} (gave up after {notice.attempts} attempts)"
            services.mark_failed(notice_id, reason=reason)
            return Outcome("failed", detail=reason)
    return Outcome("retry", retry_at=retry_at, detail=error.reason)


# --- The relay ---------------------------------------------------------------------------------------------


def relay_outbox(now: dt.datetime | None = None, batch: int = 500) -> int:
    """Re-publish deliveries that should have happened by now but have not (their message was lost); the count.

    Entries are claimed with SKIP LOCKED, so two relays at once share the work instead of doubling it; each
    entry's published_at is set, so it is published at most once per grace period.
    """
    from takedown.tasks import deliver_notice_task

    now = now or timezone.now()
    cutoff = now - dt.timedelta(seconds=settings.NOTICE_RELAY_GRACE_SECONDS)
    published = 0
    while True:
        with transaction.atomic():
            rows = list(OutboxEntry.objects.select_for_update(skip_locked=True)
                        .filter(done_at=None, due_at__lt=cutoff)
                        .filter(Q(published_at=None) | Q(published_at__lt=cutoff))
                        .order_by("due_at", "pk").values_list("pk", "notice_id")[:batch])
            OutboxEntry.objects.filter(pk__in=[pk for pk, _ in rows]).update(published_at=now)
            notice_ids = [notice_id for _, notice_id in rows]
            transaction.on_commit(lambda ids=notice_ids: _publish(deliver_notice_task, ids))
        published += len(rows)
        if len(rows) < batch:
            return published


def _publish(task: Any, notice_ids: list[int]) -> None:
    for notice_id in notice_ids:
        try:
            task.apply_async((notice_id,))
        except Exception:  # the broker is down: published_at ages and the next relay tries again
            logger.exception("the relay could not publish the delivery of notice %s", notice_id)
            return
