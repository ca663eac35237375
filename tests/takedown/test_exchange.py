"""Hotline-to-hotline exchange (takedown/exchange.py): the referral as a report for the partner's ntd, and the
acknowledgement and removal reported back to a referring ntd; then two real ntd instances exchanging a case.

The unit tests work in one database (this instance playing either side); the end-to-end test runs instance A
as the pytest live server with the real Celery worker, and instance B as a second deployment on loopback
(tests/takedown/instance.py): its own database, gunicorn and worker.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from ntd import audit, roles
from ntd.audit import AuditEvent
from ntd.models import User
from reports import intake
from reports import services as life_cycle
from reports.hosting import RESOLVED, AddressInfo, Trace
from reports.models import Case, Report
from reports.normalise import normalise
from reports.serializers import PartnerReportIn
from reports.services import AssessmentInput
from takedown import exchange
from takedown.models import Notice, NoticeKind, OutboxEntry, Partner, RoutingRule
from tests.concurrency import run_at_once
from tests.reports.factories import CaseFactory, Scheme, grant
from tests.takedown.instance import second_instance  # noqa: F401  (a fixture)

S = Case.Status
NL_AS = 64512


@pytest.fixture(autouse=True)
def _our_side(settings: Any) -> None:
    settings.NTD_COUNTRY = "GB"
    settings.NTD_ORGANISATION = "Hotline GB"
    settings.NOTICE_GROUPING_SECONDS = 120
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def analyst(make_staff: Callable[..., Any], default_queue: Any) -> User:
    user = make_staff(roles.ANALYST).user
    grant(user, default_queue)
    return user


def hotline_routing() -> None:
    """The default rule for a case hosted where a partner hotline works (a transactional test may have emptied
    the table the migration seeded)."""
    RoutingRule.objects.get_or_create(situation=RoutingRule.Situation.HOTLINE_ABROAD,
                                      send_to=RoutingRule.Target.COUNTRY_HOTLINE,
                                      defaults={"position": 40, "notice_kind": NoticeKind.HOTLINE_REFERRAL})


@pytest.fixture
def hotline_nl(db: Any) -> Partner:
    hotline_routing()
    return Partner.objects.create(name="Hotline NL", kind=Partner.Kind.HOTLINE, country="NL", inhope_member=True,
                                  runs_ntd=True, ntd_url="https://ntd.hotline-nl.example")


def report_url(url: str, **details: Any) -> Case:
    """A public report of one URL, through intake: the case it opened or joined."""
    given = intake.ReportDetails(**{"material_kind": "images", "encountered_via": "website", **details})
    filed = intake.file_public_report(urls=[intake.ReportedURL(url, normalise(url))], details=given,
                                      contact_email=None)
    return Case.objects.get(pk=filed.outcomes[0].case_id)


def trace_to(case: Case, country: str, asn: int = NL_AS) -> None:
    life_cycle.record_trace(case.pk, Trace(host=case.host, outcome=RESOLVED, detail="", cname_chain=(),
                                           source="test", data_date="",
                                           addresses=(AddressInfo("192.0.2.10", 4, country, asn, "Example BV", ""),)))


def illegal(scheme: Scheme, media_type: str = "images", rationale: str = "") -> AssessmentInput:
    return AssessmentInput(verdict=scheme.verdict("illegal_baseline"),
                           media_type=scheme.option("media_type", media_type),
                           age_group=scheme.option("age_group", "prepubescent"), clause=scheme.clause("INT", "BL-1"),
                           rationale=rationale)


def confirm(case: Case, analyst: User, scheme: Scheme, **assessment: Any) -> Case:
    life_cycle.claim_case(case.pk, actor=analyst)
    life_cycle.assess_case(case.pk, actor=analyst, assessment=illegal(scheme, **assessment))
    return Case.objects.get(pk=case.pk)


def referral_to(partner: Partner) -> Notice:
    [notice] = Notice.objects.filter(partner=partner, kind=NoticeKind.HOTLINE_REFERRAL)
    return notice


# --- sending: the referral as a report for their ntd -----------------------------------------------------------


@pytest.mark.django_db
class TestReferralPayload:
    def test_is_a_report_their_partner_api_accepts_with_our_notice_reference_as_theirs(self, scheme, analyst,
                                                                                       hotline_nl):
        case = report_url("https://files.example.nl/album/1", material_kind="videos", encountered_via="search_engine")
        trace_to(case, "NL")
        confirm(case, analyst, scheme, rationale=f"Seen by {analyst.username}: meets BL-1.")
        notice = referral_to(hotline_nl)
        assert notice.channel == Notice.Channel.NTD

        payload = exchange.referral_payload(notice)

        assert payload["path"] == "/api/v1/reports/"
        body = payload["body"]
        assert body["partner_reference"] == notice.reference
        assert body["urls"] == [case.url]
        assert body["material_kind"] == "images"  # what the analyst assessed, not what the reporter said
        assert body["encountered_via"] == "search_engine"
        assert body["child_at_risk"] is False
        incoming = PartnerReportIn(data=json.loads(json.dumps(body)))
        assert incoming.is_valid(), incoming.errors
        assert incoming.validated_data["urls"] == [case.url]

    def test_description_names_us_our_notice_and_the_verdict_but_no_analyst(self, scheme, analyst, hotline_nl):
        case = report_url("https://files.example.nl/album/2")
        trace_to(case, "NL")
        confirm(case, analyst, scheme, rationale=f"Seen by {analyst.username} ({analyst.pseudonym}).")
        notice = referral_to(hotline_nl)

        description = exchange.referral_payload(notice)["body"]["description"]

        assert description.startswith(f"Referral from Hotline GB (GB), our notice {notice.reference}.")
        assert "child sexual abuse material" in description
        assert (f"URL 1 (our case {case.reference}): Illegal under the international baseline (INT); "
                "clause INT BL-1: Real child, apparently under 13, involved in or witnessing a sexual act; "
                "images.") in description
        for named in (analyst.username, analyst.pseudonym, "Seen by"):
            assert named not in description
        assert "pornography" not in description.lower()

    def test_the_same_notice_always_gives_the_same_payload(self, scheme, analyst, hotline_nl):
        case = report_url("https://files.example.nl/album/3")
        trace_to(case, "NL")
        confirm(case, analyst, scheme)
        notice = referral_to(hotline_nl)
        first = exchange.referral_payload(notice)
        assert exchange.referral_payload(Notice.objects.get(pk=notice.pk)) == first

    def test_a_grouped_referral_lists_every_url_in_order_and_says_when_kinds_differ(self, scheme, analyst,
                                                                                    hotline_nl):
        first = report_url("https://one.example.nl/a")
        second = report_url("https://two.example.nl/b", child_at_risk=True)
        for case, media in ((first, "images"), (second, "videos")):
            trace_to(case, "NL")
            confirm(case, analyst, scheme, media_type=media)
        notice = referral_to(hotline_nl)

        body = exchange.referral_payload(notice)["body"]

        assert body["urls"] == [first.url, second.url]
        assert body["material_kind"] == "other"
        assert body["child_at_risk"] is True
        assert "URL 2 (our case" in body["description"] and "a child may be at immediate risk" in body["description"]

    def test_many_urls_keep_the_description_within_what_their_api_takes(self, scheme, analyst, hotline_nl):
        cases = [CaseFactory(url=f"https://mirror{n}.example.nl/{'x' * 200}", hosting_country="NL", hosting_asn=NL_AS)
                 for n in range(40)]
        for case in cases:
            confirm(case, analyst, scheme)
        notice = referral_to(hotline_nl)

        body = exchange.referral_payload(notice)["body"]

        assert len(body["urls"]) == 40 and "encountered_via" not in body
        assert len(body["description"]) <= exchange.DESCRIPTION_LIMIT
        assert body["description"].endswith(f"more (see our notice {notice.reference}).")
        incoming = PartnerReportIn(data=body)
        assert incoming.is_valid(), incoming.errors

    def test_a_notice_without_cases_is_refused(self, hotline_nl):
        from takedown import services

        notice = services.issue_notice(partner=hotline_nl, kind=NoticeKind.STATUS_UPDATE, cases=[], actor=None,
                                       immediate=True, payload={"path": "/x", "body": {}})
        with pytest.raises(ValueError, match="names no case"):
            exchange.referral_payload(notice)


# --- receiving: acknowledgement and removal back to the referring ntd --------------------------------------------

THEIR_NOTICE = "N-7K3M-QX9P"


@pytest.fixture
def hotline_gb(db: Any) -> Partner:
    return Partner.objects.create(name="Hotline GB", kind=Partner.Kind.HOTLINE, country="GB", runs_ntd=True,
                                  ntd_url="https://ntd.hotline-gb.example")


def referral_from(partner: Partner, *urls: str, reference: str = THEIR_NOTICE) -> Report:
    filed = intake.file_partner_report(
        partner=partner, urls=[intake.ReportedURL(url, normalise(url)) for url in urls],
        details=intake.ReportDetails(material_kind="images"), channel=Report.Channel.API,
        partner_reference=reference)
    return filed.report


def status_updates(partner: Partner) -> list[Notice]:
    return list(Notice.objects.filter(partner=partner, kind=NoticeKind.STATUS_UPDATE).order_by("pk"))


def removed(case: Case) -> None:
    """Drive a case to removed through the life cycle's own checked transitions."""
    steps = [(S.IN_REVIEW, audit.Action.CASE_CLAIMED), (S.CONFIRMED, audit.Action.CASE_CONFIRMED),
             (S.ACTIONING, audit.Action.CASE_ACTIONING), (S.AWAITING_REMOVAL, audit.Action.CASE_AWAITING_REMOVAL),
             (S.REMOVAL_OBSERVED, audit.Action.CASE_REMOVAL_OBSERVED), (S.REMOVED, audit.Action.CASE_REMOVED)]
    with transaction.atomic():
        locked = life_cycle.lock_case(case.pk)
        for status, action in steps:
            life_cycle.apply_transition(locked, status, actor=None, action=action)


