"""The intake service's set-wise paths: inline VALUES for small reports, COPY for large batches."""

from __future__ import annotations

import itertools

import pytest
from django.utils import timezone

from ntd import audit
from ntd.bulk import COPY_FROM
from reports import intake
from reports.models import Case, KnownURL, Priority, ReportURL
from reports.normalise import normalise
from takedown.models import Partner

pytestmark = pytest.mark.django_db


def _urls(n: int, prefix: str = "https://batch.example/") -> list[intake.ReportedURL]:
    return [intake.ReportedURL(f"{prefix}{i}", normalise(f"{prefix}{i}")) for i in range(n)]


@pytest.fixture
def partner() -> Partner:
    return Partner.objects.create(name="Hotline", kind=Partner.Kind.HOTLINE, country="NL")


@pytest.mark.parametrize("size", [3, COPY_FROM + 50], ids=["inline", "copy"])
class TestBatch:
    def test_opens_joins_flags_known_and_links_reappearances(self, partner, size):
        urls = _urls(size)
        intake.file_public_report(urls=urls[:2], details=intake.ReportDetails(), contact_email=None)
        closed = Case.objects.get(url_key=urls[0].url.key)
        Case.objects.filter(pk=closed.pk).update(closed_at=timezone.now(), status=Case.Status.NOT_ILLEGAL)
        KnownURL.objects.create(url=urls[2].url.url, url_key=urls[2].url.key, registrable_domain="batch.example",
                                source="test list")

        filed = intake.file_partner_report(partner=partner, urls=urls, details=intake.ReportDetails(),
                                             channel="api", partner_reference="batch-1")

        opened = {o.as_reported: o.opened for o in filed.outcomes}
        assert opened[urls[0].as_reported] is True  # its case had closed: a new, linked case
        assert opened[urls[1].as_reported] is False  # joined the open case
        assert sum(opened.values()) == size - 1
        reappeared = Case.objects.get(url_key=urls[0].url.key, closed_at__isnull=True)
        assert reappeared.previous_case_id == closed.pk
        known = Case.objects.get(url_key=urls[2].url.key)
        assert known.known_url and known.priority == Priority.KNOWN_URL
        assert Case.objects.get(url_key=urls[1].url.key).priority == Priority.PARTNER  # raised from public
        assert ReportURL.objects.filter(report=filed.report).count() == size
        assert audit.verify_chain().ok
        assert audit.AuditEvent.objects.filter(action="case.created").count() == 2 + size - 1


def test_a_reference_clash_is_filed_again_with_fresh_references(monkeypatch):
    taken = intake.file_public_report(urls=_urls(1), details=intake.ReportDetails(),
                                        contact_email=None).outcomes[0].case_reference
    fresh = (f"C-TEST-{i:04d}" for i in itertools.count())
    first = iter([taken])
    monkeypatch.setattr(intake, "new_case_reference", lambda: next(first, None) or next(fresh))

    filed = intake.file_public_report(urls=_urls(1, "https://other.example/"), details=intake.ReportDetails(),
                                        contact_email=None)

    assert filed.outcomes[0].case_reference == "C-TEST-0000"
    assert Case.objects.count() == 2
    assert audit.verify_chain().ok
