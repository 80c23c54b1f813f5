"""How long the service takes to answer ``/health`` in-process (ASGI, no sockets), with its dependencies
as they are (async: read on the event loop) beside the same dependencies as plain functions (FastAPI runs
those in a worker thread per request, as petcut did before). Liveness must stay cheap while inference
saturates the machine (docs/api.md, "Health").

    .venv/bin/python bench/health.py [--requests 1000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import httpx
import numpy as np
from fastapi import Request

from machine import cpu_description
from petcut.api import deps
from petcut.api.app import create_app
from petcut.config import Settings


class _Segmenter:
    name = "constant"
    description = "a constant alpha"

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        return np.ones(rgb.shape[:2], np.float32)


def _sync(getter: Any) -> Any:
    """The getter as a plain function: what FastAPI hops to a worker thread to call."""
    attribute = {"get_settings": "settings", "get_runtime": "runtime", "get_pipeline": "pipeline", "get_cpu": "cpu"}

    def read(request: Request) -> Any:
        return getattr(request.app.state, attribute[getter.__name__])

    return read


async def _per_request_ms(sync_dependencies: bool, requests: int, runs: int) -> float:
    app = create_app(Settings(skip_model_preload=True), load_segmenter=lambda settings: _Segmenter())
    if sync_dependencies:
        for getter in (deps.get_settings, deps.get_runtime, deps.get_pipeline, deps.get_cpu):
            app.dependency_overrides[getter] = _sync(getter)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(requests // 5):
                (await client.get("/health")).raise_for_status()
            best = float("inf")
            for _ in range(runs):
                started = time.perf_counter()
                for _ in range(requests):
                    await client.get("/health")
                best = min(best, time.perf_counter() - started)
    return best / requests * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {cpu_description()}")
    before = asyncio.run(_per_request_ms(True, args.requests, args.runs))
    after = asyncio.run(_per_request_ms(False, args.requests, args.runs))
    print(f"/health in-process, best of {args.runs} × {args.requests}:")
    print(f"  reference (dependencies in a worker thread)  {before:.3f} ms per request")
    print(f"  petcut (dependencies on the event loop)      {after:.3f} ms per request  ({after / before:.2f}×)")


if __name__ == "__main__":
    main()
