"""Journey: from confirmed cases to notices and back.

An administrator adds, through the admin pages, a hosting provider (an e-mail contact and the network it answers
for) and a partner hotline in NL (a webhook contact on a loopback receiver; the admin shows the signing secret
once, and the receiver checks every signature with it). An analyst confirms three cases hosted on that network in
our own country and one hosted in NL, on the case pages. The real Celery worker delivers, after the grouping
window: exactly one e-mail to the host naming the three URLs, and one signed referral to the hotline. The host
opens the signed "removed" link from the e-mail and confirms; the three cases wait for an analyst to confirm the
removal, which the case page shows, and the analyst confirms one.
"""

from __future__ import annotations

import importlib
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from django.apps import apps
from django.conf import settings
from playwright.sync_api import Browser, Page, expect

from ntd.roles import ADMIN, ANALYST
from reports import intake
from reports.models import Case, Queue
from reports.normalise import normalise
from takedown import rendering
from takedown.models import HostingNetwork, Notice, NoticeKind, Partner, PartnerContact
from tests.journeys.conftest import Console
from tests.journeys.test_review import assess_illegal_under_the_baseline, signed_in
from tests.journeys.test_staff_login import assert_quiet
from tests.mailbox import Mailbox
from tests.reports.factories import grant
from tests.takedown.webhook_receiver import Receiver, webhook_receiver_fixture  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser

HOST_ADDRESS = "abuse@hosting.example"
ASN = 64512
HOSTED_HERE = ["https://img.hosting.example/albums/7/1", "https://img.hosting.example/albums/7/2",
               "https://img.hosting.example/albums/9/5"]
HOSTED_IN_NL = "https://files.example.nl/share/8841"
GROUPING_SECONDS = 12  # long enough for the analyst to confirm three cases (about 5 s), short enough to wait for


@pytest.fixture
def notice_settings(settings: Any, live_server: Any) -> None:
    settings.NOTICE_GROUPING_SECONDS = GROUPING_SECONDS
    settings.NOTICE_ALLOW_HTTP = True  # the hotline's webhook is on http://127.0.0.1
    settings.NOTICE_RETRY_SECONDS = 1.0
    settings.NTD_PUBLIC_URL = live_server.url  # the links in the notices lead to this server


@pytest.fixture
def shipped_rules_and_templates(transactional_db: None) -> None:
    """The routing rules and notice templates the migrations seed (an earlier transactional test emptied them)."""
    importlib.import_module("takedown.migrations.0004_default_routing_rules").add_default_rules(apps, None)
    rendering.install_default_templates()


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := condition():
            return found
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout:g} s: {what}")


def to_host(mailbox: Mailbox) -> list[EmailMessage]:
    return [m for m in mailbox.messages() if HOST_ADDRESS in m.get("To", "")]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def add_hosting_provider(page: Page) -> None:
    """The partner with an e-mail contact, then the network it answers for (the partner chosen by autocomplete)."""
    page.goto("/admin/takedown/partner/add/")
    page.locator("#id_name").fill("Example Hosting Ltd")
    page.locator("#id_kind").select_option(label="Hosting provider")
    page.locator("#id_country").fill(settings.NTD_COUNTRY)
    page.get_by_role("button", name="Add another Partner contact").click()
    page.locator('[name="contacts-0-channel"]').select_option(label="E-mail")
    page.locator('[name="contacts-0-email"]').fill(HOST_ADDRESS)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")

    page.goto("/admin/takedown/hostingnetwork/add/")
    page.locator("#id_asn").fill(str(ASN))
    page.locator("#id_name").fill("EXAMPLE-HOSTING-AS")
    page.locator(".field-partner .select2-selection").click()
    page.locator(".select2-search__field").fill("Example Hosting")
    page.locator(".select2-results__option", has_text="Example Hosting Ltd").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator(".messagelist")).to_contain_text("was added successfully")


