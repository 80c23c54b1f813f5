"""The middleware stack, declared once as an ordered list, outermost first (docs/architecture.md).

``create_app`` declares it; :class:`MiddlewareStack` builds it around what FastAPI builds itself. The order
petcut runs, outermost first::

    RequestMetricsMiddleware   observes only: counts and times every response, whoever answered it
    EdgeMiddleware             CORS, X-Request-ID, body limit and timeout, preflights, the last-resort 500
    SERVER_ERRORS              Starlette's ServerErrorMiddleware: the app's JSON 500 for unhandled errors
    AbuseGuardMiddleware       API keys (401) and rate limits (429), before the body is read
    (FastAPI's ExceptionMiddleware, the routes' exception handlers, then the router)

Why the metrics sit outside the edge: the edge answers some requests itself (a 413 from
``Content-Length``, a preflight, the 503 for a request cancelled at shutdown, the 500 when nothing else
answered), and the metrics must count those too; they never write a response or a header, so the edge
is still the outermost layer that answers. The edge sits outside ServerErrorMiddleware so that the JSON
500 it sends for an unhandled error carries CORS and X-Request-ID. The guard sits inside both, so its 401
and 429 carry them as well and are counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final

from starlette.middleware import Middleware
from starlette.types import ASGIApp


class _ServerErrors:
    """Where Starlette's ServerErrorMiddleware (with the app's 500 handler) sits in the declared order."""

    def __repr__(self) -> str:
        return "SERVER_ERRORS"


SERVER_ERRORS: Final = _ServerErrors()

Layer = Middleware | _ServerErrors


class MiddlewareStack:
    """An ordered list of layers, outermost first, with :data:`SERVER_ERRORS` once among them. The layers
    after it become the app's ``user_middleware`` (Starlette puts them between ServerErrorMiddleware and
    the exception handlers); the ones before it wrap what FastAPI builds."""

    def __init__(self, *layers: Layer) -> None:
        if sum(layer is SERVER_ERRORS for layer in layers) != 1:
            raise ValueError("the stack names SERVER_ERRORS exactly once")
        self.layers = layers

    @property
    def outside(self) -> tuple[Middleware, ...]:
        """Outside ServerErrorMiddleware, outermost first."""
        split = self.layers.index(SERVER_ERRORS)
        return tuple(layer for layer in self.layers[:split] if isinstance(layer, Middleware))

    @property
    def inside(self) -> list[Middleware]:
        """Between ServerErrorMiddleware and the exception handlers, outermost first."""
        split = self.layers.index(SERVER_ERRORS)
        return [layer for layer in self.layers[split + 1 :] if isinstance(layer, Middleware)]

    def names(self) -> list[str]:
        """The declared order, by class name (``ServerErrorMiddleware`` for the marker)."""
        return [
            "ServerErrorMiddleware" if isinstance(layer, _ServerErrors) else layer.cls.__name__  # type: ignore[attr-defined]
            for layer in self.layers
        ]

    def build(self, framework: Callable[[list[Middleware]], ASGIApp]) -> ASGIApp:
        """``framework(inside)`` builds ServerErrorMiddleware → ``inside`` → exception handlers → router;
        the outside layers are wrapped around it."""
        app = framework(self.inside)
        for cls, args, kwargs in reversed(self.outside):
            app = cls(app, *args, **kwargs)
        return app


def layers(app: ASGIApp | None) -> Iterator[ASGIApp]:
    """A built stack's layers, outermost first (each middleware's ``app`` is the next one in)."""
    while app is not None:
        yield app
        app = getattr(app, "app", None)
