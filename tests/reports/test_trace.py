"""The hosting trace end to end: intake queues it after commit, a real worker resolves the host against a real
DNS server on loopback, the offline data names country and network, and the case is filed under its host."""

from __future__ import annotations

from typing import Any

import pytest

from ntd.audit import AuditEvent
from reports import intake, services
from reports.hosting import ResolverConfig
from reports.models import Case, HostingTrace
from reports.normalise import normalise
from reports.tasks import trace_case_task, trace_cases_task
from takedown.models import HostingNetwork, Partner
from tests.celery_worker import Worker
from tests.reports.factories import CaseFactory, QueueFactory
from tests.reports.test_hosting import dns  # noqa: F401 - the loopback DNS server fixture

pytestmark = pytest.mark.django_db


@pytest.fixture
def dns_settings(settings: Any, dns: ResolverConfig) -> ResolverConfig:  # noqa: F811 - the fixture above
    settings.DNS_NAMESERVERS = list(dns.nameservers)
    settings.DNS_PORT = dns.port
    settings.DNS_TIMEOUT = dns.timeout
    settings.HOSTING_LOOKUP = "offline"
    return dns


def file(url: str) -> Case:
    filed = intake.file_public_report(urls=[intake.ReportedURL(url, normalise(url))],
                                      details=intake.ReportDetails(material_kind="images"), contact_email=None)
    return Case.objects.get(pk=filed.outcomes[0].case_id)


class TestTraceTask:
    def test_a_resolved_host_is_filed_under_its_country_network_and_hosting_provider(self, dns_settings):
        # given: Google's network mapped to a hosting-provider partner, and a queue for what is hosted in the US
        host = Partner.objects.create(name="Google (test)", kind=Partner.Kind.HOSTING_PROVIDER, country="US")
        HostingNetwork.objects.create(asn=15169, name="Google", partner=host)
        us_queue = QueueFactory(hosting_countries=["US"])
        case = CaseFactory(url="https://public.example.test/a", host="public.example.test")

        # when
        assert trace_case_task(case.pk) == "resolved"

        # then
        case.refresh_from_db()
        assert (case.hosting_country, case.hosting_asn, case.hosting_partner_id) == ("US", 15169, host.pk)
        assert case.queue_id == us_queue.pk and case.traced_at is not None
        trace = HostingTrace.objects.get(case=case)
        assert {a["ip"] for a in trace.addresses} == {"8.8.8.8", "2001:4860:4860::8888"}
        assert trace.data_date and "plevin-db-network" in trace.source
        event = AuditEvent.objects.get(case_id=case.pk, action="case.traced")
        assert event.actor_type == "system" and event.data["country"] == "US" and event.data["asn"] == 15169

    def test_an_unresolvable_host_is_recorded_as_such(self, dns_settings):
        case = CaseFactory(url="https://nowhere.example.test/", host="nowhere.example.test")

        assert trace_case_task(case.pk) == "unresolvable"

        trace = HostingTrace.objects.get(case=case)
        assert (trace.outcome, trace.detail, trace.addresses) == ("unresolvable", "no such domain", [])
        case.refresh_from_db()
        assert (case.hosting_country, case.hosting_asn, case.hosting_partner_id) == ("", None, None)
        assert case.traced_at is not None

    def test_a_new_trace_replaces_where_the_case_is_hosted_and_keeps_the_old_one(self, dns_settings):
        case = CaseFactory(url="https://public.example.test/b", host="public.example.test")
        trace_case_task(case.pk)
        case.host = "nowhere.example.test"
        case.save()

        trace_case_task(case.pk)

        case.refresh_from_db()
        assert HostingTrace.objects.filter(case=case).count() == 2
        assert case.hosting_country == "" and HostingTrace.objects.filter(case=case).first().outcome == "unresolvable"

    def test_a_case_that_is_gone_is_no_error(self, dns_settings):
        assert trace_case_task(2**40) == "gone"


class TestScheduling:
    def test_intake_queues_the_trace_of_new_cases_only_after_commit(self, settings, dns_settings,
                                                                      django_capture_on_commit_callbacks):
        settings.TRACE_NEW_CASES = True
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            file("https://public.example.test/c")
        assert HostingTrace.objects.count() == 0  # nothing ran inside the transaction
        assert len(callbacks) == 1

    def test_a_report_that_joins_an_open_case_queues_no_trace(self, settings, django_capture_on_commit_callbacks):
        file("https://public.example.test/d")
        settings.TRACE_NEW_CASES = True
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            file("https://public.example.test/d")
        assert callbacks == []

    def test_an_analyst_asks_for_a_trace_again(self, make_staff, default_queue, django_capture_on_commit_callbacks):
        from tests.reports.factories import grant

        analyst = make_staff("analyst").user
        grant(analyst, default_queue)
        case = CaseFactory()
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.request_trace(case.pk, actor=analyst)
        assert len(callbacks) == 1
        assert AuditEvent.objects.filter(case_id=case.pk, action="case.trace_requested").count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_report_is_traced_by_the_real_worker(settings, dns_settings, celery_worker: Worker):
    """The whole path: the public form's service commits, the task goes through Redis, a worker traces it."""
    settings.TRACE_NEW_CASES = True

    case = file("https://public.example.test/e")

    assert celery_worker.next_run(trace_cases_task) == ("SUCCESS", 1)
    case.refresh_from_db()
    assert case.hosting_country == "US" and case.hosting_asn == 15169