@pytest.mark.django_db
class TestAcknowledgingAReferral:
    def test_a_referral_from_an_ntd_is_acknowledged_back_once(self, hotline_gb):
        # when: the referral is filed (intake calls the hook in the filing's transaction)
        report = referral_from(hotline_gb, "https://a.example.nl/1", "https://b.example.nl/2")

        # then: one status update answers it
        [notice] = status_updates(hotline_gb)
        assert (notice.kind, notice.channel, notice.immediate) == (NoticeKind.STATUS_UPDATE, Notice.Channel.NTD, True)
        assert notice.payload == {"path": f"/api/v1/notices/{THEIR_NOTICE}/acknowledge", "body": {}}
        assert set(notice.cases.all()) == set(report.cases.all()) and notice.cases.count() == 2
        assert notice.issued_by is None and notice.state == Notice.State.QUEUED
        assert OutboxEntry.objects.filter(notice=notice, done_at=None).exists()
        assert AuditEvent.objects.filter(action=audit.Action.NOTICE_ISSUED, data__notice=notice.reference).exists()

        # and: the hook called again finds it and issues nothing new
        again = exchange.on_partner_report_filed(Report.objects.get(pk=report.pk))
        assert again is not None and again.pk == notice.pk
        assert status_updates(hotline_gb) == [notice]

    def test_a_retried_report_is_acknowledged_by_the_same_notice(self, hotline_gb):
        report = referral_from(hotline_gb, "https://a.example.nl/1")
        [notice] = status_updates(hotline_gb)
        retried = referral_from(hotline_gb, "https://a.example.nl/1")
        assert retried.pk == report.pk
        assert exchange.on_partner_report_filed(retried) == notice
        assert len(status_updates(hotline_gb)) == 1

    def test_reports_from_partners_without_ntd_or_without_a_notice_reference_get_nothing(self, hotline_gb):
        plain = Partner.objects.create(name="Hotline FR", kind=Partner.Kind.HOTLINE, country="FR")
        assert exchange.on_partner_report_filed(referral_from(plain, "https://a.example.nl/1")) is None
        assert exchange.on_partner_report_filed(
            referral_from(hotline_gb, "https://b.example.nl/2", reference="their-ticket-17")) is None
        assert exchange.on_partner_report_filed(
            referral_from(hotline_gb, "https://c.example.nl/3", reference="")) is None
        public = report_url("https://d.example.nl/4").reports.get()
        assert exchange.on_partner_report_filed(public) is None
        assert Notice.objects.count() == 0

    def test_an_inactive_partner_gets_nothing(self, hotline_gb):
        report = referral_from(hotline_gb, "https://a.example.nl/1")
        Partner.objects.filter(pk=hotline_gb.pk).update(is_active=False)
        assert exchange.on_partner_report_filed(Report.objects.select_related("partner").get(pk=report.pk)) is None


