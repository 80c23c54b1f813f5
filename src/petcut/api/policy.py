"""What a route declares, where it is defined, for the layers in front of it (docs/security.md).

* Its **limit class and protection**: ``dependencies=[policy(limit=1.0, protected=True)]`` on the route
  decorator. ``limit`` is a share of ``PETCUT_RATE_LIMIT_PER_MINUTE``/``_BURST`` (``2.0``: twice the
  processing limit), or ``per_minute``/``burst`` a fixed bucket; ``protected`` routes need an API key
  when ``PETCUT_REQUIRE_API_KEY`` is on. The dependency does nothing per request: the abuse guard
  (:mod:`petcut.api.ratelimit`) reads the declarations from the app's routes when the middleware stack is
  built (at startup) and answers before the route runs. A declaration covers its path whatever the method.
* Its **response headers**: those documented in the route's OpenAPI ``responses``
  (:func:`petcut.api.openapi.with_headers` adds some to a shared response) are the ones browsers may read
  (``Access-Control-Expose-Headers``, :func:`exposed_headers`), with the ones the edge and the guard add to
  every response.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends
from starlette.routing import BaseRoute

from petcut.api.routing import served_routes
from petcut.config import RateLimitRule

#: sent by the edge (X-Request-ID), on 429 and 503 (Retry-After) and by the guard on limited routes
ALWAYS_EXPOSED = ("X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy")


@dataclass(frozen=True)
class RoutePolicy:
    """One route's limit class (None: not limited) and whether it needs an API key."""

    limit: float | RateLimitRule | None = None
    protected: bool = False

    async def __call__(self) -> None:
        """As a FastAPI dependency: nothing per request (the guard has already decided). Async, so FastAPI
        does not hop to a worker thread to run it."""


def policy(
    *, limit: float | None = None, per_minute: int | None = None, burst: int | None = None, protected: bool = False
) -> Any:
    """The route's declaration, for its decorator's ``dependencies``: ``limit``, a share of the default
    limit, or a fixed ``per_minute`` (and ``burst``); ``protected``: needs an API key when keys are required."""
    if per_minute is not None:
        return Depends(RoutePolicy(RateLimitRule(per_minute=per_minute, burst=burst), protected))
    return Depends(RoutePolicy(limit, protected))


def route_policy(route: Any) -> RoutePolicy | None:
    for dependency in getattr(route, "dependencies", None) or ():
        declared = getattr(dependency, "dependency", None)
        if isinstance(declared, RoutePolicy):
            return declared
    return None


def declared_policies(routes: Sequence[BaseRoute]) -> dict[str, RoutePolicy]:
    """Path template → the policy its routes declare. Two methods of a path must not declare two policies."""
    policies: dict[str, RoutePolicy] = {}
    for route in served_routes(routes):
        declared = route_policy(route)
        path = getattr(route, "path", None)
        if declared is None or not isinstance(path, str):
            continue
        if policies.setdefault(path, declared) != declared:
            raise ValueError(f"{path}: its routes declare different policies ({policies[path]} and {declared})")
    return policies


# --- response headers ------------------------------------------------------------------------------------
def exposed_headers(routes: Sequence[BaseRoute]) -> tuple[str, ...]:
    """:data:`ALWAYS_EXPOSED` and every header some route documents, in that order, each once."""
    names = list(ALWAYS_EXPOSED)
    seen = {name.lower() for name in names}
    for route in served_routes(routes):
        responses: Mapping[Any, Any] = getattr(route, "responses", None) or {}
        for response in responses.values():
            for name in response.get("headers", {}) if isinstance(response, Mapping) else ():
                if name.lower() not in seen:
                    seen.add(name.lower())
                    names.append(name)
    return tuple(names)
