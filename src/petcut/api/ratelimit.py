"""Per-client rate limits and API keys: the policy table and one pure-ASGI layer inside the edge middleware.

Placement (:mod:`petcut.api.stack`): :class:`AbuseGuardMiddleware` runs inside Starlette's
ServerErrorMiddleware, itself inside the edge middleware, so a 429 or 401 sent from here carries CORS,
``Vary: Origin`` and ``X-Request-ID`` like every other response, is counted by the request metrics, and
is answered before the body is read.

What is limited (docs/security.md): each route declares its limit class and whether it needs an API key
where it is defined (:func:`petcut.api.policy.policy`); :func:`build_routes` turns the app's declarations,
and any route ``PETCUT_RATE_LIMITS`` names, into the guard's table when the middleware stack is built.
``/health``, ``/ready``, ``/metrics``, ``/ui/``, preflights and every route without a policy are never
limited. The buckets are :mod:`petcut.api.buckets`' and the client address :mod:`petcut.api.clients`'.

* A 429 has ``Retry-After`` (integer seconds until a token), the ``RateLimit`` headers and the JSON
  envelope with ``code: rate_limited`` and ``retry_after``; the limited routes' other responses carry the
  ``RateLimit`` headers too.
* A valid API key replaces the client address as the bucket's owner and is limited by
  ``PETCUT_API_KEY_RATE_LIMIT_PER_MINUTE`` (0, the default: not limited).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from petcut.api.auth import ApiKeys, authenticate
from petcut.api.buckets import Clock, Limit, MemoryBuckets, RateLimiter, RedisBuckets
from petcut.api.clients import ClientResolver
from petcut.api.cors import CorsPolicy
from petcut.api.errors import REQUEST_ID_KEY, new_request_id, send_error
from petcut.api.policy import declared_policies
from petcut.config import RateLimitRule, Settings
from petcut.errors import PetcutError
from petcut.redis_client import RedisLink

log = logging.getLogger("petcut.api.ratelimit")

_PARAM = re.compile(r"\{[^}/]*\}")
#: on the guard's own answers: a 401 or 429 is about this request, never to be cached
NO_STORE = {"Cache-Control": "no-store"}


class RateLimited(PetcutError):
    """A client (or API key) past its limit."""

    status = 429
    code = "rate_limited"
    default_message = "Too many requests."
    description = "Too many requests from this client (or API key)."
    response_headers = ("Retry-After", "RateLimit-Policy", "RateLimit")


# --- the table ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GuardedRoute:
    template: str
    pattern: re.Pattern[str]
    limit: Limit | None
    protected: bool


def _canonical(template: str) -> str:
    return _PARAM.sub("{}", template.rstrip("/") or "/")


def _route_pattern(template: str) -> re.Pattern[str]:
    """Starlette's own matcher for the template, without a trailing slash (paths are matched without one)."""
    return compile_path(template.rstrip("/") or "/")[0]


def _policy_name(template: str) -> str:
    segments = [s for s in template.split("/") if s and not _PARAM.fullmatch(s)]
    return re.sub(r"[^a-z0-9_-]", "-", (segments[-1] if segments else "root").lower())


def build_routes(settings: Settings, routes: Sequence[BaseRoute]) -> list[GuardedRoute]:
    """Limited and protected routes: what ``routes`` declare, with ``PETCUT_RATE_LIMITS`` over it."""
    default_per_minute = settings.rate_limit_per_minute
    default_burst = settings.rate_limit_burst or default_per_minute
    rules: dict[str, tuple[str, tuple[int, int] | None]] = {}
    protected: set[str] = set()
    for template, declared in declared_policies(routes).items():
        shape: tuple[int, int] | None = None
        if isinstance(declared.limit, RateLimitRule):
            shape = (declared.limit.per_minute, declared.limit.burst or declared.limit.per_minute)
        elif declared.limit is not None:
            shape = (round(default_per_minute * declared.limit), max(1, round(default_burst * declared.limit)))
        rules[_canonical(template)] = (template, shape)
        if declared.protected:
            protected.add(_canonical(template))
    for template, rule in settings.rate_limits.items():
        rules[_canonical(template)] = (template, (rule.per_minute, rule.burst or rule.per_minute))
    table = []
    for canonical, (template, shape) in sorted(rules.items()):
        limit = None
        if default_per_minute > 0 and shape is not None and shape[0] > 0:
            limit = Limit(_policy_name(template), shape[0], shape[1])
        if limit is not None or canonical in protected:
            table.append(GuardedRoute(template, _route_pattern(template), limit, canonical in protected))
    return table


