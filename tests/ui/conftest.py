"""Browser tests: Debian's Chromium driven by Playwright against real servers on loopback.

``LiveServer`` runs ``create_app`` (with a fake loader) under uvicorn in a background thread on a free
port; ``StaticSite`` is a second origin (another loopback port) serving plain files (both in
``tests/support/browser.py``). The browser is launched once per session. Playwright's own browser download
does not work here, so the tests always use ``/usr/bin/chromium`` (``.ci/run`` installs the ``chromium``
package when it is missing) and fail, rather than skip, when it is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from petcut.config import Settings
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, WAIT_MS, LiveServer, StaticSite, browser_settings
from tests.support.fakes import Loader


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory: ``live_server(loader, **settings)`` starts a server, stopped after the test."""
    servers: list[LiveServer] = []

    def start(loader: Callable[[Settings], Any] | None = None, **overrides: Any) -> LiveServer:
        server = LiveServer(browser_settings(**overrides), loader if loader is not None else Loader())
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def ready_server() -> Iterator[LiveServer]:
    """One server with a model that loads at once, shared by a module's tests."""
    server = LiveServer(browser_settings(), Loader()).start()
    server.wait_ready()
    yield server
    server.stop()


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[StaticSite]:
    root = tmp_path / "site"
    root.mkdir()
    site = StaticSite(root)
    yield site
    site.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed (apt-get install chromium; .ci/run does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page_factory(browser: Any) -> Iterator[Callable[..., Any]]:
    """New pages in fresh contexts (``viewport`` etc. as keyword arguments), closed after the test."""
    contexts: list[Any] = []

    def new_page(**options: Any) -> Any:
        context = browser.new_context(accept_downloads=True, **options)
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        return page

    errors: list[str] = []
    yield new_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"