def add_partner_hotline(page: Page, webhook_url: str) -> str:
    """The NL hotline with a webhook contact; the signing secret the admin shows once, read off the page."""
    page.goto("/admin/takedown/partner/add/")
    page.locator("#id_name").fill("Meldpunt NL")
    page.locator("#id_kind").select_option(label="Hotline")
    page.locator("#id_country").fill("NL")
    page.get_by_role("button", name="Add another Partner contact").click()
    page.locator('[name="contacts-0-channel"]').select_option(label="Webhook")
    page.locator('[name="contacts-0-webhook_url"]').fill(webhook_url)
    page.get_by_role("button", name="Save", exact=True).click()
    shown = page.locator(".messagelist").filter(has_text="signing secret")
    expect(shown).to_contain_text("it is not shown again")
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", shown.inner_text())
    assert secret is not None, shown.inner_text()
    return secret.group(0)


def reported(url: str, *, country: str, asn: int | None) -> Case:
    """A public report of `url`, traced to `country` and `asn` (as the hosting trace records it)."""
    filed = intake.file_public_report(urls=[intake.ReportedURL(url, normalise(url))],
                                      details=intake.ReportDetails(material_kind="images"), contact_email=None)
    case = Case.objects.get(pk=filed.outcomes[0].case_id)
    Case.objects.filter(pk=case.pk).update(hosting_country=country, hosting_asn=asn)
    return case


def confirm(page: Page, case: Case, clause: Any) -> None:
    page.goto(f"/cases/{case.reference}/")
    page.get_by_role("button", name="Claim this case").click()
    expect(page.locator("#case-status")).to_have_text("In review")
    assess_illegal_under_the_baseline(page, clause)
    expect(page.locator("#case-status")).to_have_text("Actioning")


