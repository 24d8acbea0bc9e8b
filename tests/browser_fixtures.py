"""Browser fixtures: Debian's Chromium driven by Playwright, one per test module.

Test modules that use them declare `pytest_plugins = ["tests.browser_fixtures"]`.
"""

from __future__ import annotations

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module.

    Not per session: Playwright's sync API keeps an event loop running in the main thread
    while it is started, and asyncio tests in later modules (MCP, `ainvoke`) cannot run then.
    """
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    try:
        yield chromium
    finally:
        chromium.close()
        pw.stop()


@pytest.fixture
def page(browser):
    """A fresh browser context and page; `page.console_lines` collects the console output."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.console_lines = []
    page.on("console", lambda msg: page.console_lines.append(msg.text))
    yield page
    context.close()
