"""De-duplication: one open case per canonical URL, however it is spelled and however many report it at once.

Reports meet in the database (INSERT ... ON CONFLICT against the partial unique index on open cases), so the
concurrent tests really commit, from one connection per thread.
"""

from __future__ import annotations

import random

import pytest
from django.utils import timezone

from ntd import audit
from ntd.audit import AuditEvent
from reports import intake
from reports.models import Case, Report, ReportURL
from reports.normalise import normalise
from takedown.models import Partner
from tests.concurrency import run_at_once

CANONICAL = "http://xn--bcher-kva.example/~abc/"
# Fifty spellings of CANONICAL: scheme case and defanging, no scheme at all, IDN and punycode in any case, a
# trailing dot on the host, the default port, dot segments (also percent-encoded), %7E for ~, other escapes of
# unreserved characters, a fragment, sentence punctuation after the URL.
_SCHEMES = ["http://", "HTTP://", "hxxp://", "h**p://", "", "//"]
_HOSTS = ["bücher.example", "xn--bcher-kva.example", "BÜCHER.Example", "XN--BCHER-KVA.EXAMPLE.", "bücher[.]example"]
_PORTS = ["", ":80", ":0080"]
_PATHS = ["/~abc/", "/%7Eabc/", "/%7eabc/", "/x/../~abc/", "/./~abc/./", "/%2E/~abc/", "/~abc/y/%2e%2e/", "/~%61bc/"]
_ENDS = ["", "#top", "#", ".", " "]
SPELLINGS = [f"{_SCHEMES[i % 6]}{_HOSTS[i // 6 % 5]}{_PORTS[i % 3]}{_PATHS[i % 8]}{_ENDS[i % 5]}" for i in range(50)]
# Look-alikes that are other URLs: no trailing slash on a path, another scheme, port, path case or host.
OTHER_URLS = ["http://bücher.example/~abc", "https://bücher.example/~abc/", "http://bücher.example:8080/~abc/",
              "http://bücher.example/~ABC/", "http://bucher.example/~abc/"]

DETAILS = intake.ReportDetails(material_kind="images", encountered_via="website")


def reported(*urls: str) -> list[intake.ReportedURL]:
    return [intake.ReportedURL(url, normalise(url)) for url in urls]


def file_public(*urls: str) -> intake.Filed:
    return intake.file_public_report(urls=reported(*urls), details=DETAILS, contact_email=None)


def test_the_spellings_are_one_url_and_the_look_alikes_are_not():
    assert len(set(SPELLINGS)) == 50
    assert {normalise(spelling).url for spelling in SPELLINGS} == {CANONICAL}
    assert CANONICAL not in {normalise(other).url for other in OTHER_URLS}
    assert len({normalise(other).key for other in OTHER_URLS}) == len(OTHER_URLS)


@pytest.mark.django_db(transaction=True)
class TestConcurrentReports:
    def test_fifty_concurrent_submissions_of_one_url_in_different_spellings_make_exactly_one_case(self):
        filed = run_at_once([lambda spelling=spelling: file_public(spelling) for spelling in SPELLINGS])

        case = Case.objects.get()
        assert case.url == CANONICAL and case.report_count == 50
        assert Report.objects.count() == 50
        assert sorted(ReportURL.objects.values_list("as_reported", flat=True)) == sorted(SPELLINGS)
        assert [f.outcomes[0].opened for f in filed].count(True) == 1
        assert ReportURL.objects.filter(opened_case=True).count() == 1
        assert {f.outcomes[0].case_reference for f in filed} == {case.reference}
        actions = list(AuditEvent.objects.values_list("action", flat=True))
        assert (actions.count("report.received"), actions.count("case.created"),
                actions.count("case.report_joined")) == (50, 1, 49)
        verification = audit.verify_chain()
        assert verification.ok and verification.checked == 100, verification.describe()

    def test_overlapping_batches_in_opposite_orders_do_not_deadlock(self):
        partner = Partner.objects.create(name="Hotline", kind=Partner.Kind.HOTLINE)
        urls = [f"https://example.com/item/{i}" for i in range(300)]
        orders = [random.Random(seed).sample(urls, len(urls)) for seed in range(6)]  # noqa: S311
        orders[1] = list(reversed(orders[0]))

        def file(order: list[str]) -> intake.Filed:
            return intake.file_partner_report(partner=partner, urls=reported(*order), details=DETAILS,
                                                channel=Report.Channel.API)

        filed = run_at_once([lambda order=order: file(order) for order in orders])

        assert Case.objects.count() == 300
        assert set(Case.objects.values_list("report_count", flat=True)) == {6}
        assert sum(o.opened for f in filed for o in f.outcomes) == 300
        assert audit.verify_chain().ok


