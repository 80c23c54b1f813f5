"""``run(settings)``: serve the app with uvicorn (``petcut serve`` calls it).

SIGTERM puts the runtime in ``draining`` at once (``/ready`` 503, new work 503), uvicorn stops accepting
connections and lets in-flight requests finish within ``shutdown_timeout_s`` (≤ 8 s; Cloud Run kills at
10 s), then the process exits 0.
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn

from petcut.api.app import Loader, create_app
from petcut.config import Settings, load_settings
from petcut.model.runtime import ModelRuntime
from petcut.observability import configure_logging, uvicorn_log_config


class DrainingServer(uvicorn.Server):
    """uvicorn's server, plus: the runtime drains on the first signal, and SIGTERM ends with exit 0
    (uvicorn re-raises the captured signal after shutting down, which would end the process with 143)."""

    def __init__(self, config: uvicorn.Config, runtime: ModelRuntime) -> None:
        super().__init__(config)
        self.runtime = runtime

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.runtime.request_drain()
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


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
    )
    return DrainingServer(config, app.state.runtime)


def run(settings: Settings | None = None, *, load_segmenter: Loader | None = None) -> None:
    """Serve until SIGTERM/SIGINT. Host and port come from ``settings``."""
    settings = settings or load_settings()
    configure_logging(settings.log_level)
    build_server(settings, load_segmenter=load_segmenter).run()
