"""The browser tests' shared Chromium (Debian's, driven by Playwright; see ENVIRONMENT.md)."""

from __future__ import annotations

import pytest

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium for the module's tests (missing Chromium fails them: they must run, not skip)."""
    from pathlib import Path

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (the browser tests must run, not skip)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()
