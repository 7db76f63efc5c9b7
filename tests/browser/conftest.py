"""The dashboard in a real browser: Debian's chromium, headless, driven by Playwright's Python
package (Playwright's own browser download cannot be reached here; `executable_path` points
it at the distribution's binary, which scripts/setup-host.sh installs).

Every page opened here has the network cut down to the daemon: a route on the whole browser
context lets through requests to the daemon's host and port only and aborts, and records,
every other one, so a test can assert the page asked for nothing else (no CDN, no font)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Playwright, Route, sync_playwright

from tests.browser.stub import StubDaemon

# The integration suite's real parts (dockerd check, a Redis server, fixture projects, the
# daemon as a process) for test_live.py: the same fixtures, not a copy.
from tests.integration.conftest import docker_ready, redis_server, sidecar, workspace

__all__ = ["docker_ready", "redis_server", "sidecar", "workspace"]

HERE = Path(__file__).resolve().parent
CHROMIUM = Path(os.environ.get("SIDECAR_TEST_CHROMIUM", "/usr/bin/chromium"))
# Files whose tests start the real daemon (dockerd, Redis): also `integration`.
LIVE_FILES = frozenset({"test_live.py"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test here is `browser`; the ones against the real daemon are `integration` too
    (a `pytestmark` in a conftest.py marks nothing; the hook sees the whole session)."""
    for item in items:
        path = item.path.resolve()
        if HERE in path.parents:
            item.add_marker(pytest.mark.browser)
            if path.name in LIVE_FILES:
                item.add_marker(pytest.mark.integration)


# Module scope, not session: while Playwright's sync API is open it keeps its asyncio loop
# marked running on the main thread, and every later test's asyncio.run() would fail
# ("cannot be called from a running event loop"). A launch costs about a second.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"no chromium at {CHROMIUM}: run scripts/setup-host.sh first")
    # --no-sandbox: chromium refuses to start as root with its sandbox (tests run as root)
    b = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
    yield b
    b.close()


@dataclass
class Dashboard:
    """A page on the dashboard, with what it tried to reach beyond the daemon and the
    errors its scripts raised."""

    page: Page
    url: str
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


OpenDashboard = Callable[..., Dashboard]


@pytest.fixture
def open_dashboard(browser: Browser) -> Iterator[OpenDashboard]:
    opened: list[Dashboard] = []

    def open_(
        url: str,
        token: str | None = None,
        width: int = 1400,
        height: int = 900,
        init: str = "",
    ) -> Dashboard:
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        dash = Dashboard(page, url)
        allowed = urlsplit(url).netloc

        def guard(route: Route) -> None:
            target = urlsplit(route.request.url)
            if target.scheme in ("data", "blob") or target.netloc == allowed:
                route.continue_()
            else:
                dash.blocked.append(route.request.url)
                route.abort()

        context.route("**/*", guard)
        page.on("pageerror", lambda exc: dash.errors.append(f"pageerror: {exc}"))

        def console(msg: ConsoleMessage) -> None:
            # a refused token or a dropped stream is logged by chromium itself as a failed
            # resource: expected in those tests; script errors are not
            if msg.type == "error" and "Failed to load resource" not in msg.text:
                dash.errors.append(f"console: {msg.text}")

        page.on("console", console)
        if token is not None:
            context.add_init_script(f"sessionStorage.setItem('sidecar-token', {token!r})")
        if init:
            context.add_init_script(init)
        page.goto(url)
        opened.append(dash)
        return dash

    yield open_
    for dash in opened:
        dash.page.context.close()
    for dash in opened:
        assert not dash.errors, dash.errors


@pytest.fixture
def stub() -> Iterator[StubDaemon]:
    daemon = StubDaemon()
    daemon.start()
    yield daemon
    daemon.stop()
