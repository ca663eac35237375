"""Journey: a member of the public reports web addresses, anonymously and then with an e-mail address.

Everything is done with the keyboard, as someone who cannot use a mouse would. The acknowledgement goes the
whole real way: the view enqueues the task after commit, a Celery worker (a thread of this process) takes it
from Redis and sends the mail to an SMTP server on loopback (aiosmtpd), and the reporter follows the link in
the mail to check the status. Screenshots go to /tmp/ntd-shots/ to be looked at, not compared.
"""

from __future__ import annotations

import email
import email.policy
import logging
import os
import queue
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections
from playwright.sync_api import Page, expect

from ntd.celery import app as celery_app
from reports.models import Case, Report, ReportURL
from tests.journeys.conftest import Console

# Playwright's sync API runs an event loop in this thread; the ORM calls below would otherwise be refused.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path("/tmp/ntd-shots")
REFERENCE = re.compile(r"R-[0-9A-Z]{4}-[0-9A-Z]{4}")


# --- A real mail server and a real worker -------------------------------------------------------------------


@dataclass
class Mailbox:
    """Messages that reached the SMTP server on loopback."""

    port: int
    arrived: queue.Queue[bytes] = field(default_factory=queue.Queue)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # the name aiosmtpd calls
        self.arrived.put(envelope.original_content)
        return "250 Message accepted for delivery"

    def next_message(self, timeout: float = 30) -> EmailMessage:
        try:
            raw = self.arrived.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no mail arrived within {timeout} seconds") from None
        return email.message_from_bytes(raw, policy=email.policy.default)  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def mailbox(settings: Any, live_server: Any) -> Iterator[Mailbox]:
    """An SMTP server on a free loopback port, and ntd's default mailer pointed at it.

    Settings are process-wide: the live server's thread and the worker's thread send through it too.
    """
    box = Mailbox(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend",
                                    "OPTIONS": {"host": "127.0.0.1", "port": box.port, "timeout": 10}}}
    settings.NTD_PUBLIC_URL = live_server.url  # so the link in the mail leads to this server
    try:
        yield box
    finally:
        controller.stop()


def _close_connections(**_: Any) -> None:
    connections.close_all()  # in the worker's thread: leave no connection open to the test database


