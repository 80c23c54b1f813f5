"""The app under test: settings for the service tests, the app with its lifespan running in process and an
httpx client (``Service``), clients with a chosen peer address, and the app without a model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from petcut.api import create_app
from petcut.config import Settings
from petcut.model.runtime import ModelRuntime, State
from petcut.storage import ImageStore
from tests.support.fakes import FakeClock, FakeSegmenter, Loader
from tests.support.images import jpeg_bytes

ORIGIN = "https://shop.example.com"
PREVIEW_ORIGIN = "https://my-store-123.shopifypreview.com"
ORIGIN_REGEX = r"https://.*\.shopifypreview\.com"
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


def fuzz_settings(root: Path) -> Settings:
    """The fuzzers' service: files under ``root``, no Redis, 1 MB uploads, and rate limits on but far away
    (the guard runs on every request without refusing the fuzzer)."""
    return make_settings(
        data_dir=root / "data",
        weights_dir=root / "weights",
        redis_url=None,
        max_upload_mb=1,
        rate_limit_per_minute=1_000_000,
        rate_limits={"/warmup": 1_000_000},
    )


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


@asynccontextmanager
async def degraded_service(
    fault: BaseException | None = None, **overrides: Any
) -> AsyncIterator[tuple[Service, FakeSegmenter]]:
    """A service whose model loaded but whose startup warmup failed once (with ``fault``): DEGRADED, with its
    segmenter (append to ``faults`` to fail the next call too)."""
    segmenter = FakeSegmenter()
    segmenter.faults.append(fault or ValueError("the warmup image broke the model"))
    async with Service(make_settings(**overrides), loader=Loader(segmenter)) as svc:
        await svc.wait_state(State.DEGRADED)
        yield svc, segmenter


# --- the abuse guard: a controllable clock and clients with a chosen peer address ------------------------
def use_clock(svc: Service, clock: FakeClock) -> None:
    svc.app.state.abuse_guard.limiter.clock = clock


def client_for(svc: Service, peer: str = "127.0.0.1", **headers: str) -> httpx.AsyncClient:
    """A client whose TCP peer address is ``peer``; default headers as given (no Origin unless given)."""
    transport = httpx.ASGITransport(app=svc.app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://petcut.test", headers=headers, timeout=TIMEOUT)


def upload(data: bytes) -> dict[str, Any]:
    return {"files": {"file": ("pet.jpg", data, "image/jpeg")}}


# --- the app without a model (no lifespan runs) -----------------------------------------------------------
def make_app(store: ImageStore | None) -> FastAPI:
    """The real app (its model never loads: no lifespan runs) with ``store`` as its image store."""
    app = create_app(Settings(skip_model_preload=True), load_segmenter=_no_model)
    app.state.image_store = store
    return app


def _no_model(settings: Settings) -> Any:
    raise AssertionError("these tests never load the model")
