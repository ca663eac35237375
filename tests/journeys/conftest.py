"""Browser journeys: Playwright drives the system Chromium against pytest-django's live server.

The live server listens on http://localhost (pytest-django's default). ntd sets its session and CSRF
cookies Secure with DEBUG off, as in production; Chromium keeps them over plain HTTP because it counts a
loopback host (localhost, and 127.0.0.1 too) as a secure context. The sign-in journey checks it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

# Playwright's sync API runs an event loop in this thread; Django's ORM, called by the tests and fixtures
# in the same thread, would otherwise refuse to run "from an async context".
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"no system Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Console:
    """What the page said on its console: CSP violations arrive here as errors."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def record(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")

    def csp_violations(self) -> list[str]:
        return [m for m in self.messages if "Content Security Policy" in m or "Content-Security-Policy" in m]


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser: Browser, live_server: Any, console: Console) -> Iterator[Page]:
    """A fresh browser context (no cookies) on the live server; console output and page errors recorded."""
    context = browser.new_context(base_url=live_server.url)
    context.set_default_timeout(5_000)
    page = context.new_page()
    page.on("console", console.record)
    page.on("pageerror", lambda error: console.errors.append(str(error)))
    yield page
    context.close()


@pytest.fixture(autouse=True)
def _live_server_pages(settings: Any) -> None:
    """Pages render without `collectstatic` (the live server serves static files from the finders)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
