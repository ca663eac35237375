"""Timelines as PDF (ntd/pdf.py) and prepared exports (ntd/export_jobs.py, ntd/job_views.py).

The PDF's text is read back from the file itself: WeasyPrint draws glyph ids and writes a ToUnicode map for each
font, and `pdf_text()` below turns one into the other (no PDF library needed for that). Prepared exports run the
way they do in production once: the start commits, the task goes through Redis, a real worker writes the file.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from ntd import audit, export_jobs, exports, pdf
from ntd.audit import Action, AuditEvent
from ntd.exports import ExportError, ExportRequest
from ntd.models import ExportJob, User
from ntd.roles import ANALYST, AUDITOR
from ntd.tasks import run_export_job_task
from tests.reports.factories import CaseFactory

Status = ExportJob.Status
HTMX = {"HX-Request": "true"}


# --- reading a PDF's text back ------------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """The text a PDF draws, one line per text-showing operator, in drawing order (WeasyPrint's output)."""
    objects = _objects(data)
    # Each font's ToUnicode map, by the resource name the content streams use (WeasyPrint's are unique).
    to_unicode: dict[bytes, dict[bytes, str]] = {}
    for body in objects.values():
        for name, ref in re.findall(rb"/(\w+) (\d+) 0 R", body):
            font = objects.get(int(ref), b"")
            cmap_ref = re.search(rb"/ToUnicode (\d+) 0 R", font)
            if b"/Type /Font" in font and cmap_ref:
                to_unicode[name] = _cmap(objects[int(cmap_ref.group(1))])
    lines, font_map = [], {}
    for body in objects.values():
        if b"stream" not in body or b" Tf" not in body:
            continue
        for op in re.finditer(rb"/(\w+) [\d.]+ Tf|\[([^\[\]]*)\] ?TJ|<([0-9a-fA-F]*)> ?Tj", body):
            if op.group(1):
                font_map = to_unicode.get(op.group(1), {})
                continue
            codes = re.findall(rb"<([0-9a-fA-F]+)>", op.group(2)) if op.group(2) is not None else [op.group(3)]
            lines.append("".join(font_map.get(code.lower(), "\ufffd") for hexes in codes
                                 for code in re.findall(rb"[0-9a-fA-F]{4}", hexes)))
    return "\n".join(lines)


def flat(text: str) -> str:
    """The text on one line: a line broken after a hyphen joined up again, other breaks as spaces."""
    return re.sub(r"(?<=-)\n", "", text).replace("\n", " ")


def _objects(data: bytes) -> dict[int, bytes]:
    """Every object by number, streams inflated, the objects packed in object streams unpacked."""
    objects: dict[int, bytes] = {}
    start = re.compile(rb"(\d+) 0 obj\s*")
    match = start.search(data)
    while match:
        end = data.index(b"endobj", match.end())
        stream = re.compile(rb"stream\r?\n").search(data, match.end(), end)
        if stream is None:
            objects[int(match.group(1))] = data[match.end():end].strip()
        else:
            head = data[match.end():stream.start()]
            length = int(re.search(rb"/Length (\d+)", head).group(1))
            raw = data[stream.end():stream.end() + length]
            end = data.index(b"endobj", stream.end() + length)  # binary data may hold anything
            body = zlib.decompress(raw) if b"/FlateDecode" in head else raw
            objects[int(match.group(1))] = head + b"stream\n" + body
            if b"/Type /ObjStm" in head:  # "number offset" pairs, then the objects themselves
                first = int(re.search(rb"/First (\d+)", head).group(1))
                pairs = [int(n) for n in body[:first].split()]
                numbers, offsets = pairs[0::2], [*pairs[1::2], len(body) - first]
                for number, begin, stop in zip(numbers, offsets, offsets[1:], strict=False):
                    objects[number] = body[first + begin:first + stop].strip()
        match = start.search(data, end)
    return objects


def _cmap(body: bytes) -> dict[bytes, str]:
    mapping: dict[bytes, str] = {}
    for section in re.findall(rb"beginbfchar(.*?)endbfchar", body, re.S):
        for code, text in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", section):
            mapping[code.lower()] = bytes.fromhex(text.decode()).decode("utf-16-be")
    for section in re.findall(rb"beginbfrange(.*?)endbfrange", body, re.S):
        for low, high, start in re.findall(rb"<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>\s*<([0-9a-fA-F]+)>", section):
            first = int(start, 16)
            for offset, code in enumerate(range(int(low, 16), int(high, 16) + 1)):
                mapping[b"%04x" % code] = chr(first + offset)
    return mapping


# --- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
def exports_dir(settings: Any, tmp_path: Path) -> Path:
    settings.EXPORT_DIR = tmp_path / "exports"
    return settings.EXPORT_DIR


@pytest.fixture
def auditor(make_staff: Callable[..., Any]) -> User:
    return make_staff(AUDITOR, username="audrey-auditor").user


@pytest.fixture
def claimed_case(make_staff: Callable[..., Any]) -> tuple[Any, User]:
    """A case opened, claimed and released by an analyst whose username must not leave in a pseudonymous export."""
    analyst = make_staff(ANALYST, username="alice-analyst").user
    case = CaseFactory()
    with transaction.atomic():
        audit.record(actor="system", action=Action.CASE_CREATED, target=case, case_id=case.pk,
                     data={"case": case.reference, "report": "R-TEST-0001"})
        audit.record(actor=analyst, action=Action.CASE_CLAIMED, target=case, case_id=case.pk,
                     data={"case": case.reference})
        audit.record(actor=analyst, action=Action.CASE_RELEASED, target=case, case_id=case.pk,
                     data={"case": case.reference})
    return case, analyst


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


def case_export(case: Any, fmt: str = "csv", **fields: Any) -> ExportRequest:
    return ExportRequest(kind=exports.CASE, case_id=case.pk, format=fmt, **fields)


def pdf_of(case: Any, *, actor: User, **fields: Any) -> bytes:
    return b"".join(exports.export_chunks(exports.record_export(case_export(case, "pdf", **fields), actor=actor)))


# --- the PDF ------------------------------------------------------------------------------------------------


@pytest.mark.django_db
class TestTimelinePDF:
    def test_is_a_pdf_of_the_case_with_its_events_and_page_numbers(self, claimed_case, auditor):
        case, analyst = claimed_case

        data = pdf_of(case, actor=auditor)

        assert data.startswith(b"%PDF-")
        text = flat(pdf_text(data))
        assert f"Timeline of {case.reference}" in text  # the title, and the running header
        assert text.count(case.reference) >= 3  # title, header, and the "Case opened" event
        entries = [entry for entry in case_export(case).entries() if entry.action != Action.TIMELINE_EXPORTED]
        assert len(entries) == 3
        for entry in entries:
            assert entry.description in text and entry.event.hash[:12] in text
        assert "opened by report R-TEST-0001" in text and f"by {analyst.pseudonym}" in text
        assert "page 1 of 1" in text and "Analysts by pseudonym" in text
        exported = AuditEvent.objects.get(action=Action.TIMELINE_EXPORTED)
        assert exported.hash[:12] not in text  # the export's own event comes after what it covers
        assert f"recorded as audit event #{exported.seq}" in text

    def test_names_no_analyst_unless_the_export_does(self, claimed_case, auditor):
        case, analyst = claimed_case

        pseudonymous = flat(pdf_text(pdf_of(case, actor=auditor)))
        internal = flat(pdf_text(pdf_of(case, actor=auditor, name_analysts=True)))

        assert f"by {analyst.pseudonym}" in pseudonymous
        assert analyst.username not in pseudonymous and auditor.username not in pseudonymous
        assert f"by {analyst.username} ({analyst.pseudonym})" in internal
        assert f"Exported by {auditor.username}" in internal and "Internal: names analysts" in internal

    def test_a_long_timeline_spans_pages_with_the_header_on_each(self, claimed_case, auditor):
        case, _analyst = claimed_case
        with transaction.atomic():
            audit.record_many([audit.Entry("system", Action.CASE_TRACE_REQUESTED, case, case.pk)] * 60)

        text = flat(pdf_text(pdf_of(case, actor=auditor)))

        pages = int(re.search(r"page 1 of (\d+)", text).group(1))
        assert pages >= 2 and f"page {pages} of {pages}" in text
        assert text.count(f"Timeline of {case.reference}") >= pages + 1  # every page's header, and the title

    def test_more_events_than_a_pdf_holds_is_refused_with_advice(self, claimed_case, settings):
        case, _analyst = claimed_case
        settings.EXPORT_PDF_MAX_EVENTS = 2

        with pytest.raises(pdf.ExportTooLarge, match="Use CSV") as refused:
            pdf.timeline_pdf_chunks(case_export(case, "pdf"))

        assert isinstance(refused.value, ExportError)  # the export views answer those with their message

    def test_reads_the_static_stylesheet_and_nothing_else(self):
        root = pdf._static_root()
        fetcher = pdf._static_files_only()(root)

        assert fetcher.fetch((root / pdf.STYLESHEET).as_uri()).read().startswith(b"/*")
        for url in ("file:///etc/passwd", (root / ".." / "ntd" / "settings.py").as_uri(),
                    "http://127.0.0.1:9/x.css", "data:text/css,body{}"):
            with pytest.raises(ValueError, match="static files only|disallowed protocol"):
                fetcher.fetch(url)


# --- prepared exports: with the real worker --------------------------------------------------------------------


def download(client: Client, job: ExportJob) -> Any:
    return client.get(f"/audit/exports/{job.pk}/download/")


class TestOnTheWorker:
    def test_a_job_runs_to_ready_and_its_download_is_the_file_it_hashed(self, celery_worker, exports_dir,
                                                                      claimed_case, auditor):
        case, _analyst = claimed_case
        client = signed_in(auditor)

        job = export_jobs.start_export_job(case_export(case, "csv"), actor=auditor)

        assert celery_worker.next_run(run_export_job_task) == ("SUCCESS", "ready")
        job.refresh_from_db()
        assert job.status == Status.READY and job.done == job.total == 3 and job.percent == 100
        assert job.filename == f"{case.reference}-timeline.csv"
        assert job.expires_at is not None and job.finished_at is not None
        assert job.expires_at - job.finished_at == dt.timedelta(hours=24)
        stored = exports_dir / job.path
        assert stored.stat().st_mode & 0o777 == 0o600 and stored.stat().st_size == job.size

        response = download(client, job)

        assert response.status_code == 200
        assert response["Content-Disposition"] == f'attachment; filename="{job.filename}"'
        assert "no-store" in response["Cache-Control"]
        body = b"".join(response.streaming_content)
        assert hashlib.sha256(body).hexdigest() == job.sha256 and len(body) == job.size
        # The same bytes as the export streamed directly, for the same pinned request.
        assert body == b"".join(exports.export_chunks(ExportRequest.from_params(job.params)))
        exported = AuditEvent.objects.get(action=Action.TIMELINE_EXPORTED)
        downloaded = AuditEvent.objects.get(action=Action.EXPORT_DOWNLOADED)
        assert (downloaded.actor_id, downloaded.target_type, downloaded.target_id, downloaded.case_id) == (
            str(auditor.pk), "ntd.exportjob", str(job.pk), case.pk)
        assert downloaded.data == {"export": job.pk, "format": "csv", "sha256": job.sha256, "size": job.size,
                                   "events": 3}
        assert exported.data["events"] == 3 and exported.seq < downloaded.seq


# --- prepared exports: the service and the views, the job run in the test's process ------------------------


@pytest.fixture
def ready_job(exports_dir, claimed_case, auditor, django_capture_on_commit_callbacks) -> ExportJob:
    case, _analyst = claimed_case
    with django_capture_on_commit_callbacks() as sent:
        job = export_jobs.start_export_job(case_export(case, "jsonl"), actor=auditor)
    assert len(sent) == 1  # the task goes once the start commits
    assert export_jobs.run_export_job(job.pk) == Status.READY
    job.refresh_from_db()
    return job


@pytest.mark.django_db
class TestJobs:
    def test_a_rerun_of_a_ready_job_changes_nothing(self, ready_job, exports_dir):
        before = ExportJob.objects.values().get(pk=ready_job.pk)
        files = {path: path.stat().st_mtime_ns for path in exports_dir.iterdir()}

        assert export_jobs.run_export_job(ready_job.pk) == Status.READY

        assert ExportJob.objects.values().get(pk=ready_job.pk) == before
        assert {path: path.stat().st_mtime_ns for path in exports_dir.iterdir()} == files

    def test_a_job_left_running_by_a_killed_worker_starts_again_cleanly(self, ready_job, exports_dir):
        partial = exports_dir / "left-by-a-dead-worker.jsonl"
        partial.write_bytes(b'{"half a line')
        ExportJob.objects.filter(pk=ready_job.pk).update(status=Status.RUNNING, done=2, path=partial.name,
                                                         sha256="", size=0)

        assert export_jobs.run_export_job(ready_job.pk) == Status.READY

        job = ExportJob.objects.get(pk=ready_job.pk)
        assert not partial.exists() and job.path != partial.name
        assert (job.sha256, job.size, job.done) == (ready_job.sha256, ready_job.size, 3)
        assert hashlib.sha256((exports_dir / job.path).read_bytes()).hexdigest() == job.sha256

    def test_a_second_delivery_while_a_worker_writes_the_job_does_nothing(self, ready_job):
        ExportJob.objects.filter(pk=ready_job.pk).update(status=Status.RUNNING)
        other = connections.create_connection("default")  # the worker that is writing it
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", export_jobs._writer_key(ready_job.pk))

            assert export_jobs.run_export_job(ready_job.pk) == Status.RUNNING
        finally:
            other.close()
        assert ExportJob.objects.get(pk=ready_job.pk).path == ready_job.path  # its file left alone

    def test_progress_is_saved_once_per_so_many_events(self, exports_dir, claimed_case, auditor, monkeypatch,
                                                       django_capture_on_commit_callbacks):
        monkeypatch.setattr(export_jobs, "PROGRESS_EVERY", 2)
        case, _analyst = claimed_case
        with django_capture_on_commit_callbacks():
            job = export_jobs.start_export_job(case_export(case, "csv"), actor=auditor)

        with CaptureQueriesContext(connection) as queries:
            export_jobs.run_export_job(job.pk)

        progress = [q["sql"] for q in queries if q["sql"].startswith('UPDATE "ntd_exportjob" SET "done"')]
        assert len(progress) == 1  # 3 events: one write at 2, then the finish

    def test_a_pdf_job_writes_the_pdf(self, exports_dir, claimed_case, auditor, django_capture_on_commit_callbacks):
        case, analyst = claimed_case
        with django_capture_on_commit_callbacks():
            job = export_jobs.start_export_job(case_export(case, "pdf"), actor=auditor)

        assert export_jobs.run_export_job(job.pk) == Status.READY

        job.refresh_from_db()
        data = (exports_dir / job.path).read_bytes()
        assert data.startswith(b"%PDF-") and job.path.endswith(".pdf") and job.done == 3
        assert f"by {analyst.pseudonym}" in flat(pdf_text(data))

    def test_a_failure_marks_the_job_failed_with_the_reason(self, exports_dir, claimed_case, auditor, settings,
                                                           django_capture_on_commit_callbacks):
        case, _analyst = claimed_case
        with django_capture_on_commit_callbacks():
            job = export_jobs.start_export_job(case_export(case, "pdf"), actor=auditor)
        settings.EXPORT_PDF_MAX_EVENTS = 2  # lowered while it waited

        assert export_jobs.run_export_job(job.pk) == Status.FAILED

        job.refresh_from_db()
        assert job.status == Status.FAILED and "Use CSV" in job.error and job.path == ""
        assert list(exports_dir.iterdir()) == []  # the partial file removed
        page = signed_in(auditor).get(f"/audit/exports/{job.pk}/").content.decode()
        assert "Use CSV" in page and "hx-trigger" not in page

    def test_a_pdf_too_long_is_refused_before_any_job(self, claimed_case, auditor, settings):
        case, _analyst = claimed_case
        settings.EXPORT_PDF_MAX_EVENTS = 2

        with pytest.raises(ExportError, match="CSV"):
            export_jobs.start_export_job(case_export(case, "pdf"), actor=auditor)

        assert not ExportJob.objects.exists() and not AuditEvent.objects.filter(
            action=Action.TIMELINE_EXPORTED).exists()

    def test_only_the_requester_sees_or_downloads_it(self, ready_job, make_staff):
        other = signed_in(make_staff(AUDITOR).user)
        before = AuditEvent.objects.count()

        assert other.get(f"/audit/exports/{ready_job.pk}/").status_code == 404
        assert download(other, ready_job).status_code == 404
        assert download(other, ExportJob(pk=ready_job.pk + 1000)).status_code == 404  # the same as missing
        assert AuditEvent.objects.count() == before

    def test_every_download_is_audited(self, ready_job, auditor):
        client = signed_in(auditor)

        for _ in range(2):
            response = download(client, ready_job)
            assert response.status_code == 200
            b"".join(response.streaming_content)

        events = AuditEvent.objects.filter(action=Action.EXPORT_DOWNLOADED, actor_id=str(auditor.pk),
                                           target_id=str(ready_job.pk))
        assert events.count() == 2

    def test_an_expired_export_is_gone_and_the_sweep_deletes_its_file(self, ready_job, auditor, exports_dir):
        client = signed_in(auditor)
        ExportJob.objects.filter(pk=ready_job.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
        before = AuditEvent.objects.count()

        response = download(client, ready_job)

        assert response.status_code == 410
        assert "has expired" in response.content.decode()
        assert AuditEvent.objects.count() == before  # nothing was downloaded

        assert export_jobs.expire_export_jobs() == 1

        job = ExportJob.objects.get(pk=ready_job.pk)
        assert job.status == Status.EXPIRED and job.path == ""
        assert list(exports_dir.iterdir()) == []
        assert download(client, job).status_code == 410
        assert export_jobs.expire_export_jobs() == 0

    def test_the_sweep_closes_jobs_their_workers_abandoned(self, ready_job, exports_dir):
        long_ago = timezone.now() - dt.timedelta(hours=3)
        queued = ExportJob.objects.create(requested_by=ready_job.requested_by, params=ready_job.params)
        dead = ExportJob.objects.create(requested_by=ready_job.requested_by, params=ready_job.params,
                                        status=Status.RUNNING, path="dead.csv")
        (exports_dir / "dead.csv").write_bytes(b"seq,at\r\n")
        ExportJob.objects.filter(pk__in=[queued.pk, dead.pk]).update(requested_at=long_ago)

        export_jobs.expire_export_jobs()

        assert ExportJob.objects.get(pk=queued.pk).error == "No worker picked the export up. Export again."
        assert ExportJob.objects.get(pk=dead.pk).status == Status.FAILED
        assert not (exports_dir / "dead.csv").exists()
        assert ExportJob.objects.get(pk=ready_job.pk).status == Status.READY  # not expired yet

    def test_the_page_polls_while_the_job_is_under_way_and_then_offers_the_file(self, ready_job, auditor):
        client = signed_in(auditor)
        ExportJob.objects.filter(pk=ready_job.pk).update(status=Status.RUNNING, done=1)

        polling = client.get(f"/audit/exports/{ready_job.pk}/", headers=HTMX).content.decode()

        assert polling.lstrip().startswith('<div id="job-status"')  # the block alone, swapped in place
        assert f'hx-get="/audit/exports/{ready_job.pk}/"' in polling and 'hx-trigger="every 2s"' in polling
        assert '<progress id="job-progress" max="3" value="1">' in polling
        assert "1 of 3 events written" in polling

        ExportJob.objects.filter(pk=ready_job.pk).update(status=Status.READY, done=3)
        done = client.get(f"/audit/exports/{ready_job.pk}/", headers=HTMX).content.decode()

        assert "hx-trigger" not in done and "<progress" not in done  # polling stops
        assert f'href="/audit/exports/{ready_job.pk}/download/"' in done and ready_job.sha256 in done
        page = client.get(f"/audit/exports/{ready_job.pk}/").content.decode()
        assert "<html" in page and f'href="/audit/exports/{ready_job.pk}/download/"' in page

    def test_a_download_before_the_file_is_ready_goes_to_the_page(self, ready_job, auditor):
        ExportJob.objects.filter(pk=ready_job.pk).update(status=Status.QUEUED)

        response = download(signed_in(auditor), ready_job)

        assert response.status_code == 302 and response["Location"] == f"/audit/exports/{ready_job.pk}/"
