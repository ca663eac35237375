"""`manage.py verify_audit_log`: passes an intact log and records that it did; names the first bad row otherwise."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from ntd import audit
from ntd.audit import AuditEvent
from tests.ntd.test_audit import TAMPERINGS, Tampering, tamper, write_events


def verify(*args: str) -> str:
    out = io.StringIO()
    call_command("verify_audit_log", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def ten_events(settings: Any, django_capture_on_commit_callbacks: Any) -> list[AuditEvent]:
    """#1..#10 with signed checkpoints at #5 and #10 (the log the tamperings of test_audit.py expect)."""
    settings.AUDIT_CHECKPOINT_EVERY = 5
    with django_capture_on_commit_callbacks(execute=True):
        return write_events(10)


@pytest.mark.django_db
class TestVerifyAuditLog:
    def test_an_intact_log_passes_and_the_command_appends_audit_verified(self, ten_events):
        out = verify()

        assert f"audit log intact: 10 events, up to #10, head {ten_events[-1].hash}" in out
        event = AuditEvent.objects.get(seq=11)
        assert (event.action, event.actor_type, event.prev_hash) == ("audit.verified", "system", ten_events[-1].hash)
        assert event.data == {"up_to": 10, "head": ten_events[-1].hash, "ok": True}
        assert audit.verify_chain().ok

    def test_its_own_event_is_checkpointed_like_any_other(self, settings, django_capture_on_commit_callbacks):
        settings.AUDIT_CHECKPOINT_EVERY = 4
        write_events(3)

        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            verify()

        assert len(callbacks) == 1
        assert [(cp["seq"], cp["hash"]) for cp in audit.read_checkpoints()] == [(4, AuditEvent.objects.get(seq=4).hash)]

    def test_no_record_leaves_the_log_as_it_was(self, ten_events):
        assert "intact" in verify("--no-record")
        assert AuditEvent.objects.count() == 10

    def test_an_empty_log_passes(self):
        assert "audit log intact: 0 events" in verify()
        assert list(AuditEvent.objects.values_list("seq", "action")) == [(1, "audit.verified")]

    @pytest.mark.parametrize("tampering", TAMPERINGS, ids=lambda t: t.name)
    def test_tampering_fails_naming_the_row_and_the_fault(self, ten_events, settings, tampering: Tampering):
        tamper(tampering, settings.AUDIT_CHECKPOINT_PATH)
        count = AuditEvent.objects.count()

        with pytest.raises(CommandError, match=rf"FAILED at #{tampering.seq}: {tampering.fault} \("):
            verify()

        assert AuditEvent.objects.count() == count  # a failed verification records no audit.verified

    def test_a_damaged_checkpoint_file_fails_cleanly(self, ten_events, settings):
        path = settings.AUDIT_CHECKPOINT_PATH
        path.write_text(path.read_text() + "{half a line\n")

        with pytest.raises(CommandError, match=r"FAILED: bad_checkpoint \(checkpoint entry 3 is malformed"):
            verify()