def test_confirmed_cases_go_to_the_host_in_one_notice_and_to_the_hotline_by_signed_webhook(
        browser: Browser, live_server: Any, console: Console, make_staff: Any, scheme: Any, celery_worker: Any,
        mailbox: Mailbox, webhook_receiver: Receiver, notice_settings: None, shipped_rules_and_templates: None,
) -> None:
    # given: an administrator configures the host and the hotline in the admin
    admin = signed_in(browser, live_server, console, make_staff(ADMIN))
    add_hosting_provider(admin)
    webhook_receiver.secret = add_partner_hotline(admin, webhook_receiver.url("/ntd/referrals"))
    host = Partner.objects.get(name="Example Hosting Ltd")
    hotline = Partner.objects.get(name="Meldpunt NL")
    assert HostingNetwork.objects.get(asn=ASN).partner == host
    assert PartnerContact.objects.get(partner=hotline).webhook_secret_sealed is not None  # stored sealed only
    admin.reload()
    assert webhook_receiver.secret not in admin.content()  # shown once, and never again

    # and: four reported URLs, three on the host's network here and one in NL; an analyst of their queue
    here = [reported(url, country=settings.NTD_COUNTRY, asn=ASN) for url in HOSTED_HERE]
    abroad = reported(HOSTED_IN_NL, country="NL", asn=64999)
    analyst = make_staff(ANALYST, username="maria")
    grant(analyst.user, Queue.objects.get(pk=here[0].queue_id))

    # when: the analyst confirms the four, one after the other, on the case pages
    page = signed_in(browser, live_server, console, analyst)
    clause = scheme.clause("INT", "BL-1")
    started = time.monotonic()
    for case in here:
        confirm(page, case, clause)
    took = time.monotonic() - started
    assert took < GROUPING_SECONDS, f"the analyst took {took:.1f} s, longer than the grouping window"
    confirm(page, abroad, clause)

    # then: the case page shows the notice waiting for more URLs of the same host
    page.goto(f"/cases/{here[0].reference}/")
    notices = page.locator("#notices")
    expect(notices).to_contain_text("Example Hosting Ltd")
    expect(notices).to_contain_text("Takedown notice")

    # and: after the grouping window, the worker delivers one e-mail to the host with the three URLs
    wait_until(lambda: to_host(mailbox), "an e-mail to the host")
    notice = Notice.objects.get(partner=host)
    assert notice.kind == NoticeKind.TAKEDOWN
    assert sorted(notice.cases.values_list("url", flat=True)) == sorted(c.url for c in here)
    wait_until(lambda: Notice.objects.filter(pk=notice.pk, state=Notice.State.SENT).exists(), "the notice sent")
    (message,) = to_host(mailbox)
    body = text_of(message)
    for case in here:
        assert case.url in body and case.reference in body
    assert abroad.url not in body
    assert notice.reference in message["Subject"]
    assert message["Message-ID"] == notice.message_id
    assert analyst.user.username not in body  # analysts appear by pseudonym only

    # and: one signed referral reached the hotline's webhook, and it verifies with the secret the admin showed
    (referral,) = webhook_receiver.wait_for(1)
    assert referral.verified is True, referral.error
    assert referral.path == "/ntd/referrals"
    payload = referral.json()
    assert HOSTED_IN_NL in str(payload) and not any(url in str(payload) for url in HOSTED_HERE)
    referral_notice = Notice.objects.get(partner=hotline)
    assert referral_notice.kind == NoticeKind.HOTLINE_REFERRAL
    assert referral.webhook_id == str(referral_notice.idempotency_key)
    wait_until(lambda: Notice.objects.filter(pk=referral_notice.pk, state=Notice.State.SENT).exists(),
               "the referral marked sent")
    for case in [*here, abroad]:
        case.refresh_from_db()
        assert case.status == Case.Status.AWAITING_REMOVAL, case

    # when: the host opens the signed "removed" link from the e-mail, in a browser of its own, and confirms
    link = re.search(r"https?://\S+/n/removed/\S+/", body)
    assert link is not None and link.group(0).startswith(live_server.url), body
    host_context = browser.new_context()
    host_context.set_default_timeout(5_000)
    host_page = host_context.new_page()
    host_page.on("console", console.record)
    host_page.on("pageerror", lambda error: console.errors.append(str(error)))
    host_page.goto(link.group(0))
    for case in here:
        expect(host_page.get_by_label(case.url, exact=True)).to_be_checked()
    host_page.get_by_role("button", name="Report these as removed").click()
    expect(host_page.get_by_text("we have recorded the removal")).to_be_visible()
    host_context.close()

    # then: the three cases wait for an analyst to confirm the removal, and the case page says so
    for case in here:
        case.refresh_from_db()
        assert case.status == Case.Status.REMOVAL_OBSERVED, case
    abroad.refresh_from_db()
    assert abroad.status == Case.Status.AWAITING_REMOVAL
    notice.refresh_from_db()
    assert notice.state == Notice.State.ACTIONED
    page.goto(f"/cases/{here[1].reference}/")
    expect(page.locator("#case-status")).to_have_text("Removal observed")
    row = page.locator(f"#notice-{notice.reference}")
    expect(row).to_contain_text("Removal reported")
    expect(row).to_contain_text("after the notice")

    # and: the analyst confirms one removal; that case is closed
    page.get_by_role("button", name="Confirm removal").click()
    expect(page.locator("#case-status")).to_have_text("Closed")
    expect(page.get_by_role("status")).to_contain_text("Removal confirmed")

    # and: the staff home lists the two removals still to confirm, with links to their cases
    page.goto("/")
    dashboard = page.locator("#notice-dashboard")
    expect(dashboard).to_contain_text("Removal to confirm: 2")
    for case in (here[0], here[2]):
        expect(dashboard.locator(".nd-removal").get_by_role("link", name=case.reference)).to_have_attribute(
            "href", f"/cases/{case.reference}/#notices")

    # and: nothing was sent twice
    assert len(to_host(mailbox)) == 1
    assert len(webhook_receiver.received()) == 1
    assert_quiet(console)