@pytest.mark.django_db(transaction=True)
def test_two_hooks_at_once_for_one_referral_issue_one_acknowledgement(hotline_gb, task_queue):
    # filed while the partner was not yet known to run ntd, so intake's own call of the hook issued nothing
    hotline_gb.runs_ntd = False
    hotline_gb.save(update_fields=["runs_ntd"])
    report = referral_from(hotline_gb, "https://a.example.nl/1")
    Partner.objects.filter(pk=hotline_gb.pk).update(runs_ntd=True)
    assert status_updates(hotline_gb) == []

    first, second = run_at_once([lambda: exchange.on_partner_report_filed(Report.objects.get(pk=report.pk))] * 2)

    assert first.pk == second.pk
    assert len(status_updates(hotline_gb)) == 1


@pytest.mark.django_db(transaction=True)
def test_a_referral_filed_through_the_partner_api_is_acknowledged(hotline_gb, task_queue):
    from django.test import Client

    from takedown.models import PartnerAPIKey

    _, key = PartnerAPIKey.objects.create_key(name="Hotline GB's ntd", partner=hotline_gb)
    body = {"partner_reference": THEIR_NOTICE, "urls": ["https://a.example.nl/1"], "material_kind": "images"}

    for expected in (201, 200):  # the first filing, then a retry of it
        response = Client().post("/api/v1/reports/", body, content_type="application/json", HTTP_X_API_KEY=key)
        assert response.status_code == expected, response.content

    [notice] = status_updates(hotline_gb)
    assert notice.payload == {"path": f"/api/v1/notices/{THEIR_NOTICE}/acknowledge", "body": {}}
    assert [case.url for case in notice.cases.all()] == ["https://a.example.nl/1"]


