"""Journey: an auditor signs in with a second factor, finds a case in the audit log, reads its timeline,
downloads it in every format, checks the hashed bundle with its own script, and can change nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from ntd.roles import ANALYST, AUDITOR
from reports import intake, services
from reports.models import Case, Queue
from reports.normalise import normalise
from tests.journeys.conftest import Console
from tests.journeys.test_review import signed_in
from tests.journeys.test_staff_login import assert_quiet
from tests.reports.factories import grant

pytestmark = pytest.mark.browser

URL = "https://pictures.example/set/88"


def test_auditor_reads_exports_and_verifies_and_changes_nothing(browser: Browser, live_server: Any, console: Console,
                                                                  make_staff: Any, scheme: Any, tmp_path: Path,
                                                                  settings: Any) -> None:
    # given: a case an analyst claimed and closed
    settings.EXPORT_DIR = tmp_path / "exports"
    intake.file_public_report(urls=[intake.ReportedURL(URL, normalise(URL))],
                              details=intake.ReportDetails(material_kind="images"), contact_email=None)
    case = Case.objects.get()
    analyst = make_staff(ANALYST, username="named-analyst").user
    grant(analyst, Queue.objects.get(pk=case.queue_id))
    services.claim_case(case.pk, actor=analyst)
    services.assess_case(case.pk, actor=analyst, assessment=services.AssessmentInput(
        verdict=scheme.verdict("not_illegal"), rationale="Adults only."))
    auditor = make_staff(AUDITOR)

    # the auditor signs in with password and code, and searches the audit log for the case
    page = signed_in(browser, live_server, console, auditor)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audit log").click()
    page.get_by_label("Case").fill(case.reference)
    page.get_by_role("button", name="Search").click()
    events = page.locator("#audit-events")
    expect(events).to_contain_text("Claimed by")
    expect(events).to_contain_text("Assessed: not illegal")

    # opens the timeline from a row
    events.get_by_role("link", name=case.reference).first.click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(case.reference)
    expect(page.get_by_role("main")).to_contain_text("Claimed by")

    # downloads every format
    downloads = {}
    for label in ("CSV", "JSON Lines", "PDF", "Hashed bundle (ZIP)"):
        with page.expect_download() as info:
            page.get_by_role("link", name=f"Download {label}").click()
        path = tmp_path / info.value.suggested_filename
        info.value.save_as(path)
        downloads[label] = path
    assert "Claimed by" in downloads["CSV"].read_text(encoding="utf-8-sig")
    lines = [json.loads(line) for line in downloads["JSON Lines"].read_text().splitlines()]
    assert [row["seq"] for row in lines] == sorted(row["seq"] for row in lines)
    assert downloads["PDF"].read_bytes().startswith(b"%PDF-")
    for path in downloads.values():
        assert b"named-analyst" not in path.read_bytes()  # third-party exports carry pseudonyms

    # the bundle's own script says it is intact, and finds one flipped byte
    bundle = downloads["Hashed bundle (ZIP)"]
    unpacked = tmp_path / "bundle"
    zipfile.ZipFile(bundle).extractall(unpacked)
    ok = subprocess.run([sys.executable, "verify.py"], cwd=unpacked, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    events_file = unpacked / "events.jsonl"
    data = bytearray(events_file.read_bytes())
    data[len(data) // 2] ^= 0x01
    events_file.write_bytes(bytes(data))
    broken = subprocess.run([sys.executable, "verify.py"], cwd=unpacked, capture_output=True, text=True, timeout=60)
    assert broken.returncode == 1 and "events.jsonl" in broken.stdout + broken.stderr

    # every attempt to change something is refused, by permission (the CSRF token is right)
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    headers = {"X-CSRFToken": token, "Referer": f"{live_server.url}/"}
    for action in ("claim", "release", "assess", "reopen", "trace", "reassign"):
        response = page.request.post(f"/cases/{case.reference}/{action}/", form={"reason": "audit"}, headers=headers)
        assert response.status == 403, action
    assert page.request.post("/cases/next/", headers=headers).status == 403
    assert page.request.post(f"/api/v1/cases/{case.reference}/claim/", data={}, headers=headers).status == 403
    assert page.request.post("/audit/export/", form={"case": case.reference, "format": "csv"},
                             headers=headers).status == 200  # the same token does pass CSRF
    page.goto(f"/cases/{case.reference}/")
    expect(page.locator("main form")).to_have_count(0)
    case.refresh_from_db()
    assert case.status == Case.Status.NOT_ILLEGAL and case.assignee_id is None
    assert_quiet(console)
