"""``run(settings)``: serve the app with uvicorn (``petcut serve`` calls it).

SIGTERM puts the runtime in ``draining`` at once (``/ready`` 503, new work 503), uvicorn stops accepting
connections and lets in-flight requests finish within ``shutdown_timeout_s`` (≤ 8 s; Cloud Run kills at
10 s), then the process exits 0. Model work that cannot finish in time is answered with a JSON 503
``draining`` by :func:`petcut.api.draining.drain` before uvicorn would cancel it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
from types import FrameType
from typing import TypedDict

import uvicorn

from petcut.api.app import Loader, create_app
from petcut.api.connections import ConnectionLimits, guarded_protocol, http_protocol_base
from petcut.api.draining import drain
from petcut.config import Settings, load_settings
from petcut.model.runtime import ModelRuntime
from petcut.observability import configure_logging, uvicorn_log_config


class DrainingServer(uvicorn.Server):
    """uvicorn's server, plus: the runtime drains on the first signal, and SIGTERM ends with exit 0
    (uvicorn re-raises the captured signal after shutting down, which would end the process with 143)."""

    def __init__(self, config: uvicorn.Config, runtime: ModelRuntime, *, drain_budget_s: float) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.drain_budget_s = drain_budget_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Future[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.runtime.request_drain()
        if self._loop is not None and not self._loop.is_closed() and self._drain is None:
            self._loop.call_soon_threadsafe(self._start_drain)
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]

    def _start_drain(self) -> None:
        if self._drain is None:
            self._drain = asyncio.ensure_future(drain(self.runtime.worker, self.drain_budget_s))

    @property
    def work_left_behind(self) -> bool:
        """The inference thread is still running a job nobody waits for."""
        return self.runtime.worker.in_flight > 0


class Forwarding(TypedDict):
    """The proxy-header options of ``uvicorn.Config``."""

    proxy_headers: bool
    forwarded_allow_ips: list[str]


def forwarding(settings: Settings) -> Forwarding:
    """uvicorn's proxy-header options from ``PETCUT_TRUSTED_PROXIES``. None trusted: X-Forwarded-For and
    X-Forwarded-Proto are ignored for every peer, loopback included (uvicorn's default would believe
    127.0.0.1, or whatever ``FORWARDED_ALLOW_IPS`` says)."""
    if not settings.trusted_proxies:
        return {"proxy_headers": False, "forwarded_allow_ips": []}
    return {"proxy_headers": True, "forwarded_allow_ips": list(settings.trusted_proxies)}


def build_server(settings: Settings, *, load_segmenter: Loader | None = None) -> DrainingServer:
    app = create_app(settings, load_segmenter=load_segmenter)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=uvicorn_log_config(settings.log_level),
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=settings.shutdown_timeout_s,
        lifespan="on",
        server_header=False,
        **forwarding(settings),
        http=guarded_protocol(
            http_protocol_base(),
            ConnectionLimits(
                max_per_client=settings.max_connections_per_client,
                header_timeout_s=settings.header_timeout_s,
                exempt=settings.trusted_proxies,
            ),
        ),
    )
    return DrainingServer(config, app.state.runtime, drain_budget_s=drain_budget(settings))


def drain_budget(settings: Settings) -> float:
    """Model work must be answered a second before uvicorn cancels what is left (a bare 500)."""
    return max(0.5, settings.shutdown_timeout_s - 1.0)


def run(settings: Settings | None = None, *, load_segmenter: Loader | None = None) -> None:
    """Serve until SIGTERM/SIGINT. Host and port come from ``settings``."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    server = build_server(settings, load_segmenter=load_segmenter)
    server.run()
    if server.work_left_behind:
        # A native inference thread still running at interpreter exit can abort the process
        # ("terminate called without an active exception", status 134): every request has been
        # answered and the logs are flushed, so leave now with the status uvicorn would have given.
        logging.getLogger("petcut.api").info("exiting with an abandoned inference job still running")
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
