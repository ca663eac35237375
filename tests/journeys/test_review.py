"""Journey: an analyst takes the next case and assesses it, a second analyst confirms it (four eyes), and an
analyst without the queue cannot even see that the case exists."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from ntd.roles import ANALYST
from reports import intake
from reports.models import Case, Queue
from reports.normalise import normalise
from tests.journeys.conftest import Console
from tests.journeys.test_staff_login import assert_quiet, enter_password, fresh_code
from tests.reports.factories import grant

pytestmark = pytest.mark.browser

URL = "https://gallery.example/albums/4471?page=2"


def signed_in(browser: Browser, live_server: Any, console: Console, staff: Any) -> Page:
    """A browser context of its own for one member of staff, signed in with password and code."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(5_000)
    page = context.new_page()
    page.on("console", console.record)
    page.on("pageerror", lambda error: console.errors.append(str(error)))
    page.goto("/accounts/login/")
    enter_password(page, staff.user.username)
    page.locator('input[name="code"]').fill(fresh_code(staff.totp_secret))
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Home")
    return page


def assess_illegal_under_the_baseline(page: Page, clause: Any) -> None:
    page.get_by_label("Illegal under the international baseline").check()
    page.get_by_label("Clause or law relied on").select_option(label=f"BL-1 · {clause.title}")
    page.get_by_label("Media type").select_option(label="Images")
    page.get_by_label("Apparent age group").select_option(label="Pre-pubescent")
    page.get_by_label("Site type").select_option(label="Image host")
    page.get_by_label("Rationale").fill("Matches the baseline: real child, sexual act.")
    page.get_by_role("button", name="Record assessment").click()


def test_next_case_assess_and_confirm_with_four_eyes(browser: Browser, live_server: Any, console: Console,
                                                     make_staff: Any, scheme: Any) -> None:
    # given: four eyes on the baseline verdict, a reported URL in the default queue, two analysts granted it
    verdict = scheme.verdict("illegal_baseline")
    verdict.four_eyes = True
    verdict.save()
    intake.file_public_report(urls=[intake.ReportedURL(URL, normalise(URL))],
                              details=intake.ReportDetails(material_kind="images"), contact_email=None)
    case = Case.objects.get()
    queue = Queue.objects.get(pk=case.queue_id)
    first, second, outsider = make_staff(ANALYST), make_staff(ANALYST), make_staff(ANALYST)
    grant(first.user, queue)
    grant(second.user, queue)

    # the first analyst takes the next case: the URL is text, never a link, on the dashboard and the case page
    page = signed_in(browser, live_server, console, first)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cases").click()
    expect(page.get_by_role("table")).to_contain_text(case.reference)
    expect(page.locator(f'table a[href="{case.url}"]')).to_have_count(0)
    page.get_by_role("button", name="Next case").click()
    expect(page).to_have_url(re.compile(rf"/cases/{case.reference}/$"))
    expect(page.locator("#case-status")).to_have_text("In review")
    expect(page.locator("#case-url")).to_have_text(case.url)
    assess_illegal_under_the_baseline(page, scheme.clause("INT", "BL-1"))
    expect(page.locator("#case-status")).to_have_text("Awaiting second opinion")

    # the same analyst cannot give the second opinion: "next case" has nothing for them
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Cases").click()
    page.get_by_role("button", name="Next case").click()
    expect(page.get_by_role("status")).to_contain_text("No case is waiting")

    # the second analyst takes it and agrees: the case is confirmed and moves on to actioning
    other = signed_in(browser, live_server, console, second)
    other.goto("/cases/")
    other.get_by_role("button", name="Next case").click()
    expect(other).to_have_url(re.compile(rf"/cases/{case.reference}/$"))
    expect(other.get_by_role("heading", name="Second opinion")).to_be_visible()
    assess_illegal_under_the_baseline(other, scheme.clause("INT", "BL-1"))
    expect(other.locator("#case-status")).to_have_text("Actioning")
    expect(other.get_by_role("table").filter(has_text="Second opinion")).to_contain_text("BL-1")

    case.refresh_from_db()
    assert case.status == Case.Status.ACTIONING
    assert [a.assessor_id for a in case.assessments.order_by("created_at")] == [first.user.pk, second.user.pk]

    # an analyst without the queue: the case does not exist for them, on the page and in the API
    outside = signed_in(browser, live_server, console, outsider)
    response = outside.goto(f"/cases/{case.reference}/")
    assert response is not None and response.status == 404
    expect(outside.get_by_role("heading", level=1)).to_contain_text("not found", ignore_case=True)
    assert outside.request.get(f"/api/v1/cases/{case.reference}/").status == 404
    outside.goto("/cases/")
    expect(outside.get_by_text("You have no queue yet")).to_be_visible()
    assert_quiet(console)