@pytest.mark.django_db
class TestReportingRemovalBack:
    def test_removal_goes_back_once_every_case_of_the_referral_is_removed(self, hotline_gb):
        report = referral_from(hotline_gb, "https://a.example.nl/1", "https://b.example.nl/2")
        first, second = report.cases.order_by("pk")

        removed(first)
        assert exchange.on_case_removed(Case.objects.get(pk=first.pk)) == []

        removed(second)
        [notice] = exchange.on_case_removed(Case.objects.get(pk=second.pk))
        assert notice.payload == {"path": f"/api/v1/notices/{THEIR_NOTICE}/removed", "body": {}}
        assert (notice.kind, notice.channel) == (NoticeKind.STATUS_UPDATE, Notice.Channel.NTD)
        assert set(notice.cases.all()) == {first, second}

        assert exchange.on_case_removed(Case.objects.get(pk=first.pk)) == [notice]
        assert [n.payload["path"] for n in status_updates(hotline_gb)] == [
            f"/api/v1/notices/{THEIR_NOTICE}/acknowledge", f"/api/v1/notices/{THEIR_NOTICE}/removed"]

    def test_a_case_closed_as_removed_counts_as_removed(self, hotline_gb):
        report = referral_from(hotline_gb, "https://a.example.nl/1")
        [case] = report.cases.all()
        removed(case)
        with transaction.atomic():
            locked = life_cycle.lock_case(case.pk)
            life_cycle.apply_transition(locked, S.CLOSED, actor=None, action=audit.Action.CASE_CLOSED,
                                        close_reason="Removed", closed_at=locked.last_reported_at)
        [notice] = exchange.on_case_removed(Case.objects.get(pk=case.pk))
        assert notice.payload["path"].endswith("/removed")

    def test_each_referral_of_a_removed_case_hears_of_it(self, hotline_gb):
        other = Partner.objects.create(name="Hotline DE", kind=Partner.Kind.HOTLINE, country="DE", runs_ntd=True,
                                       ntd_url="https://ntd.hotline-de.example")
        referral_from(hotline_gb, "https://a.example.nl/1")
        referral_from(other, "https://a.example.nl/1", reference="N-AAAA-BBBB")
        [case] = Case.objects.all()
        removed(case)

        notices = exchange.on_case_removed(Case.objects.get(pk=case.pk))

        assert {(n.partner_id, n.payload["path"]) for n in notices} == {
            (hotline_gb.pk, f"/api/v1/notices/{THEIR_NOTICE}/removed"),
            (other.pk, "/api/v1/notices/N-AAAA-BBBB/removed")}

    def test_a_case_from_a_partner_without_ntd_reports_nothing_back(self, hotline_gb):
        plain = Partner.objects.create(name="Hotline FR", kind=Partner.Kind.HOTLINE, country="FR")
        referral_from(plain, "https://a.example.nl/1")
        [case] = Case.objects.all()
        removed(case)
        assert exchange.on_case_removed(Case.objects.get(pk=case.pk)) == []
        assert not Notice.objects.filter(partner=plain).exists()


