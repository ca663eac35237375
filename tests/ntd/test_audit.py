"""The tamper-evident audit log (ntd/audit.py): record(), the PostgreSQL triggers, verify_chain(), checkpoints.

Tampering is done the way a database superuser would: `ALTER TABLE ntd_auditevent DISABLE TRIGGER ALL`, then
plain SQL. Every test runs on the real PostgreSQL; most inside pytest-django's rolled-back transaction, and
those that need real commits (concurrent writers, on-commit checkpoints) through `committed_db`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pgtrigger
import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import DatabaseError, connection, transaction

from ntd import audit
from ntd.audit import AuditEvent, Fault
from ntd.models import User
from ntd.tasks import checkpoint_audit_log_task
from takedown.models import Partner

SEEDED = audit.Action.DEMO_SEEDED


# --- Helpers (test_verify_audit_log.py uses them too) -----------------------------------------------


def write_events(n: int, **data: Any) -> list[AuditEvent]:
    """Append n system events in one transaction, each with distinct data."""
    with transaction.atomic():
        return [audit.record(actor="system", action=SEEDED, data={"n": i, **data}) for i in range(n)]


def seqs() -> list[int]:
    return list(AuditEvent.objects.order_by("seq").values_list("seq", flat=True))


def sql(statement: str, params: list[Any] | None = None) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


@contextlib.contextmanager
def triggers_disabled() -> Iterator[None]:
    """What a database superuser does first: switch off the append-only triggers."""
    sql("ALTER TABLE ntd_auditevent DISABLE TRIGGER ALL")
    try:
        yield
    finally:
        sql("ALTER TABLE ntd_auditevent ENABLE TRIGGER ALL")


def rehash(from_seq: int) -> None:
    """Recompute every link and hash from `from_seq` to the head, as someone covering their tracks would."""
    prev = AuditEvent.objects.get(seq=from_seq - 1).hash if from_seq > 1 else audit.GENESIS_HASH
    for event in AuditEvent.objects.filter(seq__gte=from_seq).order_by("seq"):
        new_hash = audit.chain_hash(event.canonical_fields(), prev)
        sql("UPDATE ntd_auditevent SET prev_hash = %s, hash = %s WHERE seq = %s", [prev, new_hash, event.seq])
        prev = new_hash


def edit_data(seq: int) -> None:
    sql("UPDATE ntd_auditevent SET data = jsonb_set(data, '{n}', '999') WHERE seq = %s", [seq])


# Each tampering works on the ten-event log of `ten_events` (signed checkpoints at #5 and #10) and names
# where verification must stop: the first row at which the log stops being what was written.


def _edit_row(checkpoints: Path) -> None:
    edit_data(4)


def _break_link(checkpoints: Path) -> None:
    # Point #4 at #2 and give it a hash that matches its new content: only the link gives it away.
    sql("UPDATE ntd_auditevent SET prev_hash = (SELECT hash FROM ntd_auditevent WHERE seq = 2) WHERE seq = 4")
    event = AuditEvent.objects.get(seq=4)
    sql("UPDATE ntd_auditevent SET hash = %s WHERE seq = 4", [audit.chain_hash(event.canonical_fields(),
                                                                               event.prev_hash)])


def _delete_row(checkpoints: Path) -> None:
    sql("DELETE FROM ntd_auditevent WHERE seq = 6")


def _insert_forged_row(checkpoints: Path) -> None:
    # Make room at #6 (seq is the primary key: move the later rows out of the way, then back one further),
    # then insert a row that links correctly to #5. The forgery chains; the row pushed to #7 no longer does.
    sql("UPDATE ntd_auditevent SET seq = -seq WHERE seq >= 6")
    sql("UPDATE ntd_auditevent SET seq = 1 - seq WHERE seq < 0")
    prev = AuditEvent.objects.get(seq=5).hash
    at = dt.datetime.now(dt.UTC)
    data = {"n": 5, "forged": True}
    forged_hash = audit.chain_hash(audit.canonical_fields(6, at, "system", "", SEEDED, "", "", None, data), prev)
    sql(
        "INSERT INTO ntd_auditevent (seq, at, actor_type, actor_id, action, target_type, target_id, case_id, data,"
        " prev_hash, hash) VALUES (6, %s, 'system', '', %s, '', '', NULL, %s::jsonb, %s, %s)",
        [at, str(SEEDED), json.dumps(data), prev, forged_hash],
    )


def _swap_rows(checkpoints: Path) -> None:
    sql("UPDATE ntd_auditevent SET seq = -7 WHERE seq = 7")
    sql("UPDATE ntd_auditevent SET seq = 7 WHERE seq = 3")
    sql("UPDATE ntd_auditevent SET seq = 3 WHERE seq = -7")


def _truncate_tail(checkpoints: Path) -> None:
    sql("DELETE FROM ntd_auditevent WHERE seq >= 8")


def _rewrite_chain(checkpoints: Path) -> None:
    edit_data(2)
    rehash(2)


def _forge_checkpoint(checkpoints: Path) -> None:
    # Re-point the signed checkpoint of #10 at another hash (say, after rewriting the chain), keeping its sig.
    lines = checkpoints.read_text().splitlines()
    entry = json.loads(lines[-1])
    entry["hash"] = hashlib.sha256(b"rewritten").hexdigest()
    checkpoints.write_text("\n".join([*lines[:-1], json.dumps(entry)]) + "\n")


@dataclass(frozen=True)
class Tampering:
    name: str
    apply: Callable[[Path], None]
    fault: Fault
    seq: int


TAMPERINGS = [
    Tampering("edit a row", _edit_row, Fault.EDITED, 4),
    Tampering("relink a row", _break_link, Fault.BROKEN_LINK, 4),
    Tampering("delete a row", _delete_row, Fault.MISSING, 6),
    Tampering("insert a forged row", _insert_forged_row, Fault.EDITED, 7),
    Tampering("swap two rows", _swap_rows, Fault.EDITED, 3),
    Tampering("truncate the tail", _truncate_tail, Fault.TAIL_MISSING, 8),
    Tampering("recompute the chain", _rewrite_chain, Fault.CHECKPOINT_MISMATCH, 5),
    Tampering("forge a checkpoint", _forge_checkpoint, Fault.BAD_CHECKPOINT, 10),
]


def tamper(tampering: Tampering, checkpoints: Path) -> None:
    with triggers_disabled():
        tampering.apply(checkpoints)


@pytest.fixture
def ten_events(settings: Any, django_capture_on_commit_callbacks: Any) -> list[AuditEvent]:
    """#1..#10, committed as far as on_commit is concerned: signed checkpoints at #5 and #10."""
    settings.AUDIT_CHECKPOINT_EVERY = 5
    with django_capture_on_commit_callbacks(execute=True):
        events = write_events(10)
    assert [cp["seq"] for cp in audit.read_checkpoints()] == [5, 10]
    return events