@pytest.fixture
def task_worker(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A Celery worker in a thread of this process, on the test run's Redis, consuming a queue of its own: it
    never takes a message another test (or an interrupted run) left on the broker."""
    name = f"ntd-journey-{uuid.uuid4().hex[:12]}"
    monkeypatch.setitem(celery_app.conf, "task_default_queue", name)  # where .delay() sends without a route
    root_level = logging.getLogger().level  # the worker sets the root logger's level to its own
    task_postrun.connect(_close_connections, weak=False)
    try:
        with start_worker(celery_app, queues=[name], perform_ping_check=False, shutdown_timeout=30,
                          loglevel="WARNING"):
            yield
    finally:
        task_postrun.disconnect(_close_connections)
        logging.getLogger().setLevel(root_level)
        with celery_app.connection_for_write() as connection:
            connection.default_channel.queue_delete(name)


@pytest.fixture(autouse=True)
def _no_wait_before_sending(settings: Any) -> None:
    """A person takes seconds to fill the form; this one takes less than the minimum ntd waits for."""
    settings.INTAKE_MIN_FORM_SECONDS = 0


# --- The keyboard -------------------------------------------------------------------------------------------


def _focused(page: Page) -> str:
    return page.evaluate("() => { const e = document.activeElement; return e.id || e.name || e.tagName; }")


def tab_to(page: Page, selector: str, limit: int = 30) -> list[str]:
    """Press Tab until `selector` has the focus; return what had it on the way."""
    target = page.locator(selector)
    passed: list[str] = []
    for _ in range(limit):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return passed
        passed.append(_focused(page))
    raise AssertionError(f"Tab never reached {selector}; the focus went {passed}")


def file_report(page: Page, urls: list[str], *, email_address: str | None = None,
                screenshot: str | None = None) -> str:
    """Fill the public form with the keyboard alone and send it; return the reference shown."""
    page.goto("/report/")
    page.keyboard.press("Tab")
    assert page.locator(".skip-link").evaluate("e => e === document.activeElement"), "skip link is not first"
    passed = tab_to(page, "#id_urls")
    outline = page.locator("#id_urls").evaluate("e => getComputedStyle(e).outlineStyle")
    assert outline != "none", "the focused field shows no focus indicator"
    for number, url in enumerate(urls):
        if number:
            page.keyboard.press("Enter")
        page.keyboard.type(url)
    passed += tab_to(page, "#id_material_kind_0")
    page.keyboard.press("Space")
    passed += tab_to(page, "#id_encountered_via")
    page.keyboard.type("Web")  # type-ahead picks "Website"
    expect(page.locator("#id_encountered_via")).to_have_value("website")
    passed += tab_to(page, "#id_contact_0")
    if email_address:
        page.keyboard.press("ArrowDown")  # arrow keys move the choice within a radio group
        expect(page.locator("#id_contact_1")).to_be_checked()
        passed += tab_to(page, "#id_email")
        page.keyboard.type(email_address)
    passed += tab_to(page, "#report-form button[type=submit]")
    assert "id_website" not in passed and "website" not in passed, "the honeypot field took the focus"
    if screenshot:
        page.screenshot(path=SHOTS / screenshot, full_page=True)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/report/received/\?t="))
    reference = page.locator("#reference").inner_text()
    assert REFERENCE.fullmatch(reference), reference
    return reference


def assert_every_control_labelled(page: Page) -> None:
    unlabelled = page.evaluate("""() => [...document.querySelectorAll(
        '#report-form input:not([type=hidden]), #report-form textarea, #report-form select')]
        .filter(e => ![...e.labels].some(label => label.textContent.trim())).map(e => e.id || e.name)""")
    assert unlabelled == []


def assert_quiet(console: Console) -> None:
    assert console.csp_violations() == [], console.messages
    assert console.errors == [], console.errors


# --- The journey --------------------------------------------------------------------------------------------


def test_public_reports_anonymously_then_identified_and_checks_the_status(
    transactional_db: None, page: Page, console: Console, mailbox: Mailbox, task_worker: None,
) -> None:
    # `transactional_db` named here, not only through the live server: the test database is then created
    # before the journeys' module-wide pgtrigger.ignore(), inside which its migrations cannot run.
    SHOTS.mkdir(parents=True, exist_ok=True)

    # given the public form, which says what matters before anything is typed
    page.goto("/report/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Report child sexual abuse material")
    expect(page.locator(".emergency")).to_contain_text("112")
    expect(page.get_by_text("Never send images or videos")).to_be_visible()
    assert_every_control_labelled(page)

    # when a member of the public reports three web addresses anonymously
    first = file_report(page, ["https://a.example/1", "hxxp://b[.]example/2", "c.example/3"],
                        screenshot="report-form.png")

    # then the reference is shown, and three cases were opened
    expect(page.get_by_role("heading", level=1)).to_have_text("Thank you: your report was received")
    expect(page.get_by_text("You reported anonymously")).to_be_visible()
    page.screenshot(path=SHOTS / "report-received.png", full_page=True)
    report = Report.objects.get(reference=first)
    assert report.contact_sealed is None
    assert sorted(Case.objects.filter(report_urls__report=report).values_list("url", flat=True)) == [
        "http://b.example/2", "http://c.example/3", "https://a.example/1"]

    # when a second report names one of them spelled differently
    second = file_report(page, ["HTTPS://A.Example:443/1#seen-again"])

    # then it joins the open case rather than opening a fourth
    joined = ReportURL.objects.select_related("case").get(report__reference=second)
    assert joined.opened_case is False and joined.case.url == "https://a.example/1"
    assert joined.case.report_count == 2 and Case.objects.count() == 3

    # when an identified reporter reports a web address with an e-mail address for the acknowledgement
    third = file_report(page, ["https://d.example/4"], email_address="reporter@example.org")
    expect(page.get_by_text("We have sent an acknowledgement")).to_be_visible()

    # then the acknowledgement arrives by SMTP with the reference and a status code
    mail = mailbox.next_message()
    assert mail["To"] == "reporter@example.org" and third in mail["Subject"]
    body = mail.get_body().get_content()  # type: ignore[union-attr]
    assert f"Your reference: {third}" in body
    code = re.search(r"Your status code: (\S+)", body).group(1)  # type: ignore[union-attr]
    status_url = re.search(r"(http://\S+/report/status/)", body).group(1)  # type: ignore[union-attr]

    # when the reporter follows the link and types the reference and the code
    page.goto(status_url)
    tab_to(page, "#id_reference")
    page.keyboard.type(third)
    tab_to(page, "#id_code")
    page.keyboard.type(code)
    page.keyboard.press("Enter")

    # then the status shows, and nothing more
    expect(page.locator("#status-result")).to_have_text("Received: waiting to be assessed.")
    assert Report.objects.get(reference=third).acknowledged_at is not None
    assert mailbox.arrived.empty()  # one acknowledgement, sent once
    assert_quiet(console)
