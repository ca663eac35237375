"""Journey: a member of staff signs in with a password and an authenticator code, or enrols one first."""

from __future__ import annotations

import re
import time
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from ntd.roles import ANALYST, AUDITOR
from tests.conftest import PASSWORD, totp_code
from tests.journeys.conftest import Console

pytestmark = pytest.mark.browser


def fresh_code(secret: str) -> str:
    """A code with time left to be typed and sent before its 30-second step ends."""
    if time.time() % 30 > 26:
        time.sleep(30 - time.time() % 30 + 0.1)
    return totp_code(secret)


def enter_password(page: Page, username: str) -> None:
    page.locator('input[name="login"]').fill(username)
    page.locator('input[name="password"]').fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()


def main_nav(page: Page) -> Any:
    return page.get_by_role("navigation", name="Main")


def assert_quiet(console: Console) -> None:
    assert console.csp_violations() == [], console.messages
    assert console.errors == []


@pytest.mark.parametrize(("role", "sees_audit_log"), [(AUDITOR, True), (ANALYST, False)])
def test_staff_signs_in_with_password_and_code(page: Page, console: Console, make_staff: Any, role: str,
                                               sees_audit_log: bool) -> None:
    staff = make_staff(role)

    page.goto("/")
    main_nav(page).get_by_role("link", name="Staff sign-in").click()
    enter_password(page, staff.user.username)
    expect(page).to_have_url(re.compile(r"/accounts/2fa/authenticate/$"))
    page.locator('input[name="code"]').fill(fresh_code(staff.totp_secret))
    page.get_by_role("button", name="Sign In").click()

    expect(page).to_have_url(re.compile(r"/$"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Home")
    session = next(c for c in page.context.cookies() if c["name"] == "sessionid")
    assert session["secure"] and session["httpOnly"]  # Secure, as in production, and kept on http://localhost
    expect(main_nav(page).get_by_role("link", name="Home")).to_be_visible()
    expect(main_nav(page).get_by_role("link", name="Audit log")).to_have_count(1 if sees_audit_log else 0)
    if sees_audit_log:
        main_nav(page).get_by_role("link", name="Audit log").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
        expect(page.get_by_role("cell", name="Signed in")).to_be_visible()
    assert_quiet(console)


def test_user_without_a_factor_enrols_then_arrives_home(page: Page, console: Console, make_staff: Any) -> None:
    staff = make_staff(ANALYST, totp=False)

    page.goto("/audit/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/audit/$"))
    enter_password(page, staff.user.username)

    # no page but the enrolment until a factor exists
    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/$"))
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/accounts/2fa/totp/activate/$"))
    expect(page.get_by_text("Set up your authenticator app before you continue.")).to_be_visible()
    expect(page.get_by_role("img", name=re.compile(r"^[A-Z2-7]{32}$"))).to_be_visible()  # the QR code

    secret = page.locator("#authenticator_secret").input_value()
    page.locator('input[name="code"]').fill(fresh_code(secret))
    page.get_by_role("button", name="Activate").click()

    expect(page).to_have_url(re.compile(r"/accounts/2fa/recovery-codes/$"))  # shown once, to be kept
    main_nav(page).get_by_role("link", name="Home").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Home")
    expect(page.get_by_text("Signed in as Analyst.")).to_be_visible()
    assert_quiet(console)