# --- two ntd instances: A (the live server, GB) refers a case to B (a second deployment, NL) and hears back ------

B_SETUP = """
import json
from guardian.shortcuts import assign_perm
from ntd import roles
from ntd.models import User
from reports.models import Queue
from takedown import secrets
from takedown.models import HostingNetwork, Partner, PartnerAPIKey, PartnerContact

given = json.loads({given!r})
gb = Partner.objects.create(name="Hotline GB", kind="hotline", country="GB", inhope_member=True, runs_ntd=True,
                            ntd_url=given["a_url"])
secrets.seal_ntd_api_key(gb, given["key_at_a"])
gb.save()
_, key = PartnerAPIKey.objects.create_key(name="Hotline GB's ntd", partner=gb)
host = Partner.objects.create(name="Example Hosting BV", kind="hosting_provider", country="NL")
PartnerContact.objects.create(partner=host, channel="email", email="abuse@hosting.example.nl", language="en")
HostingNetwork.objects.create(asn=given["asn"], name="EXAMPLE-NL", partner=host)
police = Partner.objects.create(name="Politie", kind="law_enforcement", country="NL")
PartnerContact.objects.create(partner=police, channel="email", email="meldingen@politie.example.nl", language="en")
analyst = User.objects.create_user(username="analyst-b", email="analyst-b@hotline-nl.example")
roles.assign_role(analyst, roles.ANALYST)
assign_perm("reports.work_queue", analyst, Queue.objects.get(pk=Queue.objects.default_id()))
print(json.dumps({{"key": key}}))
"""

B_STATE = """
import json
from reports.models import Case, Report
from takedown.models import Notice, SupervisorTask

reports = [{"reference": r.reference, "partner": r.partner.name if r.partner else "", "channel": r.channel,
            "partner_reference": r.partner_reference, "description": r.description,
            "material_kind": r.material_kind, "child_at_risk": r.child_at_risk,
            "cases": [{"reference": c.reference, "url": c.url, "status": c.status, "close_reason": c.close_reason}
                      for c in r.cases.order_by("pk")]}
           for r in Report.objects.select_related("partner").order_by("pk")]
notices = [{"reference": n.reference, "partner": n.partner.name, "kind": n.kind, "channel": n.channel,
            "state": n.state, "attempts": n.attempts, "last_error": n.last_error,
            "payload_path": n.payload.get("path", ""),
            "cases": [c.reference for c in n.cases.order_by("pk")]}
           for n in Notice.objects.select_related("partner").order_by("pk")]
tasks = [t.detail for t in SupervisorTask.objects.order_by("pk")]
print(json.dumps({"reports": reports, "notices": notices, "tasks": tasks}))
"""

