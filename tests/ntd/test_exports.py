"""Exports (ntd/exports.py): CSV, JSON Lines, names or pseudonyms, the record of each export, the views and the
commands. The hashed bundle and its checker: test_export_bundle.py."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.core.exceptions import PermissionDenied
from django.core.management import CommandError, call_command
from django.db import transaction
from django.http import StreamingHttpResponse
from django.test import Client
from django.urls import reverse

from ntd import audit, bundle_verify, exports
from ntd.audit import Action, AuditEvent
from ntd.exports import ExportRequest
from ntd.timeline import TimelineEntry
from reports import intake, services
from reports.models import Case
from reports.normalise import normalise
from takedown.models import Partner
from tests.reports.factories import grant

pytestmark = pytest.mark.django_db
ANALYST_NAME, AUDITOR_NAME = "quillfeather-analyst", "marrowby-auditor"


def new_analyst(make_staff: Any, queue: Any) -> Any:
    user = make_staff("analyst", username=ANALYST_NAME).user
    grant(user, queue)
    return user


def open_case(analyst: Any) -> Case:
    """A public report opens the case; the analyst claims it, releases it, claims it again (consecutive events)."""
    url = "https://gallery.example/albums/4471"
    filed = intake.file_public_report(urls=[intake.ReportedURL(url, normalise(url))],
                                      details=intake.ReportDetails(material_kind="images"), contact_email=None)
    case = Case.objects.get(pk=filed.outcomes[0].case_id)
    for step in (services.claim_case, services.release_case, services.claim_case):
        step(case.pk, actor=analyst)
    return case


@pytest.fixture
def analyst(make_staff: Any, default_queue: Any) -> Any:
    return new_analyst(make_staff, default_queue)


@pytest.fixture
def auditor(make_staff: Any) -> Any:
    return make_staff("auditor", username=AUDITOR_NAME).user


@pytest.fixture
def case(analyst: Any) -> Case:
    return open_case(analyst)


def client_of(user: Any) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def export(request: ExportRequest, *, actor: Any = "system") -> bytes:
    return b"".join(exports.export_chunks(exports.record_export(request, actor=actor)))


def case_export(case: Case, fmt: str, *, names: bool = False, actor: Any = "system") -> bytes:
    return export(ExportRequest(kind="case", case_id=case.pk, format=fmt, name_analysts=names), actor=actor)


def csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode())
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))


def entry(description: str, actor: str = "A-TEST1") -> TimelineEntry:
    event = AuditEvent(seq=7, at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), actor_type="system", actor_id="",
                       action="case.claimed", target_type="reports.case", target_id="3", case_id=3, data={},
                       prev_hash="0" * 64, hash="f" * 64)
    return TimelineEntry(event.seq, event.at, actor, event.action, description, event)


class TestCsv:
    @pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
    def test_a_cell_a_spreadsheet_would_run_gets_a_quote(self, start: str) -> None:
        text = start + 'HYPERLINK("https://evil.example","click")'

        (row,) = csv_rows(b"".join(exports.csv_chunks([entry(text, actor=start + "1+1")])))

        assert row["description"] == "'" + text and row["actor"] == "'" + start + "1+1"
        assert (row["seq"], row["hash"], row["prev_hash"], row["case_id"]) == ("7", "f" * 64, "0" * 64, "3")

    def test_harmless_cells_are_left_alone_and_the_header_is_the_row(self) -> None:
        data = b"".join(exports.csv_chunks([entry("Claimed by A-TEST1 = fine")]))

        assert data.startswith("\ufeffseq,at,actor,".encode()) and b"\r\n" in data
        assert tuple(entry("x").row()) == exports.COLUMNS
        assert csv_rows(data)[0]["description"] == "Claimed by A-TEST1 = fine"

    def test_a_partner_named_like_a_formula_is_escaped_in_a_real_export(self, case: Case) -> None:
        partner = Partner.objects.create(name="=2+3", kind=Partner.Kind.HOTLINE, country="NL")
        with transaction.atomic():
            audit.record(actor=partner, action=Action.CASE_VIEWED, target=case, case_id=case.pk)

        rows = csv_rows(case_export(case, "csv"))

        assert rows[-1]["actor"] == "'=2+3" and rows[-1]["action"] == Action.CASE_VIEWED


class TestJsonLines:
    def test_round_trip(self, case: Case) -> None:
        pinned = exports.record_export(ExportRequest(kind="case", case_id=case.pk, format="jsonl"), actor="system")

        lines = b"".join(exports.export_chunks(pinned)).decode().splitlines()

        assert [json.loads(line) for line in lines] == [e.row() for e in pinned.entries()]
        assert len(lines) == pinned.recorded.events == 5  # received, opened, claimed, released, claimed


def bundle_members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def run_verify(script: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, cwd=cwd,
                          timeout=60, check=False)


class TestNames:
    @pytest.mark.parametrize("fmt", ["csv", "jsonl", "bundle"])
    @pytest.mark.parametrize("kind", ["case", "log"])
    def test_pseudonyms_only_unless_internal(self, case: Case, analyst: Any, auditor: Any, fmt: str,
                                             kind: str) -> None:
        request = ExportRequest(kind=kind, case_id=case.pk if kind == "case" else None, format=fmt)

        data = export(request, actor=auditor)

        texts = [data, *bundle_members(data).values()] if fmt == "bundle" else [data]
        for text in texts:
            assert ANALYST_NAME.encode() not in text and AUDITOR_NAME.encode() not in text
        assert analyst.pseudonym.encode() in b"".join(texts)

    def test_an_internal_export_names_analysts_and_says_so(self, case: Case, analyst: Any, auditor: Any) -> None:
        request = ExportRequest(kind="case", case_id=case.pk, format="bundle", name_analysts=True)

        members = bundle_members(export(request, actor=auditor))

        assert f"{ANALYST_NAME} ({analyst.pseudonym})".encode() in members["timeline.csv"]
        manifest = json.loads(members["manifest.json"])
        assert manifest["export"]["names"] == "internal" and manifest["export"]["by"].startswith(AUDITOR_NAME)
        assert b"INTERNAL" in members["README.txt"] and request.filename().endswith("-internal-bundle.zip")


class TestRecording:
    def test_the_export_is_recorded_and_covers_the_events_before_its_record(self, case: Case, auditor: Any) -> None:
        pinned = exports.record_export(ExportRequest(kind="case", case_id=case.pk, format="csv"), actor=auditor)

        event = AuditEvent.objects.get(seq=pinned.recorded.event_seq)
        assert (event.action, event.actor_id, event.case_id) == (Action.TIMELINE_EXPORTED, str(auditor.pk), case.pk)
        assert event.data == {"format": "csv", "names": "pseudonyms", "case": case.reference, "events": 5,
                               "up_to": event.seq - 1}
        assert len(csv_rows(b"".join(exports.export_chunks(pinned)))) == 5  # its own record is not in it

    def test_a_job_can_carry_the_pinned_request_as_json(self, case: Case, auditor: Any) -> None:
        request = ExportRequest(kind="log", format="bundle", since=datetime(2026, 1, 1, tzinfo=UTC),
                                until=datetime(2026, 2, 1, tzinfo=UTC))
        pinned = exports.record_export(request, actor=auditor)

        assert ExportRequest.from_params(json.loads(json.dumps(pinned.params()))) == pinned
        assert pinned.filename() == "audit-log-20260101T000000Z-20260201T000000Z-bundle.zip"

    def test_names_need_the_permission_to_reveal(self, case: Case, make_staff: Any) -> None:
        user = with_perms(make_staff(None).user, "ntd.export_audit_log", "reports.view_case", "reports.view_all_cases")
        request = ExportRequest(kind="case", case_id=case.pk, format="csv", name_analysts=True)

        with pytest.raises(PermissionDenied):
            exports.record_export(request, actor=user)
        with pytest.raises(ValueError, match="record_export"):
            exports.export_chunks(request)


def with_perms(user: Any, *labels: str) -> Any:
    for label in labels:
        app, codename = label.split(".")
        user.user_permissions.add(Permission.objects.get(content_type__app_label=app, codename=codename))
    return type(user).objects.get(pk=user.pk)  # a fresh copy: no cached permissions


# --- the views ------------------------------------------------------------------------------------------------


def streamed(response: Any) -> bytes:
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def recorded_exports() -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action__in=[Action.TIMELINE_EXPORTED, Action.AUDIT_LOG_EXPORTED]))


class TestViews:
    def test_the_form_is_for_exporters_only(self, client_for: Any) -> None:
        assert client_for("analyst").get("/audit/export/").status_code == 403
        response = client_for("auditor").get("/audit/export/?case=C-1234-5678")

        assert response.status_code == 200
        assert b'name="name_analysts"' in response.content and b'value="C-1234-5678"' in response.content

    def test_a_post_streams_the_export_as_an_attachment_and_records_it(self, case: Case, auditor: Any) -> None:
        response = client_of(auditor).post("/audit/export/", {"case": case.reference, "format": "csv"})

        assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"] == f'attachment; filename="{case.reference}-timeline.csv"'
        assert len(csv_rows(streamed(response))) == 5
        (event,) = recorded_exports()
        assert (event.action, event.case_id, event.actor_id) == (Action.TIMELINE_EXPORTED, case.pk, str(auditor.pk))

    def test_a_time_range_exports_the_log_by_day(self, case: Case, auditor: Any) -> None:
        today = datetime.now(UTC).date()
        response = client_of(auditor).post("/audit/export/", {"since": today, "until": today, "format": "jsonl"})

        rows = [json.loads(line) for line in streamed(response).splitlines()]
        assert rows and all(row["at"].startswith(today.isoformat()) for row in rows)
        (event,) = recorded_exports()
        tomorrow = (today + timedelta(days=1)).isoformat()
        assert event.data | {"events": 0} == {"format": "jsonl", "names": "pseudonyms", "events": 0,
                                               "since": f"{today.isoformat()}T00:00:00Z",
                                               "until": f"{tomorrow}T00:00:00Z", "up_to": event.seq - 1}

    def test_the_direct_links_stream_with_pseudonyms(self, case: Case, auditor: Any) -> None:
        response = client_of(auditor).get(reverse("case_timeline_export", args=[case.reference, "bundle"]))

        assert response["Content-Type"] == "application/zip"
        assert json.loads(bundle_members(streamed(response))["manifest.json"])["export"]["names"] == "pseudonyms"
        assert client_of(auditor).get(f"/audit/cases/{case.reference}/export/xlsx/").status_code == 404

    @pytest.mark.parametrize(("data", "status", "message"), [
        ({"case": "C-1234-5678", "since": "2026-01-01", "format": "csv"}, 400, "not both"),
        ({"since": "2026-02-01", "until": "2026-01-01", "format": "csv"}, 400, "is after"),
        ({"case": "C-1234-5678", "format": "xlsx"}, 400, "Select a valid choice"),
        ({"case": "C-0000-0000", "format": "csv"}, 404, "No case has this reference"),
    ])
    def test_bad_input_exports_nothing(self, auditor: Any, data: dict[str, str], status: int, message: str) -> None:
        response = client_of(auditor).post("/audit/export/", data)

        assert response.status_code == status and message in response.content.decode()
        assert recorded_exports() == []

    def test_names_without_the_permission_to_reveal_are_refused(self, case: Case, make_staff: Any) -> None:
        user = with_perms(make_staff(None).user, "ntd.export_audit_log", "reports.view_case", "reports.view_all_cases")
        client = client_of(user)
        assert b'name="name_analysts"' not in client.get("/audit/export/").content

        response = client.post("/audit/export/", {"case": case.reference, "format": "csv", "name_analysts": "on"})

        assert response.status_code == 400 and "You may not export analysts" in response.content.decode()
        assert recorded_exports() == []

    def test_a_case_the_user_may_not_read_is_a_404(self, case: Case, make_staff: Any) -> None:
        user = with_perms(make_staff(None).user, "ntd.export_audit_log")

        assert client_of(user).get(f"/audit/cases/{case.reference}/export/csv/").status_code == 404
        assert recorded_exports() == []

    def test_a_pdf_too_long_is_refused_in_words(self, case: Case, auditor: Any, settings: Any) -> None:
        settings.EXPORT_PDF_MAX_EVENTS = 2

        response = client_of(auditor).post("/audit/export/", {"case": case.reference, "format": "pdf"})

        assert response.status_code == 400 and "at most 2" in response.content.decode()
        assert recorded_exports() == []

    def test_a_pdf_of_more_than_a_few_hundred_events_is_laid_out_by_a_worker(self, case: Case, auditor: Any,
                                                                               settings: Any) -> None:
        settings.EXPORT_PDF_SYNC_MAX = 2

        response = client_of(auditor).post("/audit/export/", {"case": case.reference, "format": "pdf"})

        assert response.status_code == 302 and response["Location"].startswith("/audit/exports/")

    def test_a_large_export_becomes_a_job(self, case: Case, auditor: Any, settings: Any) -> None:
        settings.EXPORT_ASYNC_ABOVE = 2

        response = client_of(auditor).post("/audit/export/", {"case": case.reference, "format": "csv"})

        assert response.status_code == 302 and response["Location"].startswith(reverse("export_job", args=[1])[:-2])
        assert [e.action for e in recorded_exports()] == [Action.TIMELINE_EXPORTED]


# --- the commands ---------------------------------------------------------------------------------------------


class TestCommands:
    def test_export_timeline_writes_the_file_and_records_it_as_the_system(self, case: Case, tmp_path: Path) -> None:
        out, path = io.StringIO(), tmp_path / "timeline.csv"

        call_command("export_timeline", case.reference.lower(), "--format", "csv", "--output", str(path), stdout=out)

        assert len(csv_rows(path.read_bytes())) == 5 and "5 events (pseudonyms)" in out.getvalue()
        (event,) = recorded_exports()
        assert (event.actor_type, event.case_id, event.data["names"]) == ("system", case.pk, "pseudonyms")

    def test_export_timeline_bundle_internal_verifies(self, case: Case, tmp_path: Path) -> None:
        path = tmp_path / "b.zip"
        call_command("export_timeline", case.reference, "--format", "bundle", "--internal", "--output", str(path),
                     stdout=io.StringIO())

        assert ANALYST_NAME.encode() in bundle_members(path.read_bytes())["timeline.jsonl"]
        assert run_verify(Path(bundle_verify.__file__), str(path)).returncode == 0

    def test_export_audit_log_over_a_range(self, case: Case, tmp_path: Path) -> None:
        path, now = tmp_path / "log.jsonl", datetime.now(UTC)
        call_command("export_audit_log", "--since", (now - timedelta(hours=1)).isoformat(), "--until",
                     (now + timedelta(hours=1)).isoformat(), "--format", "jsonl", "--output", str(path),
                     stdout=io.StringIO())

        rows = [json.loads(line) for line in path.read_text().splitlines()]
        (event,) = recorded_exports()
        assert [row["seq"] for row in rows] == list(range(1, event.seq))  # every event before the export's own
        assert (event.action, event.data["events"], event.case_id) == (Action.AUDIT_LOG_EXPORTED, len(rows), None)

    def test_mistakes_are_refused(self, case: Case, tmp_path: Path) -> None:
        with pytest.raises(CommandError, match="No case"):
            call_command("export_timeline", "C-0000-0000", "--format", "csv", "--output", str(tmp_path / "x"))
        with pytest.raises(CommandError, match="not before its end"):
            call_command("export_audit_log", "--since", "2026-02-01", "--until", "2026-01-01", "--format", "csv")
        assert recorded_exports() == [] and list(tmp_path.iterdir()) == []
