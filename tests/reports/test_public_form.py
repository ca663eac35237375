from __future__ import annotations

import re

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from ntd.audit import AuditEvent
from reports.models import Case, Report, ReportURL

pytestmark = pytest.mark.django_db


def _reference(client, response) -> str:
    page = client.get(response["Location"])
    return re.search(r'id="reference">([^<]+)<', page.content.decode()).group(1)


class TestPublicForm:
    def test_page_says_what_matters_and_works_without_javascript(self, client):
        page = client.get("/report/").content.decode()
        assert "Never send images or videos" in page
        assert "cannot acknowledge your report" in page
        assert "112" in page  # the emergency number
        assert 'enctype="multipart' not in page
        assert "<script" not in page  # no challenge yet, so no script at all

    def test_anonymous_report_of_three_urls_opens_three_cases(self, client, report_form):
        response = report_form("https://a.example/1\nhxxp://b[.]example/2\nc.example/3")
        assert response.status_code == 302
        reference = _reference(client, response)
        assert re.fullmatch(r"R-[0-9A-Z]{4}-[0-9A-Z]{4}", reference)
        report = Report.objects.get(reference=reference)
        assert report.contact_sealed is None and report.source_kind == "public"
        assert sorted(Case.objects.values_list("url", flat=True)) == [
            "http://b.example/2", "http://c.example/3", "https://a.example/1"]
        assert AuditEvent.objects.filter(action="case.created").count() == 3
        assert AuditEvent.objects.filter(action="report.received", target_id=str(report.pk)).exists()

    def test_a_second_report_spelled_differently_joins_the_open_case(self, client, report_form):
        report_form("https://example.com/a/b?x=1")
        response = report_form("HTTPS://Example.COM:443/a/./c/../b?x=1#top")
        assert response.status_code == 302
        case = Case.objects.get()
        assert case.report_count == 2
        assert list(ReportURL.objects.order_by("id").values_list("opened_case", flat=True)) == [True, False]
        assert AuditEvent.objects.filter(action="case.report_joined", case_id=case.pk).count() == 1

    def test_child_at_risk_gets_top_priority_and_police_flag(self, report_form):
        report_form("https://example.com/x", child_at_risk="on")
        case = Case.objects.get()
        assert case.priority == 100 and case.child_at_risk and case.police_referral

    @pytest.mark.parametrize(("urls", "message"), [
        ("data:image/png;base64,AAAA", "Line 1"),
        ("javascript:alert(1)", "Line 1"),
        ("file:///etc/passwd", "Line 1"),
        ("ftp://example.com/x", "Line 1"),
        ("https://", "Line 1"),
        ("https://example.com/" + "a" * 2100, "Line 1"),
        ("\n".join(f"https://example.com/{i}" for i in range(21)), "at most 20"),
    ])
    def test_bad_urls_get_a_clear_message_and_write_nothing(self, report_form, urls, message):
        response = report_form(urls)
        assert response.status_code == 400
        assert message in response.content.decode()
        assert not Report.objects.exists() and not Case.objects.exists() and not AuditEvent.objects.exists()

    @pytest.mark.parametrize(("fields", "message"), [
        ({"description": "x" * 2001}, "2,000 characters"),
        ({"encountered_at": "yesterday-ish"}, "Enter a date and time"),
        ({"contact": "email", "email": ""}, "Enter your e-mail address"),
        ({"contact": "email", "email": "not-an-address"}, "valid e-mail address"),
        ({"material_kind": "photos"}, "Select a valid choice"),
    ])
    def test_bad_fields_get_a_message_next_to_them(self, report_form, fields, message):
        response = report_form("https://example.com/x", **fields)
        assert response.status_code == 400
        assert message in response.content.decode()
        assert not Report.objects.exists()

    def test_a_file_is_refused_with_a_clear_page(self, client):
        upload = SimpleUploadedFile("photo.jpg", b"\xff\xd8\xff\xe0" + b"0" * 100, content_type="image/jpeg")
        response = client.post("/report/", {"urls": "https://example.com/x", "file": upload})
        assert response.status_code == 400
        assert "never accepts files" in response.content.decode()
        assert not Report.objects.exists()

    def test_an_oversized_body_is_refused(self, report_form):
        response = report_form("https://example.com/x", description="x" * 70_000)
        assert response.status_code == 413
        assert not Report.objects.exists()

    def test_honeypot_refuses_without_writing(self, report_form):
        response = report_form("https://example.com/x", website="http://spam.example")
        assert response.status_code == 400
        assert not Report.objects.exists()

    def test_a_forged_stamp_is_refused(self, report_form):
        response = report_form("https://example.com/x", stamp="abc:def:ghi")
        assert response.status_code == 400
        assert "expired" in response.content.decode()
        assert not Report.objects.exists()


def test_the_landing_page_leads_the_public_to_the_form(client):
    page = client.get("/").content.decode()
    assert 'href="/report/"' in page and 'href="/report/status/"' in page