B_CONFIRM = """
import json
from dataclasses import dataclass
from ntd.models import User
from reports import services
from reports.hosting import RESOLVED, AddressInfo, Trace
from reports.models import Case, ClassificationOption, PolicyClause, Verdict
from reports.services import AssessmentInput

given = json.loads({given!r})
analyst = User.objects.get(username="analyst-b")
case = Case.objects.get(reference=given["case"])
services.record_trace(case.pk, Trace(host=case.host, outcome=RESOLVED, detail="", cname_chain=(), source="test",
                                     data_date="", addresses=(AddressInfo("192.0.2.20", 4, "NL", given["asn"],
                                                                          "Example Hosting BV", ""),)))
services.claim_case(case.pk, actor=analyst)
services.assess_case(case.pk, actor=analyst, assessment=AssessmentInput(
    verdict=Verdict.objects.get(code="illegal_baseline"),
    media_type=ClassificationOption.objects.get(field="media_type", code="images"),
    age_group=ClassificationOption.objects.get(field="age_group", code="prepubescent"),
    clause=PolicyClause.objects.get(jurisdiction="INT", code="BL-1")))
print(json.dumps({{"status": Case.objects.get(pk=case.pk).status}}))
"""

B_REMOVED = """
import json
from ntd.models import User
from reports.models import Case
from takedown import responses

given = json.loads({given!r})
analyst = User.objects.get(username="analyst-b")
case = Case.objects.get(reference=given["case"])
responses.record_removal_verified(case, actor=analyst)
responses.confirm_removal(case, actor=analyst)
case.refresh_from_db()
print(json.dumps({{"status": case.status, "close_reason": case.close_reason}}))
"""


class Exchange:
    """The two instances seen from the test: A's database directly, B's through `manage.py shell`."""

    def __init__(self, b: Any) -> None:
        self.b = b

    def b_state(self) -> dict[str, Any]:
        return self.b.run_json(B_STATE)

    def a_state(self) -> dict[str, Any]:
        from takedown.models import SupervisorTask

        notices = [{"reference": n.reference, "partner": n.partner.name, "kind": n.kind, "channel": n.channel,
                    "state": n.state, "attempts": n.attempts, "last_error": n.last_error,
                    "recipient_reference": n.recipient_reference, "acknowledged_at": str(n.acknowledged_at),
                    "cases": [(c.reference, c.status) for c in n.cases.order_by("pk")]}
                   for n in Notice.objects.select_related("partner").order_by("pk")]
        return {"notices": notices, "tasks": [t.detail for t in SupervisorTask.objects.order_by("pk")],
                "events": list(AuditEvent.objects.filter(action__startswith="notice.").order_by("pk")
                               .values_list("action", "data"))}

    def explain(self, headline: str) -> str:
        """The headline, and what each instance holds: its notices (with their last errors) and B's logs."""
        try:
            b_state: Any = self.b_state()
        except AssertionError as error:
            b_state = str(error)
        return (f"{headline}\n"
                f"--- instance A (the live server) ---\n{json.dumps(self.a_state(), indent=1, default=str)}\n"
                f"--- instance B ---\n{json.dumps(b_state, indent=1, default=str)}\n{self.b.log_tail()}")

    def eventually(self, check: Callable[[], Any], what: str, *, timeout: float = 60, every: float = 0.3) -> Any:
        import time

        deadline = time.monotonic() + timeout
        while True:
            self.b.alive()
            found = check()
            if found:
                return found
            if time.monotonic() > deadline:
                pytest.fail(self.explain(f"{what} did not happen within {timeout:g} s."))
            time.sleep(every)


