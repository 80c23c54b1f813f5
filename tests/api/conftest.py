"""Helpers for the service tests: a running app (lifespan + httpx client), condition waits and the
assertions every response must pass (CORS, X-Request-ID, the JSON error envelope)."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx

from petcut.api import create_app
from petcut.config import Settings
from petcut.model.runtime import ModelRuntime, State
from tests.api.fakes import FakeSegmenter, Loader

ORIGIN = "https://shop.example.com"
PREVIEW_ORIGIN = "https://my-store-123.shopifypreview.com"
ORIGIN_REGEX = r"https://.*\.shopifypreview\.com"
REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
TIMEOUT = 20.0  # generous: the CI machine is small and shared


def make_settings(**overrides: Any) -> Settings:
    """Small deadlines and a short backoff so fault tests run fast; everything overridable."""
    values: dict[str, Any] = {
        "cors_origins": [ORIGIN],
        "cors_origin_regex": ORIGIN_REGEX,
        "mode": "fast",
        "max_queue": 4,
        "queue_timeout_s": 10.0,
        "inference_timeout_s": 15.0,
        "load_attempts": 3,
        "load_backoff_s": 0.01,
        "load_cooldown_s": 60.0,
        "warmup_wait_s": 10.0,
        "oom_window_s": 60.0,
        "oom_cooldown_s": 60.0,
        "cpu_workers": 2,
    }
    values.update(overrides)
    return Settings(**values)


def run(coro: Coroutine[Any, Any, Any], timeout: float = 60.0) -> Any:
    """Run one async scenario with an overall limit (a hang fails the test instead of the CI job)."""
    return asyncio.run(asyncio.wait_for(coro, timeout))


async def wait_for(predicate: Callable[[], bool], timeout: float = TIMEOUT, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Service:
    """The app with its lifespan running, and an httpx client that sends ``Origin: ORIGIN``."""

    def __init__(self, settings: Settings | None = None, loader: Callable[[Settings], Any] | None = None) -> None:
        self.settings = settings or make_settings()
        self.loader = loader if loader is not None else Loader()
        self.app = create_app(self.settings, load_segmenter=self.loader)
        self._to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.client: httpx.AsyncClient

    @property
    def runtime(self) -> ModelRuntime:
        return self.app.state.runtime

    @property
    def segmenter(self) -> FakeSegmenter:
        return self.loader.segmenter  # type: ignore[attr-defined, no-any-return]

    async def __aenter__(self) -> Service:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}, "state": {}}
        self._task = asyncio.create_task(self.app(scope, self._to_app.get, self._from_app.put))
        await self._to_app.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self._from_app.get(), TIMEOUT)
        assert message["type"] == "lifespan.startup.complete", message
        transport = httpx.ASGITransport(app=self.app)
        self.client = httpx.AsyncClient(
            transport=transport, base_url="http://petcut.test", headers={"Origin": ORIGIN}, timeout=TIMEOUT
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()
        await self._to_app.put({"type": "lifespan.shutdown"})
        message = await asyncio.wait_for(self._from_app.get(), TIMEOUT)
        assert message["type"] == "lifespan.shutdown.complete", message
        assert self._task is not None
        await asyncio.wait_for(self._task, TIMEOUT)

    async def wait_state(self, *states: State, timeout: float = TIMEOUT) -> None:
        await wait_for(lambda: self.runtime.state in states, timeout, f"state in {states}")

    async def occupy_worker(self, segmenter: FakeSegmenter) -> asyncio.Future[httpx.Response]:
        """Start one request and hold it inside the model (``segmenter.gate``) until the test sets the gate.
        Returns the pending response."""
        segmenter.gate = threading.Event()
        segmenter.started.clear()
        first = asyncio.ensure_future(self.process())
        await wait_for(segmenter.started.is_set, what="first job running")
        return first

    async def process(self, data: bytes | None = None, **kwargs: Any) -> httpx.Response:
        files = {"file": ("pet.jpg", data if data is not None else jpeg_bytes(), "image/jpeg")}
        return await self.client.post("/api/v2/remove-background", files=files, **kwargs)


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    from io import BytesIO

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    buf = BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


# --- assertions ------------------------------------------------------------------------------------
def check_edge(response: httpx.Response, origin: str | None = ORIGIN) -> None:
    """CORS for an allowed origin, Vary: Origin and a well-formed X-Request-ID: on every response."""
    headers = response.headers
    if origin is not None:
        assert headers.get("access-control-allow-origin") == origin, (response.status_code, dict(headers))
        exposed = headers.get("access-control-expose-headers", "")
        for name in ("X-Request-ID", "Retry-After", "X-Processing-Time", "X-Warmup-Status"):
            assert name in exposed
    else:
        assert "access-control-allow-origin" not in headers
    assert "origin" in [v.strip().lower() for v in headers.get("vary", "").split(",")], dict(headers)
    assert REQUEST_ID.fullmatch(headers.get("x-request-id", "")), dict(headers)


def check_error(response: httpx.Response, status: int, code: str | None = None, origin: str | None = ORIGIN) -> dict:
    """The status, the edge headers, and the JSON envelope (plus Retry-After/status on 503)."""
    assert response.status_code == status, (response.status_code, response.text)
    check_edge(response, origin)
    body = response.json()
    assert body["success"] is False
    error = body["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), error
    if code is not None:
        assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    text = response.text
    assert "Traceback" not in text and "/secret" not in text and 'File "' not in text, text
    if status == 503:
        retry_after = int(response.headers["retry-after"])
        assert retry_after >= 1
        assert body["retry_after"] == retry_after
        assert isinstance(body["status"], str) and body["status"]
    return body


def check_png(response: httpx.Response, size: tuple[int, int] | None = None) -> None:
    from io import BytesIO

    from PIL import Image

    assert response.status_code == 200, response.text
    check_edge(response)
    assert response.headers["content-type"] == "image/png"
    assert float(response.headers["x-processing-time"]) >= 0
    image = Image.open(BytesIO(response.content))
    assert image.mode == "RGBA"
    if size is not None:
        assert image.size == size