@pytest.mark.django_db
class TestReappearance:
    def test_a_url_whose_case_is_closed_opens_a_new_case_linked_to_the_old_one(self):
        old = Case.objects.get(pk=file_public("https://example.com/a").outcomes[0].case_id)
        Case.objects.filter(pk=old.pk).update(status=Case.Status.REMOVED, closed_at=timezone.now())

        again = file_public("HTTPS://EXAMPLE.COM/a#again").outcomes[0]

        assert again.opened and again.case_id != old.pk
        new = Case.objects.get(pk=again.case_id)
        assert new.previous_case == old and new.report_count == 1 and new.status == Case.Status.RECEIVED
        old.refresh_from_db()
        assert old.report_count == 1 and old.status == Case.Status.REMOVED
        assert file_public("https://example.com/a").outcomes[0].case_id == new.pk  # the next report joins it

    def test_the_new_case_points_at_the_latest_closed_one(self):
        first = file_public("https://example.com/a").outcomes[0].case_id
        Case.objects.filter(pk=first).update(status=Case.Status.REMOVED,
                                             closed_at=timezone.now() - timezone.timedelta(days=30))
        second = file_public("https://example.com/a").outcomes[0].case_id
        Case.objects.filter(pk=second).update(status=Case.Status.NOT_ILLEGAL, closed_at=timezone.now())

        third = Case.objects.get(pk=file_public("https://example.com/a").outcomes[0].case_id)

        assert third.previous_case_id == second
        assert Case.objects.get(pk=second).previous_case_id == first

    def test_a_url_never_closed_has_no_previous_case(self):
        file_public("https://example.com/a")
        Case.objects.update(status=Case.Status.REMOVED, closed_at=timezone.now())

        fresh = Case.objects.get(pk=file_public("https://example.com/b").outcomes[0].case_id)

        assert fresh.previous_case is None


@pytest.mark.django_db
class TestWithinOneReport:
    def test_the_same_url_twice_in_one_report_makes_one_case_counted_once(self):
        filed = file_public("https://example.com/a", "https://example.com/b", "HTTPS://example.com:443/a#again")

        assert [(o.position, o.as_reported, o.opened, o.duplicate) for o in filed.outcomes] == [
            (0, "https://example.com/a", True, False), (1, "https://example.com/b", True, False),
            (2, "HTTPS://example.com:443/a#again", False, True)]
        assert filed.outcomes[2].case_id == filed.outcomes[0].case_id
        assert dict(Case.objects.values_list("url", "report_count")) == {
            "https://example.com/a": 1, "https://example.com/b": 1}
        assert ReportURL.objects.count() == 3  # every position is kept, so the partner can match each one
        assert filed.report.url_count == 3
        assert AuditEvent.objects.filter(action="case.created").count() == 2

    def test_a_batch_mixing_new_and_open_urls_says_which_is_which(self):
        first = file_public("https://example.com/a", "https://example.com/c")
        by_url = {Case.objects.get(pk=o.case_id).url: o.case_reference for o in first.outcomes}

        mixed = file_public("http://new.example/1", "https://EXAMPLE.com/a", "https://example.com/b",
                            "https://example.com/c#x")

        assert [(o.position, o.opened) for o in mixed.outcomes] == [(0, True), (1, False), (2, True), (3, False)]
        assert mixed.outcomes[1].case_reference == by_url["https://example.com/a"]
        assert mixed.outcomes[3].case_reference == by_url["https://example.com/c"]
        assert list(ReportURL.objects.filter(report=mixed.report).order_by("position")
                    .values_list("opened_case", flat=True)) == [True, False, True, False]
        assert dict(Case.objects.values_list("url", "report_count")) == {
            "https://example.com/a": 2, "https://example.com/b": 1, "https://example.com/c": 2,
            "http://new.example/1": 1}
        joined = AuditEvent.objects.filter(action="case.report_joined").values_list("data", flat=True)
        assert sorted(d["case"] for d in joined) == sorted(by_url.values())

    def test_a_host_with_or_without_the_root_slash_is_one_url(self):
        filed = file_public("http://Bücher.example", "HTTP://xn--bcher-kva.example/", "bücher.example:80",
                            "http://bücher.example/?#")

        assert [(o.position, o.opened, o.duplicate) for o in filed.outcomes] == [
            (0, True, False), (1, False, True), (2, False, True), (3, False, True)]
        assert Case.objects.get().url == "http://xn--bcher-kva.example/"

    def test_look_alikes_are_separate_cases(self):
        file_public(*OTHER_URLS)

        assert Case.objects.count() == len(OTHER_URLS)