def test_a_case_referred_from_one_ntd_to_another_comes_back_acknowledged_and_removed(
        second_instance, live_server, celery_worker, settings, scheme, analyst):  # noqa: F811
    from takedown import rendering
    from takedown.models import PartnerAPIKey
    from takedown.secrets import seal_ntd_api_key

    settings.NOTICE_GROUPING_SECONDS = 0
    settings.NOTICE_ALLOW_HTTP = True
    settings.NOTICE_RETRY_SECONDS = 1
    settings.NTD_PUBLIC_URL = live_server.url
    b = second_instance
    exchange_view = Exchange(b)
    hotline_routing()
    rendering.install_default_templates()  # a transactional test before this one may have emptied the table

    # given: each hotline is a partner of the other that runs ntd, with the API key the other issued it
    hotline_nl = Partner.objects.create(name="Hotline NL", kind=Partner.Kind.HOTLINE, country="NL",
                                        inhope_member=True, runs_ntd=True, ntd_url=b.url)
    _, key_at_a = PartnerAPIKey.objects.create_key(name="Hotline NL's ntd", partner=hotline_nl)
    given = json.dumps({"a_url": live_server.url, "key_at_a": key_at_a, "asn": NL_AS})
    key_at_b = b.run_json(B_SETUP.format(given=given))["key"]
    seal_ntd_api_key(hotline_nl, key_at_b)
    hotline_nl.save()

    # when: A confirms a case hosted in NL
    case = report_url("https://gallery.example.nl/set/42")
    trace_to(case, "NL")
    confirm(case, analyst, scheme)
    referral = referral_to(hotline_nl)
    assert referral.channel == Notice.Channel.NTD

    # then: A's worker files it in B as a report from Hotline GB, with A's notice reference as theirs
    def referral_delivered() -> Notice | None:
        notice = Notice.objects.get(pk=referral.pk)
        return notice if notice.state != Notice.State.QUEUED else None

    referral = exchange_view.eventually(referral_delivered, "The referral's delivery to B")
    if referral.state == Notice.State.FAILED or not referral.recipient_reference:
        pytest.fail(exchange_view.explain(f"The referral was not filed in B: {referral.state}, "
                                          f"{referral.last_error!r}"))
    b_state = b.run_json(B_STATE)
    [report] = [r for r in b_state["reports"] if r["partner"] == "Hotline GB"]
    assert report["channel"] == "api" and report["partner_reference"] == referral.reference
    assert report["reference"] == referral.recipient_reference
    assert report["material_kind"] == "images" and report["child_at_risk"] is False
    assert f"our notice {referral.reference}" in report["description"]
    [b_case] = report["cases"]
    assert b_case["url"] == case.url and b_case["status"] == "received"
    assert Case.objects.get(pk=case.pk).status == S.AWAITING_REMOVAL

    # and: B acknowledges it back through A's API
    exchange_view.eventually(lambda: Notice.objects.get(pk=referral.pk).acknowledged_at,
                             "B's acknowledgement reaching A")
    assert Notice.objects.get(pk=referral.pk).state == Notice.State.ACKNOWLEDGED

    # when: B confirms the case, its host removes the material, and B's analyst confirms the removal
    assert b.run_json(B_CONFIRM.format(given=json.dumps({"case": b_case["reference"], "asn": NL_AS})))[
        "status"] == "actioning"

    def b_case_status() -> str:
        state = b.run_json(B_STATE)
        return next(c["status"] for r in state["reports"] for c in r["cases"] if c["reference"] == b_case["reference"])

    exchange_view.eventually(lambda: b_case_status() == "awaiting_removal", "B's takedown notice going out",
                             every=1)
    removed_in_b = b.run_json(B_REMOVED.format(given=json.dumps({"case": b_case["reference"]})))
    assert removed_in_b == {"status": "closed", "close_reason": "Removed"}

    # then: B tells A, and A's case waits for A's analyst to confirm the removal
    exchange_view.eventually(lambda: Case.objects.get(pk=case.pk).status == S.REMOVAL_OBSERVED,
                             "B's removal report reaching A")
    referral = Notice.objects.get(pk=referral.pk)
    assert referral.state == Notice.State.ACTIONED and referral.actioned_at is not None
    observed = AuditEvent.objects.get(case_id=case.pk, action=audit.Action.CASE_REMOVAL_OBSERVED)
    assert observed.actor_type == "partner" and observed.data["notice"] == referral.reference

    # and: B sent exactly one acknowledgement and one removal report, both delivered
    updates = [n for n in b.run_json(B_STATE)["notices"] if n["kind"] == "status_update"]
    assert sorted((n["payload_path"], n["state"]) for n in updates) == [
        (f"/api/v1/notices/{referral.reference}/acknowledge", "sent"),
        (f"/api/v1/notices/{referral.reference}/removed", "sent")]
