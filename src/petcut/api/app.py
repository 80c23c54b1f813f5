"""``create_app()``: the ASGI application uvicorn serves.

Nothing happens at import time. The model runtime is created here and started by the lifespan, which
returns at once (the port opens immediately; the model loads in the background). The middleware stack is
declared here, in one ordered list (:mod:`petcut.api.stack` says why this order).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from petcut import __version__
from petcut.api import routes_health, routes_metrics, routes_processing, routes_storage
from petcut.api.cors import CorsPolicy
from petcut.api.deps import CpuPool
from petcut.api.errors import install_error_handlers
from petcut.api.middleware import MULTIPART_SLACK, EdgeMiddleware
from petcut.api.ratelimit import AbuseGuard, AbuseGuardMiddleware
from petcut.api.routes_metrics import RequestMetricsMiddleware, RouteTemplates
from petcut.api.stack import SERVER_ERRORS, MiddlewareStack
from petcut.api.warmup import make_probe
from petcut.cache import open_cache
from petcut.config import Settings, load_settings
from petcut.model.base import Segmenter
from petcut.model.runtime import ModelRuntime, State
from petcut.observability import Metrics, StartupTimeline
from petcut.pipeline import Pipeline
from petcut.redis_client import open_redis
from petcut.storage import open_store

log = logging.getLogger("petcut.api")

Loader = Callable[[Settings], Segmenter]

LOGGED_SETTINGS = {
    "model", "isnet_variant", "model_fallback",
    "mode", "resize", "target_size", "device", "precision", "foreground", "max_upload_mb", "max_pixels",
    "host", "port", "log_level", "skip_model_preload", "min_instances", "cors_origins", "max_queue",
    "queue_timeout_s", "inference_timeout_s", "cpu_workers", "load_attempts", "shutdown_timeout_s",
}  # fmt: skip


def default_loader(settings: Settings) -> Segmenter:
    """The real InSPyReNet loader, imported only when a load starts (torch stays out of ``/health``)."""
    from petcut.model.segmenter import load_segmenter

    return load_segmenter(settings)


class PetcutAPI(FastAPI):
    """FastAPI built around a declared :class:`MiddlewareStack` (``stack``), some of whose layers sit
    outside ServerErrorMiddleware. ``add_middleware`` is not used: a layer goes into the declared list."""

    stack: MiddlewareStack = MiddlewareStack(SERVER_ERRORS)

    def build_middleware_stack(self) -> ASGIApp:
        if self.user_middleware and self.user_middleware != self.stack.inside:
            raise RuntimeError("petcut declares its middleware in create_app's stack; add_middleware is not used")

        def framework(inside: list[Middleware]) -> ASGIApp:
            self.user_middleware = inside
            return super(PetcutAPI, self).build_middleware_stack()

        return self.stack.build(framework)


async def warm_effects_when_ready(runtime: ModelRuntime, cpu: CpuPool, poll_s: float = 0.5) -> None:
    """Once the model is served, compile the effects' numba kernels in the CPU pool (about 3 s on two
    cores, cached on disk where writable), so the first customer asking for dithering or retro8bit
    does not pay for it. Done after readiness: it must not delay /ready or compete with the load."""
    from petcut import effects

    while runtime.state not in (State.READY, State.DEGRADED):
        await asyncio.sleep(poll_s)
    started = time.perf_counter()
    try:
        await cpu.run(effects.warm_up)
    except Exception:  # a warm-up failure must not take the service down; the first call compiles instead
        log.exception("effects warm-up failed")
        return
    log.info("effects warmed up", extra={"seconds": round(time.perf_counter() - started, 3)})


def create_app(settings: Settings | None = None, *, load_segmenter: Loader | None = None) -> PetcutAPI:
    """Build the app. ``settings=None`` reads the environment; ``load_segmenter`` replaces the real loader
    (tests pass fakes that sleep, raise or return a deterministic segmenter)."""
    settings = settings or load_settings()
    started_at = time.monotonic()
    metrics = Metrics()
    timeline = StartupTimeline(
        logging.getLogger("petcut.startup"), start=started_at, enabled=settings.enable_startup_logging
    )
    cpu = CpuPool(settings.cpu_workers)
    redis = open_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)  # the cache's and the limiter's
    cache = open_cache(settings, redis)
    runtime = ModelRuntime(
        settings,
        load_segmenter or default_loader,
        warmup_probe=make_probe(lambda: pipeline),
        metrics=metrics,
        timeline=timeline,
    )
    pipeline = Pipeline(settings, runtime, cpu, cache, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        timeline.mark("imports done")
        if settings.enable_startup_logging:  # a fixed list: no secrets (URLs with passwords) in logs
            log.info("settings", extra={"settings": settings.model_dump(mode="json", include=LOGGED_SETTINGS)})
        await runtime.start()
        effects_warmup = asyncio.create_task(warm_effects_when_ready(runtime, cpu))
        try:
            yield
        finally:
            effects_warmup.cancel()
            await runtime.stop()
            await cache.close()
            if redis is not None:
                await redis.close()
            app.state.image_store.close()
            log.info("shutdown complete")

    app = PetcutAPI(
        title="petcut",
        version=__version__,
        description="Background removal and print effects for pet photos (InSPyReNet).",
        lifespan=lifespan,
    )
    cors = CorsPolicy(settings.cors_origins, settings.cors_origin_regex)
    guard = AbuseGuard.from_settings(settings, cors=cors, redis=redis)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.cpu = cpu
    app.state.cache = cache
    app.state.pipeline = pipeline
    app.state.image_store = open_store(settings)
    app.state.metrics = metrics
    app.state.started_at = started_at
    app.state.abuse_guard = guard
    install_error_handlers(app)
    app.include_router(routes_health.router)
    app.include_router(routes_processing.router)
    app.include_router(routes_storage.router)
    routes_metrics.install(app, metrics)
    app.mount("/ui", StaticFiles(directory=Path(__file__).with_name("static"), html=True), name="ui")  # /ui → /ui/
    # outermost first; the layers that read the routes (policies, documented headers) do so when Starlette
    # builds the stack, on the first ASGI event (the lifespan startup), with every route in place
    routes = app.router.routes
    app.stack = MiddlewareStack(
        Middleware(RequestMetricsMiddleware, metrics=metrics, templates=RouteTemplates(app)),
        Middleware(
            EdgeMiddleware,
            cors=cors,
            max_body_bytes=settings.max_upload_bytes + MULTIPART_SLACK,
            body_timeout_s=settings.body_timeout_s,
            routes=routes,
        ),
        SERVER_ERRORS,
        Middleware(AbuseGuardMiddleware, guard=guard, routes=routes),
    )
    return app
