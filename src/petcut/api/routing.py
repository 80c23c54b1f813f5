"""The app's routes as they are served: the one walk over them (the rate-limit table, the exposed headers,
``Allow`` on a 405 and the metrics' route templates all read routes through it)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from fastapi.routing import iter_route_contexts
from starlette.routing import BaseRoute


def served_routes(routes: Sequence[BaseRoute]) -> Iterator[Any]:
    """Every route with its effective path, methods, dependencies and responses (FastAPI keeps included
    routers nested); a mount is yielded as itself (``.route``)."""
    return iter(iter_route_contexts(routes))
