"""What routes get from the app: settings, the model runtime, the pipeline, the CPU pool, disconnect watching.

Routes take them as ``Annotated`` dependency aliases (``SettingsDep``, ``RuntimeDep``, ``PipelineDep``,
``CpuDep``), as FastAPI's own project template does (docs/architecture.md, "Adding a route").
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import weakref
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request

from petcut.api.errors import ClientClosedRequest
from petcut.config import Settings
from petcut.imaging.bounds import cancellation
from petcut.model.runtime import ModelRuntime
from petcut.pipeline import Pipeline

T = TypeVar("T")


class CpuPool:
    """A bounded pool for decoding, post-processing and encoding, off the event loop."""

    def __init__(self, workers: int | None) -> None:
        self.workers = workers or max(1, min(4, os.cpu_count() or 1))
        # one limiter per event loop, created on it (the service has one loop; a TestClient used without
        # its context manager runs each request on a loop of its own)
        self._limiters: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
            weakref.WeakKeyDictionary()
        )

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self.workers)
        return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs), limiter=limiter)


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_pipeline(request: Request) -> Pipeline:
    pipeline: Pipeline = request.app.state.pipeline
    return pipeline


async def get_runtime(request: Request) -> ModelRuntime:
    runtime: ModelRuntime = request.app.state.runtime
    return runtime


async def get_cpu(request: Request) -> CpuPool:
    cpu: CpuPool = request.app.state.cpu
    return cpu


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[ModelRuntime, Depends(get_runtime)]
PipelineDep = Annotated[Pipeline, Depends(get_pipeline)]
CpuDep = Annotated[CpuPool, Depends(get_cpu)]


async def _wait_for_disconnect(request: Request) -> None:
    """Returns when the client goes away. Only call once the request body has been read."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; if the client disconnects first, cancel it (its queued model job is withdrawn,
    its running decode stops at the next chunk) and answer 499 (nobody reads it; it is for the logs)."""
    with cancellation() as gone:  # the work's decodes (in CPU threads) stop once ``gone`` is set
        task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        gone.set()
        task.cancel()
        watcher.cancel()
        raise
    if task in done:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        return task.result()
    gone.set()
    task.cancel()
    with contextlib.suppress(BaseException):
        await task
    raise ClientClosedRequest()