# --- Real commits ------------------------------------------------------------------------------------


@pytest.fixture
def _until_flushed() -> Iterator[contextlib.ExitStack]:
    with contextlib.ExitStack() as stack:
        yield stack


@pytest.fixture
def committed_db(_until_flushed: contextlib.ExitStack, transactional_db: None) -> Iterator[None]:
    """A database where transactions really commit, emptied after the test.

    pytest-django empties it with Django's flush, one TRUNCATE of every table, and the audit log's no_truncate
    trigger refuses that, as it must everywhere else. So once the test is over, and only then, this thread
    ignores that one trigger until the flush is done: `_until_flushed` is set up before `transactional_db` and
    so torn down after it. (Take this fixture instead of a django_db mark, which would set the database up
    first and so have the flush run after the trigger is back.)
    """
    yield
    _until_flushed.enter_context(pgtrigger.ignore("ntd.AuditEvent:no_truncate"))


# --- record() -----------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestRecord:
    def test_hash_is_sha256_over_the_previous_hash_and_the_canonical_json(self):
        partner = Partner.objects.create(name="Hotline Zoë", kind=Partner.Kind.HOTLINE)

        with transaction.atomic():
            first = audit.record(actor="system", action=SEEDED)
            event = audit.record(actor=partner, action=SEEDED, target=("report", 42), case_id=7,
                                 data={"b": [1, True, None], "a": "Zoë"})

        # given by hand, not by audit.canonical_fields(): a change to the format would orphan every stored log
        at = event.at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = (
            '{"action":"demo.seeded","actor_id":"' + str(partner.pk) + '","actor_type":"partner","at":"' + at + '",'
            '"case_id":7,"data":{"a":"Zoë","b":[1,true,null]},"seq":2,"target_id":"42","target_type":"report","v":1}'
        )
        assert event.prev_hash == first.hash
        assert event.hash == hashlib.sha256(f"{first.hash}\n{body}".encode()).hexdigest()
        assert first.prev_hash == audit.GENESIS_HASH

    def test_seq_starts_at_one_without_gaps_and_every_row_links_to_the_one_before(self):
        write_events(3)
        write_events(4)

        rows = list(AuditEvent.objects.order_by("seq"))
        assert [row.seq for row in rows] == [1, 2, 3, 4, 5, 6, 7]
        assert [row.prev_hash for row in rows] == [audit.GENESIS_HASH] + [row.hash for row in rows[:-1]]
        # the row read back hashes to what was stored: nothing is lost between Python and PostgreSQL
        assert all(audit.chain_hash(row.canonical_fields(), row.prev_hash) == row.hash for row in rows)
        assert audit.head() == (7, rows[-1].hash)

    def test_actor_is_a_user_a_partner_or_the_system(self):
        user = User.objects.create_user(username="analyst", password="x")
        partner = Partner.objects.create(name="Host", kind=Partner.Kind.HOSTING_PROVIDER)

        with transaction.atomic():
            events = [audit.record(actor=actor, action=SEEDED) for actor in (user, partner, "system", None)]

        assert [(e.actor_type, e.actor_id) for e in events] == [
            ("user", str(user.pk)), ("partner", str(partner.pk)), ("system", ""), ("system", ""),
        ]

    @pytest.mark.parametrize("actor", [AnonymousUser(), "admin", 5, object()],
                             ids=["anonymous", "a-string", "an-int", "an-object"])
    def test_anything_else_is_not_an_actor(self, actor):
        with transaction.atomic(), pytest.raises(TypeError, match="audit actor"):
            audit.record(actor=actor, action=SEEDED)
        assert seqs() == []

    def test_target_is_a_model_instance_or_a_kind_and_id(self):
        partner = Partner.objects.create(name="Host", kind=Partner.Kind.HOSTING_PROVIDER)

        with transaction.atomic():
            on_model = audit.record(actor="system", action=SEEDED, target=partner)
            on_tuple = audit.record(actor="system", action=SEEDED, target=("report", 9))

        assert (on_model.target_type, on_model.target_id) == ("takedown.partner", str(partner.pk))
        assert (on_tuple.target_type, on_tuple.target_id) == ("report", "9")

    def test_unknown_action_is_refused(self):
        with transaction.atomic(), pytest.raises(ValueError, match="unknown audit action"):
            audit.record(actor="system", action="case.vanished")
        assert seqs() == []

    @pytest.mark.parametrize("data", [
        {"email": "someone@example.org"},
        {"IP": "192.0.2.1"},
        {"request": {"user_agent": "Mozilla/5.0"}},
        {"items": [{"ok": 1}, {"token": "abc"}]},
        {"reporter_contact": "+31 6 00000000"},
        {"evidence": {"plaintext": "..."}},
    ], ids=lambda d: json.dumps(d))
    def test_personal_or_secret_keys_are_refused_at_any_depth(self, data):
        with transaction.atomic(), pytest.raises(ValueError, match="must not hold"):
            audit.record(actor="system", action=SEEDED, data=data)
        assert seqs() == []

    @pytest.mark.parametrize("data", [
        {"score": 0.5},
        {"scores": [1, 2.0]},
        {"nested": {"deep": float("nan")}},
    ], ids=lambda d: json.dumps(d))
    def test_floats_are_refused(self, data):
        with transaction.atomic(), pytest.raises(ValueError, match="no floats"):
            audit.record(actor="system", action=SEEDED, data=data)

    @pytest.mark.parametrize("data", [
        {"amount": Decimal("1.5")},
        {"when": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)},
        {"pair": (1, 2)},
        {1: "non-string key"},
    ], ids=["decimal", "datetime", "tuple", "int-key"])
    def test_only_json_values_are_accepted(self, data):
        with transaction.atomic(), pytest.raises(ValueError):
            audit.record(actor="system", action=SEEDED, data=data)

    @pytest.mark.parametrize("case_id", ["7", True, 7.0])
    def test_case_id_must_be_an_int(self, case_id):
        # "7" would be hashed as a string, stored as the bigint 7, and fail verification for ever
        with transaction.atomic(), pytest.raises(TypeError, match="case_id"):
            audit.record(actor="system", action=SEEDED, case_id=case_id)

    def test_a_rolled_back_savepoint_consumes_no_seq(self):
        write_events(2)

        with contextlib.suppress(RuntimeError), transaction.atomic():
            audit.record(actor="system", action=SEEDED)
            raise RuntimeError("the change being recorded failed")
        write_events(1)

        assert seqs() == [1, 2, 3]
        assert audit.verify_chain().ok


