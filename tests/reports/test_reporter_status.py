"""What a reporter's status page says as the case moves through review (coarse, nothing about the content)."""

from __future__ import annotations

import pytest

from reports import intake
from reports.models import Case
from reports.normalise import normalise
from reports.selectors import ReporterStatus, reporter_status
from tests.reports.factories import CaseFactory

pytestmark = pytest.mark.django_db
S = Case.Status


def report_of(*urls: str):
    return intake.file_public_report(urls=[intake.ReportedURL(u, normalise(u)) for u in urls],
                                     details=intake.ReportDetails(), contact_email=None).report


@pytest.mark.parametrize(("statuses", "expected"), [
    ([S.RECEIVED], ReporterStatus.RECEIVED),
    ([S.IN_REVIEW], ReporterStatus.RECEIVED),
    ([S.AWAITING_SECOND_OPINION], ReporterStatus.RECEIVED),
    ([S.AWAITING_DECISION], ReporterStatus.RECEIVED),
    ([S.ACTIONING], ReporterStatus.ACTION_TAKEN),
    ([S.NOT_ILLEGAL], ReporterStatus.NO_ACTION),
    ([S.NOT_ILLEGAL, S.OUT_OF_REMIT], ReporterStatus.NO_ACTION),
    ([S.NOT_ILLEGAL, S.ACTIONING], ReporterStatus.ACTION_TAKEN),
    ([S.NOT_ILLEGAL, S.IN_REVIEW], ReporterStatus.RECEIVED),
    ([S.CLOSED], ReporterStatus.ACTION_TAKEN),  # closed after removal
])
def test_status_follows_the_cases(statuses, expected):
    report = report_of(*(f"https://status.example/{n}" for n in range(len(statuses))))
    for case, status in zip(report.cases.order_by("url"), statuses, strict=True):
        Case.objects.filter(pk=case.pk).update(status=status)
    assert reporter_status(report) == expected


@pytest.mark.parametrize(("original", "expected"), [
    (S.RECEIVED, ReporterStatus.RECEIVED), (S.ACTIONING, ReporterStatus.ACTION_TAKEN),
    (S.NOT_ILLEGAL, ReporterStatus.NO_ACTION),
])
def test_a_case_closed_as_a_duplicate_answers_with_the_case_it_duplicates(original, expected):
    report = report_of("https://status.example/dup")
    Case.objects.filter(pk=report.cases.get().pk).update(
        status=S.CLOSED, duplicate_of=CaseFactory(status=original))
    assert reporter_status(report) == expected
