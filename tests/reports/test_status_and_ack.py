"""An identified reporter: the acknowledgement by e-mail, the encrypted address, the status page.

The acknowledgement goes the way it goes in production: the form's transaction commits, the task is enqueued
on the real Redis broker, a real Celery worker (in a thread of this process) runs it, and Django's SMTP backend
delivers it to a real SMTP server on loopback (aiosmtpd). The worker consumes a queue of its own, so it never
takes a message another test left on the broker.
"""

from __future__ import annotations

import email
import re
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings
from django.test import Client

from evidence.crypto import DecryptionError, open_sealed
from evidence.keys import keyring_from_settings
from ntd.audit import AuditEvent
from ntd.celery import app as celery_app
from reports import abuse
from reports.intake import contact_aad
from reports.models import Case, Report
from reports.references import status_secret_digest
from reports.tasks import send_acknowledgement_task
from tests.celery_worker import Worker
from tests.mailbox import Mailbox
from tests.security.test_no_reporter_trace import database_text, redis_content

ADDRESS = "reporter.4711@example.org"
OTHER_ADDRESS = "someone.else.0815@example.net"
NO_MATCH = "No report matches this reference and code."


# --- A real SMTP server (the `mailbox` of tests/mailbox.py), a real worker -----------------------------------


class AckWorker:
    """The worker's runs of the acknowledgement task."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def next_run(self, timeout: float = 30) -> tuple[str, Any]:
        return self.worker.next_run(send_acknowledgement_task, timeout)


@pytest.fixture
def worker(celery_worker: Worker, mailbox: Mailbox) -> AckWorker:
    """A real worker on the real broker; the database really commits, so it sees what the request wrote."""
    return AckWorker(celery_worker)


# --- The public pages --------------------------------------------------------------------------------------


def report_with_contact(client: Client, address: str, urls: str = "https://example.com/a") -> Report:
    response = client.post("/report/", {
        "urls": urls, "material_kind": "images", "encountered_via": "website", "contact": "email",
        "email": address, "stamp": abuse.form_stamp()})
    assert response.status_code == 302, response.content.decode()
    assert address not in response["Location"]
    return Report.objects.latest("id")


def status_of(client: Client, reference: str, code: str) -> tuple[int, str]:
    response = client.post("/report/status/", {"reference": reference, "code": code})
    page = response.content.decode()
    result = re.search(r'id="status-result">([^<]+)<', page)
    return response.status_code, result.group(1) if result else ("no match" if NO_MATCH in page else page)


def code_in(message: email.message.EmailMessage) -> str:
    return re.search(r"Your status code: (\S+)", message.get_content()).group(1)


class TestAcknowledgement:
    def test_an_identified_reporter_gets_the_reference_and_a_status_code_by_mail(self, client, worker, mailbox):
        report = report_with_contact(client, ADDRESS)

        assert worker.next_run() == ("SUCCESS", True)
        [envelope] = mailbox.envelopes
        [message] = mailbox.messages()
        assert envelope.rcpt_tos == [ADDRESS] and message["To"] == ADDRESS
        assert message["From"] == django_settings.DEFAULT_FROM_EMAIL
        assert message["Message-ID"] == f"<ack.{report.reference}@localhost>"
        assert message["Auto-Submitted"] == "auto-generated"
        assert report.reference in message["Subject"]
        body = message.get_content()
        assert f"Your reference: {report.reference}" in body
        code = code_in(message)
        assert len(code) >= 16
        assert "/report/status/" in body
        report.refresh_from_db()
        assert report.acknowledged_at is not None
        assert report.status_secret_digest == status_secret_digest(code)
        assert AuditEvent.objects.filter(action="report.acknowledged", target_id=str(report.pk)).count() == 1

    def test_a_second_run_of_the_task_sends_nothing(self, client, worker, mailbox):
        report = report_with_contact(client, ADDRESS)
        assert worker.next_run() == ("SUCCESS", True)
        code = code_in(mailbox.messages()[0])

        send_acknowledgement_task.delay(report.pk, code)

        assert worker.next_run() == ("SUCCESS", False)
        assert len(mailbox.envelopes) == 1
        assert AuditEvent.objects.filter(action="report.acknowledged").count() == 1

    def test_the_address_is_kept_only_encrypted_and_bound_to_its_report(self, client, worker, mailbox):
        report = report_with_contact(client, ADDRESS)
        other = report_with_contact(client, OTHER_ADDRESS, urls="https://example.com/b")
        assert [worker.next_run(), worker.next_run()] == [("SUCCESS", True)] * 2
        codes = [code_in(message) for message in mailbox.messages()]

        sealed = bytes(Report.objects.get(pk=report.pk).contact_sealed)
        assert open_sealed(sealed, aad=contact_aad(report.reference), keyring=keyring_from_settings()) == \
            ADDRESS.encode()
        with pytest.raises(DecryptionError):  # moved to another report, it does not open
            open_sealed(sealed, aad=contact_aad(other.reference), keyring=keyring_from_settings())
        database, broker_and_cache = database_text(), redis_content().decode("utf-8", "backslashreplace")
        assert "reports.report:" not in database  # the aad is not stored either: it is rebuilt from the reference
        for address in (ADDRESS, OTHER_ADDRESS, "reporter.4711", "someone.else.0815"):
            assert address.lower() not in database.lower() and address.lower() not in broker_and_cache.lower()
        for code in codes:  # kept only as a digest (the broker holds it until the worker has acknowledged the task)
            assert code not in database

    def test_an_anonymous_report_enqueues_nothing(self, client, django_capture_on_commit_callbacks, db):
        with django_capture_on_commit_callbacks() as callbacks:
            response = client.post("/report/", {
                "urls": "https://example.com/a", "material_kind": "images", "encountered_via": "website",
                "contact": "anonymous", "email": ADDRESS, "stamp": abuse.form_stamp()})

        assert response.status_code == 302
        assert callbacks == []
        assert Report.objects.get().contact_sealed is None  # an address typed, then "stay anonymous": not kept

    def test_the_task_is_enqueued_only_once_the_report_is_committed(self, client, task_queue,
                                                                     django_capture_on_commit_callbacks, db):
        broker = redis.Redis.from_url(celery_app.conf.broker_url)

        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            report_with_contact(client, ADDRESS)
        enqueued_before_commit = broker.llen(task_queue)
        for callback in callbacks:  # what the commit would run
            callback()

        assert len(callbacks) == 1
        assert enqueued_before_commit == 0
        assert broker.llen(task_queue) == 1


class TestStatusPage:
    def test_the_reference_and_code_show_a_coarse_status(self, client, worker, mailbox):
        report = report_with_contact(client, ADDRESS, urls="https://example.com/a\nhttps://example.com/b")
        assert worker.next_run() == ("SUCCESS", True)
        code = code_in(mailbox.messages()[0])

        received = status_of(client, report.reference, code)
        Case.objects.update(status=Case.Status.NOT_ILLEGAL)
        no_action = status_of(client, report.reference.lower(), code)
        Case.objects.filter(url="https://example.com/b").update(status=Case.Status.CONFIRMED)
        action_taken = status_of(client, report.reference, f" {code} ")

        assert received == (200, "Received: waiting to be assessed.")
        assert no_action == (200, "Assessed: no action needed.")
        assert action_taken == (200, "Assessed: action taken.")
        assert AuditEvent.objects.filter(action="report.status_viewed", target_id=str(report.pk)).count() == 3

    def test_a_wrong_code_and_another_reports_code_get_the_same_answer(self, client, worker, mailbox):
        report = report_with_contact(client, ADDRESS)
        other = report_with_contact(client, OTHER_ADDRESS, urls="https://example.com/b")
        assert [worker.next_run(), worker.next_run()] == [("SUCCESS", True)] * 2
        by_recipient = {message["To"]: code_in(message) for message in mailbox.messages()}
        anonymous = client.post("/report/", {"urls": "https://example.com/c", "material_kind": "images",
                                             "encountered_via": "website", "contact": "anonymous",
                                             "stamp": abuse.form_stamp()})
        assert anonymous.status_code == 302
        anonymous_reference = Report.objects.latest("id").reference

        answers = {
            "wrong code": status_of(client, report.reference, "not-the-code"),
            "another report's code": status_of(client, report.reference, by_recipient[OTHER_ADDRESS]),
            "this report's code with the other's reference": status_of(
                client, other.reference, by_recipient[ADDRESS]),
            "unknown reference": status_of(client, "R-0000-0000", by_recipient[ADDRESS]),
            "anonymous report": status_of(client, anonymous_reference, by_recipient[ADDRESS]),
            "a code that is a digest": status_of(client, report.reference, report.status_secret_digest),
        }

        assert set(answers.values()) == {(400, "no match")}, answers
        assert not AuditEvent.objects.filter(action="report.status_viewed").exists()
        assert status_of(client, report.reference, by_recipient[ADDRESS]) == (200, "Received: waiting to be assessed.")