# --- The PostgreSQL triggers --------------------------------------------------------------------------


@pytest.mark.django_db
class TestAppendOnly:
    @pytest.mark.parametrize("attempt", [
        lambda: AuditEvent.objects.filter(seq=1).update(data={}),
        lambda: AuditEvent.objects.get(seq=1).save(),
        lambda: AuditEvent.objects.filter(seq=1).delete(),
        lambda: AuditEvent.objects.get(seq=2).delete(),
        lambda: sql("UPDATE ntd_auditevent SET action = 'user.login' WHERE seq = 1"),
        lambda: sql("DELETE FROM ntd_auditevent WHERE seq = 2"),
        lambda: sql("TRUNCATE ntd_auditevent"),
        lambda: sql("TRUNCATE ntd_auditevent, ntd_user CASCADE"),
    ], ids=["orm-update", "orm-save", "orm-delete", "instance-delete", "sql-update", "sql-delete",
            "sql-truncate", "sql-truncate-many"])
    def test_the_application_connection_cannot_change_or_remove_events(self, attempt):
        events = write_events(2)

        with pytest.raises(DatabaseError, match="Cannot update or delete|append-only"), transaction.atomic():
            attempt()

        assert [(e.seq, e.hash) for e in AuditEvent.objects.order_by("seq")] == [(e.seq, e.hash) for e in events]
        assert audit.verify_chain().ok


