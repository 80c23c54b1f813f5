"""Servers for the browser tests: petcut under uvicorn in a thread (``LiveServer``) and a second origin
serving plain files (``StaticSite``), with the settings and waits the pages use."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from petcut.api import create_app
from petcut.config import Settings
from tests.support.servers import free_port, poll_until

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


def browser_settings(**overrides: Any) -> Settings:
    """The page's server: one load attempt, deadlines long enough for a browser on a small machine."""
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
        poll_until(
            lambda: self.server.started, "the petcut server starting", 20, interval=0.02, alive=self.thread.is_alive
        )
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def wait_ready(self, timeout: float = 30) -> None:
        poll_until(
            lambda: httpx.get(self.url + "/ready", timeout=5).status_code == 200,
            "/ready answering 200",
            timeout,
            interval=0.05,
        )


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
