"""``GET /metrics`` (Prometheus text format) and the request metrics around every response.

:class:`RequestMetricsMiddleware` is the outermost ASGI layer (outside the edge middleware; see
:mod:`petcut.api.stack`), so it counts every response the service sends: a 413 sent before the body is
read, a preflight, a 500 from an unhandled exception, a 503 in any model state, a 429 or 401. Routes are
labelled by their template (``/session/{session_id}/images``), never the raw path; a path no route
matches is ``<unmatched>``, and unknown methods are ``OTHER``, so the number of series stays bounded.

``/metrics`` reads counters and the runtime's state only: it never loads the model, never imports torch,
and bypasses admission (no queue, no rate limit).
"""

from __future__ import annotations

import re
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.routing import Mount, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from petcut import __version__
from petcut.api.routing import served_routes
from petcut.observability import Metrics

router = APIRouter()

UNMATCHED = "<unmatched>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


METRICS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition format.",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
}


@router.get("/metrics", tags=["health"], response_class=Response, responses=METRICS_RESPONSES)
async def metrics(request: Request) -> Response:
    """Prometheus text exposition of the service's metrics."""
    runtime = getattr(request.app.state, "runtime", None)
    registry: Metrics = request.app.state.metrics
    if runtime is not None:
        # applies time-based transitions (an OOM cool-down ending) before reading the state
        status = runtime.status()
        registry.last_warmup(status.last_warmup.passed if status.last_warmup is not None else None)
    return Response(registry.render(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})


class RouteTemplates:
    """Maps a request path to its route template without dispatching it (for the responses the edge
    answers before routing: preflights, a 413 from ``Content-Length``). Templates come from the app's
    routes as served (:func:`~petcut.api.routing.served_routes`); mounts label as ``<prefix>/``."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self._built_for = -1
        self._templates: list[tuple[re.Pattern[str], str]] = []
        self._mounts: list[str] = []

    def _build(self) -> None:
        templates: set[str] = set()
        mounts: list[str] = []
        for route in served_routes(self.app.routes):
            path = route.path
            if isinstance(route.route, Mount):
                mounts.append(path or "")
            elif isinstance(path, str) and path.startswith("/"):
                templates.add(path)
        # literal paths before templated ones, so /a/list wins over /a/{id}
        ordered = sorted(templates, key=lambda t: (t.count("{"), t))
        self._templates = [(compile_path(t)[0], t) for t in ordered]
        self._mounts = sorted(mounts, key=len, reverse=True)
        self._built_for = len(self.app.routes)

    def resolve(self, path: str, root: str = "") -> str:
        """The template for ``path`` (the scope's ``path`` and ``root_path`` as they came in)."""
        if self._built_for != len(self.app.routes):
            self._build()
        if root and path.startswith(root):
            path = path[len(root) :] or "/"
        for regex, template in self._templates:
            if regex.match(path):
                return template
        for mount in self._mounts:
            if path == mount or path.startswith(f"{mount}/"):
                return f"{mount}/"
        return UNMATCHED


class RequestMetricsMiddleware:
    """Pure ASGI: ``petcut_http_requests_total`` and ``petcut_http_request_duration_seconds``."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, templates: RouteTemplates) -> None:
        self.app = app
        self.metrics = metrics
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status: int | None = None
        warmup_status: str | None = None
        # as they came in: a mount rewrites root_path in the shared scope on the way down
        path, root = str(scope.get("path") or "/"), str(scope.get("root_path") or "")

        async def watching_send(message: Message) -> None:
            nonlocal status, warmup_status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                warmup_status = _warmup_status(message)
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            route = scope.get("route")  # set by FastAPI's router when the request got that far
            template = getattr(route, "path", None)
            if not isinstance(template, str) or not template.startswith("/") or isinstance(route, Mount):
                template = self.templates.resolve(path, root)
            method = str(scope.get("method", "")).upper()
            # no response started: the client went away first (nginx's 499)
            self.metrics.request(
                template, method if method in METHODS else "OTHER", status or 499, time.perf_counter() - started
            )
            if template == WARMUP_ROUTE and status is not None:
                self.metrics.warmup_answer(warmup_status, status)


# --- alerting series: /warmup answers by X-Warmup-Status and code ----------------------------------------
WARMUP_ROUTE = "/warmup"


def _warmup_status(message: Message) -> str | None:
    """The ``X-Warmup-Status`` header of a response start message, if any."""
    for name, value in message.get("headers") or ():
        if bytes(name).lower() == b"x-warmup-status":
            return bytes(value).decode("latin-1")
    return None


# --- end alerting series ---------------------------------------------------------------------------------


def install(app: FastAPI, metrics: Metrics) -> None:
    """Add ``/metrics`` and the scrape-time collectors to ``app`` (the request metrics are
    :class:`RequestMetricsMiddleware`, first in the stack ``create_app`` declares)."""
    settings = app.state.settings
    metrics.watch_cache(app.state.cache)
    metrics.build_info(__version__, settings.mode, settings.device, settings.model_id, settings.model_choice)
    metrics.queue_capacity(settings.max_queue)
    app.include_router(router)