# --- verify_chain() -------------------------------------------------------------------------------


@pytest.mark.django_db
class TestVerifyChain:
    def test_an_empty_log_is_intact(self):
        result = audit.verify_chain()
        assert (result.ok, result.checked, result.last_seq, result.head_hash) == (True, 0, 0, audit.GENESIS_HASH)

    def test_an_intact_log_with_its_checkpoints_passes(self, ten_events):
        seen: list[int] = []

        result = audit.verify_chain(chunk_size=3, progress=seen.append)

        assert result.ok, result.describe()
        assert (result.checked, result.last_seq, result.head_hash) == (10, 10, ten_events[-1].hash)
        assert seen == [3, 6, 9]
        assert result.describe().startswith("audit log intact: 10 events, up to #10")

    @pytest.mark.parametrize("tampering", TAMPERINGS, ids=lambda t: t.name)
    def test_tampering_is_detected_and_located(self, ten_events, settings, tampering):
        tamper(tampering, settings.AUDIT_CHECKPOINT_PATH)

        result = audit.verify_chain()

        assert not result.ok
        assert (result.fault, result.first_bad_seq) == (tampering.fault, tampering.seq), result.describe()
        assert f"#{tampering.seq}: {tampering.fault}" in result.describe()

    def test_the_chain_alone_misses_a_rewrite_or_a_cut_tail_which_is_why_checkpoints_exist(self, ten_events):
        with triggers_disabled():
            _rewrite_chain(Path())
        assert audit.verify_chain(checkpoints=[]).ok
        assert audit.verify_chain().fault == Fault.CHECKPOINT_MISMATCH

        with triggers_disabled():
            _truncate_tail(Path())
        assert audit.verify_chain(checkpoints=[]).ok

    def test_a_rewrite_is_caught_at_the_first_checkpoint_after_the_edit(self, ten_events):
        with triggers_disabled():
            edit_data(7)
            rehash(7)

        result = audit.verify_chain()

        assert (result.fault, result.first_bad_seq, result.checked) == (Fault.CHECKPOINT_MISMATCH, 10, 9)

    def test_a_checkpoint_signed_with_another_key_is_refused(self, ten_events, settings):
        key, settings.AUDIT_CHECKPOINT_KEY = settings.AUDIT_CHECKPOINT_KEY, "someone-else's-key"
        forged = audit.write_checkpoint(10, ten_events[-1].hash)
        settings.AUDIT_CHECKPOINT_KEY = key

        result = audit.verify_chain(checkpoints=[*audit.read_checkpoints()[:2], forged])

        assert (result.fault, result.first_bad_seq) == (Fault.BAD_CHECKPOINT, 10)

    @pytest.mark.parametrize("line", [
        "{not json",
        '{"seq": 10}',
        '["a", "list"]',
    ])
    def test_a_damaged_checkpoint_file_is_reported_not_a_crash(self, ten_events, settings, line):
        path = settings.AUDIT_CHECKPOINT_PATH
        path.write_text(path.read_text() + line + "\n")

        result = audit.verify_chain()

        assert result.fault == Fault.BAD_CHECKPOINT
        assert "checkpoint entry 3 is malformed" in result.describe()

    def test_a_checkpoint_whose_seq_became_a_string_is_refused(self, ten_events, settings):
        # "10" signs exactly like 10: without a type check it would verify and then match no row
        path = settings.AUDIT_CHECKPOINT_PATH
        entries = [json.loads(line) for line in path.read_text().splitlines()]
        entries[1]["seq"] = "10"
        path.write_text("".join(json.dumps(entry) + "\n" for entry in entries))

        assert audit.verify_chain().fault == Fault.BAD_CHECKPOINT


