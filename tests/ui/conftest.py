"""Browser tests: Debian's Chromium driven by Playwright against real servers on loopback.

``LiveServer`` runs ``create_app`` (with a fake loader) under uvicorn in a background thread on a free
port; ``StaticSite`` is a second origin (another loopback port) serving plain files. The browser is
launched once per session. Playwright's own browser download does not work here, so the tests always
use ``/usr/bin/chromium`` (``.ci/run`` installs the ``chromium`` package when it is missing) and fail,
rather than skip, when it is absent.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from petcut.api import create_app
from petcut.config import Settings
from tests.api.fakes import Loader
from tests.conftest import free_port

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
WAIT_MS = 30_000  # generous: CI has two shared cores


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives Chromium through Playwright; still run in CI")


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "mode": "fast",
        "cors_origins": ["https://shop.example.com"],
        "max_queue": 4,
        "queue_timeout_s": 20.0,
        "inference_timeout_s": 30.0,
        "load_attempts": 1,
        "load_backoff_s": 0.01,
        "load_cooldown_s": 120.0,
        "warmup_wait_s": 10.0,
        "cpu_workers": 2,
    }
    values.update(overrides)
    return Settings(**values)


class LiveServer:
    """petcut under uvicorn in a daemon thread, on a free loopback port."""

    def __init__(self, settings: Settings, loader: Callable[[Settings], Any]) -> None:
        self.settings = settings
        self.app = create_app(settings, load_segmenter=loader)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, lifespan="on", log_config=None, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"petcut-{self.port}", daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                pytest.fail("the petcut server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if httpx.get(self.url + "/ready", timeout=5).status_code == 200:
                return
            time.sleep(0.05)
        pytest.fail(f"/ready did not answer 200 within {timeout} s")


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """A factory: ``live_server(loader, **settings)`` starts a server, stopped after the test."""
    servers: list[LiveServer] = []

    def start(loader: Callable[[Settings], Any] | None = None, **overrides: Any) -> LiveServer:
        server = LiveServer(make_settings(**overrides), loader if loader is not None else Loader())
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def ready_server() -> Iterator[LiveServer]:
    """One server with a model that loads at once, shared by a module's tests."""
    server = LiveServer(make_settings(), Loader()).start()
    server.wait_ready()
    yield server
    server.stop()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class StaticSite:
    """Another origin: a plain HTTP server on another loopback port serving one directory."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.root = root
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="static-site", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


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
