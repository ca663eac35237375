"""Verifying the audit chain from the UI (ntd/verification.py, ntd/verify_views.py).

The runs go the way they go in production: the start commits, the task goes to the real Redis broker, a real
Celery worker in a thread of this process walks the chain, and a failure's alert reaches a real SMTP server on
loopback. Tampering is done as a database superuser would (tests/ntd/test_audit.py: triggers switched off).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from ntd import audit, verification
from ntd.audit import AuditEvent, Fault
from ntd.models import VerificationRun
from ntd.roles import ADMIN, ANALYST, AUDITOR
from ntd.tasks import alert_verification_failed_task, verify_audit_log_nightly_task, verify_audit_log_task
from tests.ntd.test_audit import edit_data, triggers_disabled, write_events

Status = VerificationRun.Status
STARTED, VERIFIED = audit.Action.AUDIT_VERIFICATION_STARTED, audit.Action.AUDIT_VERIFIED
HTMX = {"HX-Request": "true"}


def signed_in(user: Any) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@pytest.fixture
def checkpointed(settings: Any) -> None:
    settings.AUDIT_CHECKPOINT_EVERY = 5  # signed checkpoints along the way, as in production


# --- With a real worker ------------------------------------------------------------------------------------------


@pytest.mark.usefixtures("checkpointed")
class TestRunsOnTheWorker:
    def test_an_intact_chain_passes_with_its_progress_reaching_the_total(self, celery_worker, make_staff,
                                                                          monkeypatch):
        monkeypatch.setattr(verification, "PROGRESS_EVERY", 4)
        progress: list[int] = []
        save_progress = verification._save_progress
        monkeypatch.setattr(verification, "_save_progress",
                            lambda run_id, n: (progress.append(n), save_progress(run_id, n)))
        write_events(10)
        auditor = make_staff(AUDITOR, username="ada").user
        client = signed_in(auditor)

        # when
        response = client.post("/audit/verify/start/")

        # then
        assert response.status_code == 302 and response["Location"] == "/audit/verify/"
        assert celery_worker.next_run(verify_audit_log_task) == ("SUCCESS", "passed")
        run = VerificationRun.objects.get()
        started = AuditEvent.objects.get(action=STARTED)
        assert (started.actor_id, started.target_type, started.target_id) == (
            str(auditor.pk), "ntd.verificationrun", str(run.pk))
        assert run.started_by == auditor and run.finished_at is not None
        assert run.total == run.checked == run.last_seq == started.seq  # the chain up to its own start event
        assert run.percent == 100 and run.first_bad_seq is None and run.fault == ""
        assert progress == list(range(4, run.total + 1, 4))  # one write per PROGRESS_EVERY events
        verified = AuditEvent.objects.get(action=VERIFIED)
        assert verified.data == {"up_to": run.last_seq, "head": started.hash, "ok": True, "run": run.pk}
        assert audit.verify_chain().ok

        page = client.get("/audit/verify/").content.decode()
        assert '<span class="status-badge" id="run-status">Intact</span>' in page
        assert f"#{run.last_seq}" in page and "by ada" in page and 'role="alert"' not in page
        assert "hx-trigger" not in page and 'id="verify-now"' in page

    def test_a_tampered_chain_fails_at_the_first_bad_row_and_the_admins_are_alerted(
            self, celery_worker, mailbox, make_staff):
        admin = make_staff(ADMIN, email="admin@example.org").user
        make_staff(ADMIN)  # no address
        make_staff(ADMIN, email="former.admin@example.org", is_active=False)
        make_staff(AUDITOR, email="auditor@example.org")  # not an admin
        events = write_events(10)
        bad = events[3].seq
        with triggers_disabled():
            edit_data(bad)
        auditor = make_staff(AUDITOR).user
        count = AuditEvent.objects.count()

        run = verification.start_verification(actor=auditor)

        assert celery_worker.next_run(verify_audit_log_task) == ("SUCCESS", "failed")
        assert celery_worker.next_run(alert_verification_failed_task) == ("SUCCESS", 1)
        run.refresh_from_db()
        assert (run.status, run.first_bad_seq, run.fault, run.detail) == (
            Status.FAILED, bad, Fault.EDITED, "stored hash differs")
        assert run.last_seq == bad and run.checked == bad - 1
        assert AuditEvent.objects.count() == count + 1  # its start; a broken chain is not recorded as verified
        [envelope] = mailbox.envelopes
        [message] = mailbox.messages()
        assert envelope.rcpt_tos == ["admin@example.org"]
        assert message["Subject"] == f"[{django_settings.NTD_DEPLOYMENT_NAME}] Audit log verification FAILED at #{bad}"
        assert message["Message-ID"] == f"<audit-verification.{run.pk}.failed@localhost>"
        body = message.get_content()
        assert f"First bad sequence number: #{bad}" in body and Fault.EDITED.label in body
        assert f"{django_settings.NTD_PUBLIC_URL}/audit/verify/" in body

        # the banner, on the verification page and on the home of auditors and admins
        page = signed_in(auditor).get("/audit/verify/").content.decode()
        assert 'role="alert" id="verification-failed"' in page and f"<strong>#{bad}</strong>" in page
        assert Fault.EDITED.label in page and "stored hash differs" in page
        for user in (auditor, admin):
            home = signed_in(user).get("/").content.decode()
            assert 'id="verification-failed"' in home and f"<strong>#{bad}</strong>" in home
        assert 'href="/audit/verify/"' not in signed_in(admin).get("/").content.decode()  # not theirs to open
        assert "verification-failed" not in signed_in(make_staff(ANALYST).user).get("/").content.decode()

    def test_starting_while_a_run_is_under_way_returns_that_run(self, celery_worker, make_staff, monkeypatch):
        monkeypatch.setattr(verification, "PROGRESS_EVERY", 2)
        walking, go_on = threading.Event(), threading.Event()
        save_progress = verification._save_progress

        def held_up(run_id: int, n: int) -> None:
            save_progress(run_id, n)
            walking.set()
            go_on.wait(30)

        monkeypatch.setattr(verification, "_save_progress", held_up)
        write_events(6)
        first_auditor, second_auditor = make_staff(AUDITOR).user, make_staff(AUDITOR).user
        poller = signed_in(second_auditor)
        try:
            first = verification.start_verification(actor=first_auditor)
            assert walking.wait(30), "the worker did not start walking"

            again = verification.start_verification(actor=second_auditor)
            partial = poller.get("/audit/verify/progress/", headers=HTMX)
            page = poller.get("/audit/verify/").content.decode()
        finally:
            go_on.set()

        assert again.pk == first.pk and again.status == Status.RUNNING
        content = partial.content.decode()
        assert partial.status_code == 200 and content.lstrip().startswith('<div id="latest-run"')
        assert 'hx-get="/audit/verify/progress/" hx-trigger="every 2s"' in content
        assert f'<progress id="run-progress" max="{again.total}" value="2">' in content
        assert 'id="verify-now"' not in page  # nothing to start while a run is under way
        assert celery_worker.next_run(verify_audit_log_task) == ("SUCCESS", "passed")
        assert VerificationRun.objects.count() == 1 and AuditEvent.objects.filter(action=STARTED).count() == 1
        # once it has its verdict, the poll reloads the page (verdict, alert, history) and polls no more
        done = poller.get("/audit/verify/progress/", headers=HTMX)
        assert done.status_code == 200 and done["HX-Refresh"] == "true"
        assert "hx-trigger" not in poller.get("/audit/verify/progress/").content.decode()


# --- The service, in the test's transaction ---------------------------------------------------------------------


@pytest.mark.django_db
class TestStart:
    def test_the_task_is_sent_only_after_commit(self, make_staff, django_capture_on_commit_callbacks, monkeypatch):
        sent: list[int] = []
        monkeypatch.setattr(verify_audit_log_task, "delay", sent.append)

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            run = verification.start_verification(actor=make_staff(AUDITOR).user)
            assert sent == []

        assert len(callbacks) == 1 and sent == [run.pk]
        assert run.status == Status.QUEUED

    def test_a_queued_run_is_returned_instead_of_a_second(self, make_staff, django_capture_on_commit_callbacks):
        with django_capture_on_commit_callbacks() as callbacks:
            first = verification.start_verification(actor=make_staff(AUDITOR).user)
            again = verification.start_verification(actor=make_staff(AUDITOR).user)

        assert again.pk == first.pk and len(callbacks) == 1
        assert AuditEvent.objects.filter(action=STARTED).count() == 1

    def test_a_run_whose_worker_is_gone_is_closed_and_a_new_one_starts(self, make_staff):
        # running, but nobody holds the verifier's lock: its worker died
        lost = VerificationRun.objects.create(status=Status.RUNNING, total=10, checked=5)

        run = verification.start_verification(actor=make_staff(AUDITOR).user)

        lost.refresh_from_db()
        assert run.pk != lost.pk and run.status == Status.QUEUED
        assert (lost.status, lost.detail) == (Status.ERROR, "The worker stopped before it finished.")

    def test_a_run_queued_too_long_is_closed_and_a_new_one_starts(self, make_staff):
        lost = VerificationRun.objects.create()
        VerificationRun.objects.filter(pk=lost.pk).update(
            requested_at=lost.requested_at - verification.QUEUED_TIMEOUT - dt.timedelta(seconds=1))

        run = verification.start_verification(actor=make_staff(AUDITOR).user)

        lost.refresh_from_db()
        assert run.pk != lost.pk and (lost.status, lost.detail) == (Status.ERROR, "No worker picked the run up.")

    def test_only_who_may_verify_starts_a_run(self, make_staff):
        with pytest.raises(PermissionDenied):
            verification.start_verification(actor=make_staff(ADMIN).user)
        assert not VerificationRun.objects.exists()

    def test_the_nightly_schedule_starts_a_run_without_a_user(self):
        assert django_settings.CELERY_BEAT_SCHEDULE["audit-verify-nightly"]["task"] == \
            verify_audit_log_nightly_task.name

        run_id = verify_audit_log_nightly_task()

        run = VerificationRun.objects.get(pk=run_id)
        assert run.started_by is None and run.status == Status.QUEUED
        started = AuditEvent.objects.get(action=STARTED)
        assert (started.actor_type, started.data) == ("system", {"scheduled": True})


@pytest.mark.django_db
class TestRun:
    def test_a_finished_run_run_again_does_nothing(self, make_staff):
        run = verification.start_verification(actor=make_staff(AUDITOR).user)
        verification.run_verification(run.pk)
        run.refresh_from_db()
        assert run.status == Status.PASSED
        before = (AuditEvent.objects.count(), run.finished_at)

        again = verification.run_verification(run.pk)

        again.refresh_from_db()
        assert again.status == Status.PASSED and (AuditEvent.objects.count(), again.finished_at) == before

    def test_a_run_delivered_again_after_its_worker_died_starts_the_walk_again(self):
        write_events(3)
        run = VerificationRun.objects.create(status=Status.RUNNING, total=3, checked=2)

        verification.run_verification(run.pk)

        run.refresh_from_db()
        assert (run.status, run.checked, run.last_seq) == (Status.PASSED, 3, 3)

    def test_a_run_another_worker_is_verifying_is_left_to_it(self):
        run = VerificationRun.objects.create()
        other = connection.get_new_connection(connection.get_connection_params())
        try:
            other.execute("SELECT pg_advisory_lock(%s)", [verification._VERIFIER_LOCK_ID])

            verification.run_verification(run.pk)
        finally:
            # Unlocked before closing: the server lets go of a closed session's locks a moment later, which the
            # next test could see.
            other.execute("SELECT pg_advisory_unlock(%s)", [verification._VERIFIER_LOCK_ID])
            other.close()

        run.refresh_from_db()
        assert run.status == Status.QUEUED and not AuditEvent.objects.filter(action=VERIFIED).exists()

    def test_an_error_while_walking_closes_the_run_as_an_error(self, monkeypatch):
        run = VerificationRun.objects.create()

        def broken(**_: Any) -> None:
            raise ConnectionResetError("the database went away at 10.0.0.7")

        monkeypatch.setattr(audit, "verify_chain", broken)
        with pytest.raises(ConnectionResetError):
            verification.run_verification(run.pk)

        run.refresh_from_db()
        assert (run.status, run.detail) == (Status.ERROR, "Stopped by an error: ConnectionResetError")

    def test_no_admin_address_no_mail(self, mailbox, make_staff):
        make_staff(ADMIN)
        run = VerificationRun.objects.create(status=Status.FAILED, first_bad_seq=4, fault=Fault.EDITED)

        assert verification.alert_admins(run.pk) == 0
        assert mailbox.envelopes == []

    def test_a_run_that_did_not_fail_alerts_no_one(self, mailbox, make_staff):
        make_staff(ADMIN, email="admin@example.org")
        run = VerificationRun.objects.create(status=Status.PASSED)

        assert verification.alert_admins(run.pk) == 0
        assert mailbox.envelopes == []


# --- The pages -----------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestPages:
    @pytest.mark.parametrize(("role", "status"), [(ANALYST, 403), (ADMIN, 403), (AUDITOR, 200)])
    def test_only_who_may_verify_sees_the_page(self, client_for, role, status):
        assert client_for(role).get("/audit/verify/").status_code == status
        assert client_for(role).get("/audit/verify/progress/").status_code == status

    def test_starting_takes_a_post(self, client_for):
        assert client_for(AUDITOR).get("/audit/verify/start/").status_code == 405
        assert not VerificationRun.objects.exists()

    def test_an_analyst_cannot_start_a_run(self, client_for):
        assert client_for(ANALYST).post("/audit/verify/start/").status_code == 403
        assert not VerificationRun.objects.exists()

    def test_a_page_before_any_run(self, client_for):
        page = client_for(AUDITOR).get("/audit/verify/").content.decode()
        assert "has not been verified here yet" in page and 'id="verify-now"' in page

    def test_the_history_costs_the_same_queries_for_one_run_or_twenty(self, client_for, make_staff):
        client = client_for(AUDITOR)
        starters = [make_staff(AUDITOR).user for _ in range(3)]

        def queries() -> int:
            client.get("/audit/verify/")  # warm the session and permission caches
            with CaptureQueriesContext(connection) as captured:
                assert client.get("/audit/verify/").status_code == 200
            return len(captured)

        VerificationRun.objects.create(status=Status.PASSED, started_by=starters[0])
        one = queries()
        VerificationRun.objects.bulk_create(
            VerificationRun(status=Status.FAILED if i % 5 == 0 else Status.PASSED, started_by=starters[i % 3],
                            first_bad_seq=4 if i % 5 == 0 else None, fault=Fault.EDITED if i % 5 == 0 else "")
            for i in range(30))
        page = client.get("/audit/verify/").content.decode()

        assert queries() == one
        assert page.count("<tr>") == 1 + 20  # the header and the latest 20