# --- the guard ------------------------------------------------------------------------------------------
class AbuseGuard:
    """Everything the middleware needs, built once per app (``app.state.abuse_guard``); its route table is
    filled from the app's routes by :meth:`bind` when the middleware stack is built."""

    def __init__(
        self,
        settings: Settings,
        *,
        limiter: RateLimiter,
        clients: ClientResolver,
        keys: ApiKeys,
        cors: CorsPolicy,
    ) -> None:
        self.settings = settings
        self.routes: list[GuardedRoute] = []
        self.limiter = limiter
        self.clients = clients
        self.keys = keys
        self.require_key = settings.require_api_key
        self.key_limit = settings.api_key_rate_limit_per_minute
        self.cors = cors

    @classmethod
    def from_settings(
        cls, settings: Settings, *, cors: CorsPolicy, redis: RedisLink | None = None, clock: Clock | None = None
    ) -> AbuseGuard:
        """``redis``: the process's shared link (buckets shared between instances when limits are on)."""
        buckets = RedisBuckets(redis) if redis is not None and settings.rate_limit_per_minute > 0 else None
        limiter = RateLimiter(MemoryBuckets(settings.rate_limit_max_clients), buckets, clock or time.time)
        keys = ApiKeys(settings.api_key_hashes)
        if settings.require_api_key and not keys.enabled:
            log.warning("PETCUT_REQUIRE_API_KEY is on but no PETCUT_API_KEY_HASHES: only browser origins are served")
        return cls(settings, limiter=limiter, clients=ClientResolver(settings.trusted_proxies), keys=keys, cors=cors)

    def bind(self, routes: Sequence[BaseRoute]) -> None:
        """The table from the policies ``routes`` declare (the app's, complete once it starts)."""
        self.routes = build_routes(self.settings, routes)

    def match(self, scope: Scope) -> GuardedRoute | None:
        path = str(scope.get("path") or "/")
        root = str(scope.get("root_path") or "")
        if root and path.startswith(root):
            path = path[len(root) :]
        path = path.rstrip("/") or "/"
        for route in self.routes:
            if route.pattern.fullmatch(path):
                return route
        return None

    def bucket(self, route: GuardedRoute, scope: Scope, key_id: str | None) -> tuple[str, Limit] | None:
        if key_id is not None:
            if self.key_limit <= 0 or route.limit is None:
                return None
            return f"key:{key_id}:{_canonical(route.template)}", Limit("api-key", self.key_limit, self.key_limit)
        if route.limit is None:
            return None
        return f"ip:{self.clients.client_id(scope)}:{_canonical(route.template)}", route.limit


class AbuseGuardMiddleware:
    """Pure ASGI: 401 for a missing/invalid key where one is needed, 429 past a client's limit, and the
    RateLimit headers on the limited routes' other responses. ``routes``: the app's (live) route list,
    read here, when Starlette builds the stack on the first ASGI event (the lifespan startup)."""

    def __init__(self, app: ASGIApp, *, guard: AbuseGuard, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.guard = guard
        guard.bind(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":
            await self.app(scope, receive, send)
            return
        guard = self.guard
        route = guard.match(scope)
        if route is None:
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        outcome = authenticate(
            headers,
            guard.keys,
            required=guard.require_key and route.protected,
            browser=guard.cors.is_browser_page(headers.get("origin"), headers.get("host")),
        )
        if outcome.error is not None:
            await send_error(send, outcome.error, _request_id(scope), NO_STORE)
            return
        if outcome.key_id is not None:
            scope.setdefault("state", {})["api_key_id"] = outcome.key_id
        bucket = guard.bucket(route, scope, outcome.key_id)
        if bucket is None:
            await self.app(scope, receive, send)
            return
        decision = await guard.limiter.hit(*bucket)
        if not decision.allowed:
            retry = decision.retry_after
            refused = RateLimited(
                f"Too many requests; try again in {retry} s.",
                retry_after=retry,
                headers={name.decode(): value.decode() for name, value in decision.headers()},
            )
            await send_error(send, refused, _request_id(scope), NO_STORE)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in decision.headers():
                    response_headers[name.decode()] = value.decode()
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _request_id(scope: Scope) -> str:
    """The edge middleware's id for this request (a fresh one outside it)."""
    return str(scope.get(REQUEST_ID_KEY) or new_request_id())
