"""Browser tests of the dashboard: the real service on a loopback port, Debian's Chromium
driven by Playwright (``/usr/bin/chromium``; Playwright never downloads a browser here).

On a failed test the page's screenshot, HTML and console log are saved under
``tests/browser/artifacts/`` (gitignored). Without Chromium or Playwright the tests skip,
saying why — and under ``CI=true`` a skipped integration test fails the run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tokenwarden.app import create_app
from tokenwarden.auth.api_keys import IssuedKey
from tokenwarden.server import running
from tokenwarden.settings import Settings

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = Path(os.environ.get("TOKENWARDEN_CHROMIUM", "/usr/bin/chromium"))
LAUNCH_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTIFACTS = Path(__file__).parent / "artifacts"

os.environ.setdefault("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Keep each phase's report on the item, so the page fixture knows the test failed."""
    report = yield
    item.stash.setdefault(_reports, {})[report.when] = report
    return report


_reports = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass
class Service:
    """The running service: its URL and the admin key it printed on first start."""

    base_url: str
    admin_key: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The embedded service on a free loopback port with a fresh SQLite file. The admin
    key is the one the service makes and hands out on its first start — as an operator
    gets it from ``tokenwarden serve``."""
    db = tmp_path_factory.mktemp("dashboard") / "tw.db"
    issued: list[IssuedKey] = []
    app = create_app(Settings(database_url=f"sqlite:///{db}"), on_admin_key=issued.append)
    with running(app) as base:
        assert len(issued) == 1, "the first start made exactly one admin key"
        yield Service(base_url=base, admin_key=issued[0].key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Chromium under Playwright's sync API — module-scoped, not session-scoped: while
    Playwright runs, its event loop counts as running in the main thread, and every later
    test that calls ``asyncio.run`` would fail."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=LAUNCH_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class PageLog:
    """What the page said: console messages and uncaught errors."""

    console: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(
    browser: Browser, service: Service, page_log: PageLog, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh browser context (empty sessionStorage) on the service's origin."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    context = browser.new_context(
        base_url=service.base_url, viewport={"width": 1400, "height": 1000}
    )
    pg = context.new_page()
    pg.on("console", lambda m: page_log.console.append(f"{m.type}: {m.text}"))
    pg.on("pageerror", lambda e: page_log.errors.append(str(e)))

    def on_dialog(d: Any) -> None:  # a native alert()/confirm() would be injected script
        page_log.dialogs.append(d.message)
        d.dismiss()

    pg.on("dialog", on_dialog)
    try:
        yield pg
    finally:
        reports = request.node.stash.get(_reports, {})
        if any(r.failed for r in reports.values()):
            _save_artifacts(pg, request.node.nodeid, page_log)
        context.close()


def _save_artifacts(pg: Page, nodeid: str, log: PageLog) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", nodeid)[-120:]
    try:
        pg.screenshot(path=str(ARTIFACTS / f"{stem}.png"), full_page=True)
        (ARTIFACTS / f"{stem}.html").write_text(pg.content(), encoding="utf-8")
    except Exception as exc:  # the page may be gone; keep what can be kept
        (ARTIFACTS / f"{stem}.error.txt").write_text(repr(exc), encoding="utf-8")
    lines = [f"url: {pg.url}", *log.console, *(f"pageerror: {e}" for e in log.errors)]
    (ARTIFACTS / f"{stem}.log").write_text("\n".join(lines) + "\n", encoding="utf-8")