# --- Checkpoints --------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestCheckpointHead:
    def test_writes_only_when_the_head_moved(self):
        assert audit.checkpoint_head() is None  # empty log

        events = write_events(4)
        entry = audit.checkpoint_head()
        assert entry is not None and (entry["seq"], entry["hash"]) == (4, events[-1].hash)
        assert audit.is_signed_checkpoint(entry)
        assert audit.checkpoint_head() is None

        write_events(1)
        assert audit.checkpoint_head()["seq"] == 5
        assert [cp["seq"] for cp in audit.read_checkpoints()] == [4, 5]
        assert audit.verify_chain().ok

    def test_the_beat_task_runs_the_same(self):
        assert checkpoint_audit_log_task.apply().get() is None
        write_events(3)
        assert checkpoint_audit_log_task.apply().get() == 3
        assert checkpoint_audit_log_task.apply().get() is None
        assert [cp["seq"] for cp in audit.read_checkpoints()] == [3]

    def test_an_unsigned_line_does_not_silence_checkpointing(self, settings):
        write_events(3)
        settings.AUDIT_CHECKPOINT_PATH.write_text('{"seq": 1000000, "hash": "x", "at": "y", "sig": "z"}\n{oops\n')

        assert audit.checkpoint_head()["seq"] == 3

    def test_the_highest_signed_checkpoint_counts_not_the_last_line(self):
        events = write_events(3)
        audit.write_checkpoint(3, events[2].hash)
        audit.write_checkpoint(2, events[1].hash)  # an on_commit checkpoint that finished late

        assert audit.checkpoint_head() is None


# --- With real commits: checkpoints on commit, rollback, eight concurrent writers ------------------------


class TestCommitted:
    def test_record_refuses_to_run_outside_a_transaction(self, committed_db):
        with pytest.raises(RuntimeError, match="inside the transaction"):
            audit.record(actor="system", action=SEEDED)
        assert seqs() == []

    def test_every_nth_event_is_checkpointed_when_its_transaction_commits(self, committed_db, settings):
        settings.AUDIT_CHECKPOINT_EVERY = 3
        for _ in range(2):
            write_events(1)
        with contextlib.suppress(RuntimeError), transaction.atomic():
            audit.record(actor="system", action=SEEDED, data={"n": "rolled back"})  # #3, never committed
            raise RuntimeError
        assert audit.read_checkpoints() == []

        with transaction.atomic():
            third = audit.record(actor="system", action=SEEDED)
            assert audit.read_checkpoints() == []  # not before the commit
        write_events(4)

        assert seqs() == [1, 2, 3, 4, 5, 6, 7]
        checkpoints = audit.read_checkpoints()
        assert [(cp["seq"], cp["hash"]) for cp in checkpoints] == [
            (3, third.hash), (6, AuditEvent.objects.get(seq=6).hash),
        ]
        assert all(audit.is_signed_checkpoint(cp) for cp in checkpoints)
        assert audit.verify_chain().ok

    def test_eight_concurrent_writers_keep_the_chain_valid_and_contiguous(self, committed_db, settings):
        settings.AUDIT_CHECKPOINT_EVERY = 7
        writers, transactions, per_transaction = 8, 5, 5
        start = threading.Barrier(writers, timeout=30)
        written: dict[int, list[list[int]]] = {}
        errors: list[BaseException] = []

        def write(writer: int) -> None:
            try:
                start.wait()
                for t in range(transactions):
                    with transaction.atomic():
                        written.setdefault(writer, []).append([
                            audit.record(actor="system", action=SEEDED, data={"writer": writer, "t": t, "i": i}).seq
                            for i in range(per_transaction)
                        ])
            except BaseException as exc:  # noqa: B036 - reported below, in the test's thread
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert not errors, errors
        total = writers * transactions * per_transaction
        assert seqs() == list(range(1, total + 1))
        # each transaction holds the chain lock to its commit: its events are consecutive
        batches = [batch for per_writer in written.values() for batch in per_writer]
        assert len(batches) == writers * transactions
        assert all(batch == list(range(batch[0], batch[0] + per_transaction)) for batch in batches)
        result = audit.verify_chain()
        assert result.ok and result.checked == total, result.describe()
        assert [cp["seq"] for cp in audit.read_checkpoints()] == list(range(7, total + 1, 7))
