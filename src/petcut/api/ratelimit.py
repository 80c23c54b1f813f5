"""Per-client rate limits and API keys: one pure-ASGI layer inside :class:`EdgeMiddleware`.

Placement: ``app.add_middleware`` puts :class:`AbuseGuardMiddleware` inside Starlette's
ServerErrorMiddleware, itself inside the edge middleware, so a 429 or 401 sent from here carries CORS,
``Vary: Origin`` and ``X-Request-ID`` like every other response, and is answered before the body is read.

What is limited (docs/security.md): a token bucket per client and route on the routes of
:data:`DEFAULT_ROUTES` (plus any route ``PETCUT_RATE_LIMITS`` names). ``/health``, ``/ready``, ``/metrics``,
``/ui/``, preflights and every other route are never limited.

* Client: the peer address; ``X-Forwarded-For`` is believed only when the peer is in
  ``PETCUT_TRUSTED_PROXIES``, and then the right-most address that is not a trusted proxy is the client.
  IPv6 clients are grouped by /64 (one subscriber's prefix), so rotating addresses does not help.
* Bucket: capacity ``burst`` (default: the per-minute limit), refilled at ``per_minute / 60`` tokens a
  second; one request takes one token.
* Shared through Redis (``PETCUT_REDIS_URL``; an atomic Lua script) so every instance sees the same
  buckets; while Redis fails, each instance falls back to its own memory buckets (logged once, never a
  failed request). Memory buckets are bounded: a bucket that has refilled is the same as none and is
  dropped, and past ``PETCUT_RATE_LIMIT_MAX_CLIENTS`` the least recently used go first.
* Headers (draft-ietf-httpapi-ratelimit-headers-10): on every response of a limited route
  ``RateLimit-Policy: "<route>";q=<burst>;w=<seconds to refill it>`` and
  ``RateLimit: "<route>";r=<remaining>;t=<seconds until one more request is allowed>``; a 429 also has
  ``Retry-After`` (integer seconds until a token) and the JSON envelope with ``code: rate_limited`` and
  ``retry_after``.
* A valid API key replaces the client address as the bucket's owner and is limited by
  ``PETCUT_API_KEY_RATE_LIMIT_PER_MINUTE`` (0, the default: not limited).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from petcut.api.auth import ApiKeys, authenticate, same_origin
from petcut.api.errors import REQUEST_ID_KEY, envelope_bytes, new_request_id
from petcut.api.middleware import CorsPolicy
from petcut.config import RateLimitRule, Settings

log = logging.getLogger("petcut.api.ratelimit")

Clock = Callable[[], float]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: Limited routes by default: a factor of PETCUT_RATE_LIMIT_PER_MINUTE/_BURST, or a fixed rule.
#: /store-image gets twice the processing limit (the front-end stores several images per photo);
#: /warmup (an operator's route that runs an inference and may retry a failed load) a small fixed one.
DEFAULT_ROUTES: dict[str, float | RateLimitRule] = {
    "/api/v2/process-with-effects": 1.0,
    "/api/v2/remove-background": 1.0,
    "/store-image": 2.0,
    "/session/{session_id}/complete-order": 1.0,
    "/warmup": RateLimitRule(per_minute=6, burst=3),
}
#: Routes that need a valid API key when PETCUT_REQUIRE_API_KEY is on (except from browser pages of
#: allowed origins): the ones that do work or write.
PROTECTED_ROUTES = frozenset(
    {
        "/api/v2/process-with-effects",
        "/api/v2/remove-background",
        "/store-image",
        "/session/{session_id}/complete-order",
    }
)
REDIS_PREFIX = "petcut:rl:"
#: how long Redis is left alone after a failure (requests use the memory buckets meanwhile)
REDIS_RETRY_AFTER_S = 2.0
#: at most one "clients are being rate limited" log line per this many seconds
DENIAL_LOG_INTERVAL_S = 60.0
_MAX_HOPS = 64
_PARAM = re.compile(r"\{[^}/]*\}")


# --- limits ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limit:
    """A token bucket's shape: ``burst`` tokens, refilled at ``per_minute`` a minute."""

    name: str
    per_minute: int
    burst: int

    @property
    def rate(self) -> float:
        """Tokens a second."""
        return self.per_minute / 60.0

    @property
    def window_s(self) -> int:
        """Seconds an empty bucket takes to fill again."""
        return max(1, math.ceil(self.burst / self.rate))

    def policy_header(self) -> str:
        return f'"{self.name}";q={self.burst};w={self.window_s}'


@dataclass(frozen=True)
class Decision:
    allowed: bool
    limit: Limit
    tokens: float  # left after this request

    @property
    def remaining(self) -> int:
        return max(0, math.floor(self.tokens))

    @property
    def reset_s(self) -> int:
        """Seconds until one more request is allowed (0 when the bucket is full)."""
        if self.tokens >= self.limit.burst - 1e-9:
            return 0
        missing = self.remaining + 1 - self.tokens
        return max(1, math.ceil(missing / self.limit.rate - 1e-9))

    @property
    def retry_after(self) -> int:
        return max(1, self.reset_s)

    def headers(self) -> list[tuple[bytes, bytes]]:
        name = self.limit.name
        return [
            (b"ratelimit-policy", self.limit.policy_header().encode()),
            (b"ratelimit", f'"{name}";r={self.remaining};t={self.reset_s}'.encode()),
        ]


def _refill(tokens: float, updated: float, now: float, limit: Limit) -> float:
    return min(float(limit.burst), tokens + max(0.0, now - updated) * limit.rate)


class MemoryBuckets:
    """Token buckets in this process, bounded: least recently used first out."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max(1, max_entries)
        self.evicted = 0
        # key → (tokens, updated, full_at): least recently used first
        self._entries: OrderedDict[str, tuple[float, float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def take(self, key: str, limit: Limit, now: float) -> tuple[bool, float]:
        entry = self._entries.pop(key, None)
        tokens = float(limit.burst) if entry is None else _refill(entry[0], entry[1], now, limit)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._entries[key] = (tokens, now, now + (limit.burst - tokens) / limit.rate)
        self._sweep(now)
        return allowed, tokens

    def _sweep(self, now: float) -> None:
        """Drop, from the least recently used end, buckets that are full again (the same as no bucket)
        and whatever is over the bound."""
        entries = self._entries
        while entries:
            full_at = next(iter(entries.values()))[2]
            if full_at > now and len(entries) <= self.max_entries:
                return
            entries.popitem(last=False)
            self.evicted += 1


# An atomic token bucket: KEYS[1] = the bucket (hash: t = tokens, u = updated); ARGV = rate (tokens a
# second), burst, now (seconds). Returns {allowed (0/1), tokens left as a string}. The bucket expires
# once it would be full again: an absent bucket is a full one.
TOKEN_BUCKET_LUA = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 't', 'u')
local tokens = tonumber(state[1])
local updated = tonumber(state[2])
if tokens == nil or updated == nil then
  tokens = burst
else
  local elapsed = now - updated
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate)
end
local allowed = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
end
redis.call('HSET', KEYS[1], 't', string.format('%.6f', tokens), 'u', ARGV[3])
redis.call('EXPIRE', KEYS[1], math.ceil((burst - tokens) / rate) + 1)
return {allowed, string.format('%.6f', tokens)}
"""


class RedisBuckets:
    """The same buckets in Redis, shared by every instance. One short try per request (no retries):
    a failure marks Redis down for ``retry_after_s`` and the caller uses its memory buckets."""

    def __init__(self, url: str, *, timeout_s: float, retry_after_s: float = REDIS_RETRY_AFTER_S) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.retry_after_s = retry_after_s
        self.errors = 0
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
        self._script = self._client.register_script(TOKEN_BUCKET_LUA)
        self._down_until = 0.0
        self._down_logged = False

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def take(self, key: str, limit: Limit, now: float) -> tuple[bool, float] | None:
        """The decision, or None when Redis cannot give one now."""
        if not self.available:
            return None
        try:
            allowed, tokens = await self._script(
                keys=[REDIS_PREFIX + key], args=[repr(limit.rate), limit.burst, f"{now:.6f}"]
            )
            result = (int(allowed) == 1, float(tokens))
        except Exception as exc:  # ConnectionError, TimeoutError, ResponseError, a garbled reply
            self._failed(exc)
            return None
        if self._down_logged:
            self._down_logged = False
            log.warning("redis reachable again: rate limits are shared between instances again")
        return result

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._down_until = time.monotonic() + self.retry_after_s
        if not self._down_logged:
            self._down_logged = True
            log.warning(
                "redis unavailable for rate limiting; using this instance's memory buckets",
                extra={"error": f"{type(exc).__name__}: {exc}"},
            )

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except Exception:  # a dead server must not fail shutdown
            log.debug("redis close failed", exc_info=True)


class RateLimiter:
    """Takes a token: from Redis when configured and reachable, else from memory."""

    def __init__(self, memory: MemoryBuckets, redis: RedisBuckets | None = None, clock: Clock = time.time) -> None:
        self.memory = memory
        self.redis = redis
        self.clock = clock
        self.denied = 0
        self._denied_logged = 0
        self._last_denial_log = -math.inf

    async def hit(self, key: str, limit: Limit) -> Decision:
        now = self.clock()
        result = await self.redis.take(key, limit, now) if self.redis is not None else None
        if result is None:
            result = self.memory.take(key, limit, now)
        decision = Decision(result[0], limit, result[1])
        if not decision.allowed:
            self._count_denial()
        return decision

    def _count_denial(self) -> None:
        self.denied += 1
        mono = time.monotonic()
        if mono - self._last_denial_log >= DENIAL_LOG_INTERVAL_S:
            log.warning(
                "clients are being rate limited",
                extra={"denied": self.denied - self._denied_logged, "denied_total": self.denied},
            )
            self._last_denial_log = mono
            self._denied_logged = self.denied

    async def close(self) -> None:
        if self.redis is not None:
            await self.redis.close()


# --- clients ------------------------------------------------------------------------------------------
def parse_ip(value: str) -> IPAddress | None:
    """An address from a peer or an X-Forwarded-For hop ("1.2.3.4", "1.2.3.4:80", "[::1]:80", '"::1"')."""
    text = value.strip().strip('"').strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientResolver:
    """Who a request comes from, as a bucket owner: an IPv4 address or an IPv6 /64."""

    def __init__(self, trusted: Iterable[str]) -> None:
        self.networks = [ipaddress.ip_network(item, strict=False) for item in trusted]

    def is_trusted(self, address: IPAddress) -> bool:
        return any(address in network for network in self.networks)

    def address(self, scope: Scope) -> IPAddress | None:
        client = scope.get("client")
        peer = parse_ip(str(client[0])) if client else None
        if peer is None or not self.networks or not self.is_trusted(peer):
            return peer
        hops: list[str] = []
        for name, value in scope.get("headers") or ():
            if name.lower() == b"x-forwarded-for":
                hops.extend(value.decode("latin-1").split(","))
        current = peer
        for hop in reversed(hops[-_MAX_HOPS:]):
            address = parse_ip(hop)
            if address is None:  # garbage where a trusted proxy's hop should be: stop at that proxy
                break
            current = address
            if not self.is_trusted(address):
                break
        return current

    def client_id(self, scope: Scope) -> str:
        address = self.address(scope)
        if address is None:
            return "unknown"
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.ip_network(f"{address}/64", strict=False))
        return str(address)


# --- routes -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GuardedRoute:
    template: str
    pattern: re.Pattern[str]
    limit: Limit | None
    protected: bool


def _canonical(template: str) -> str:
    return _PARAM.sub("{}", template.rstrip("/") or "/")


def _route_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}/]*\})", template.rstrip("/") or "/")
    regex = "".join(
        (".+" if part.endswith(":path}") else "[^/]+") if _PARAM.fullmatch(part) else re.escape(part) for part in parts
    )
    return re.compile(regex)


def _policy_name(template: str) -> str:
    segments = [s for s in template.split("/") if s and not _PARAM.fullmatch(s)]
    return re.sub(r"[^a-z0-9_-]", "-", (segments[-1] if segments else "root").lower())


def build_routes(settings: Settings) -> list[GuardedRoute]:
    """Limited and protected routes from the defaults and ``PETCUT_RATE_LIMITS``."""
    default_per_minute = settings.rate_limit_per_minute
    default_burst = settings.rate_limit_burst or default_per_minute
    rules: dict[str, tuple[str, tuple[int, int] | None]] = {}
    for template, spec in DEFAULT_ROUTES.items():
        if isinstance(spec, RateLimitRule):
            shape = (spec.per_minute, spec.burst or spec.per_minute)
        else:
            shape = (round(default_per_minute * spec), max(1, round(default_burst * spec)))
        rules[_canonical(template)] = (template, shape)
    for template, rule in settings.rate_limits.items():
        rules[_canonical(template)] = (template, (rule.per_minute, rule.burst or rule.per_minute))
    for template in PROTECTED_ROUTES:
        rules.setdefault(_canonical(template), (template, None))
    protected = {_canonical(t) for t in PROTECTED_ROUTES}
    routes = []
    for canonical, (template, shape) in sorted(rules.items()):
        limit = None
        if default_per_minute > 0 and shape is not None and shape[0] > 0:
            limit = Limit(_policy_name(template), shape[0], shape[1])
        if limit is not None or canonical in protected:
            routes.append(GuardedRoute(template, _route_pattern(template), limit, canonical in protected))
    return routes


# --- the middleware -------------------------------------------------------------------------------------
class AbuseGuard:
    """Everything the middleware needs, built once per app (``app.state.abuse_guard``)."""

    def __init__(
        self,
        routes: list[GuardedRoute],
        *,
        limiter: RateLimiter,
        clients: ClientResolver,
        keys: ApiKeys,
        require_key: bool,
        key_limit: int,
        cors: CorsPolicy,
    ) -> None:
        self.routes = routes
        self.limiter = limiter
        self.clients = clients
        self.keys = keys
        self.require_key = require_key
        self.key_limit = key_limit
        self.cors = cors

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Clock | None = None) -> AbuseGuard:
        redis = None
        if settings.redis_url and settings.rate_limit_per_minute > 0:
            redis = RedisBuckets(settings.redis_url, timeout_s=settings.redis_timeout_s)
        limiter = RateLimiter(MemoryBuckets(settings.rate_limit_max_clients), redis, clock or time.time)
        keys = ApiKeys(settings.api_key_hashes)
        if settings.require_api_key and not keys.enabled:
            log.warning("PETCUT_REQUIRE_API_KEY is on but no PETCUT_API_KEY_HASHES: only browser origins are served")
        return cls(
            build_routes(settings),
            limiter=limiter,
            clients=ClientResolver(settings.trusted_proxies),
            keys=keys,
            require_key=settings.require_api_key,
            key_limit=settings.api_key_rate_limit_per_minute,
            cors=CorsPolicy(settings.cors_origins, settings.cors_origin_regex),
        )

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

    def is_browser(self, headers: Headers) -> bool:
        """A page of an allowed origin, or of petcut itself (Origin names the Host). Non-browser clients
        can send any Origin: this spares the shop's front-end a key, it does not authenticate."""
        origin = headers.get("origin")
        return bool(origin) and (self.cors.allows(origin) or same_origin(origin, headers.get("host")))

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
    RateLimit headers on the limited routes' other responses. Closes the Redis client at shutdown."""

    def __init__(self, app: ASGIApp, *, guard: AbuseGuard) -> None:
        self.app = app
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._closing(send))
            return
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
            browser=guard.is_browser(headers),
        )
        if outcome.error is not None:
            message, challenge = outcome.error
            await _send_error(scope, send, 401, "unauthorized", message, [(b"www-authenticate", challenge.encode())])
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
            await _send_error(
                scope,
                send,
                429,
                "rate_limited",
                f"Too many requests; try again in {retry} s.",
                [(b"retry-after", str(retry).encode()), *decision.headers()],
                retry_after=retry,
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                response_headers = MutableHeaders(scope=message)
                for name, value in decision.headers():
                    response_headers[name.decode()] = value.decode()
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _closing(self, send: Send) -> Send:
        async def closing_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await self.guard.limiter.close()
            await send(message)

        return closing_send


async def _send_error(
    scope: Scope,
    send: Send,
    status: int,
    code: str,
    message: str,
    headers: list[tuple[bytes, bytes]],
    **extra: Any,
) -> None:
    """The JSON envelope, answered before the body is read (the edge middleware adds CORS and the id)."""
    request_id = str(scope.get(REQUEST_ID_KEY) or new_request_id())
    body = envelope_bytes(code, message, request_id, **extra)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def install(app: Any, settings: Settings, *, clock: Clock | None = None) -> AbuseGuard:
    """Add the guard to ``app`` (a FastAPI app not yet started); returns it (also ``app.state.abuse_guard``)."""
    guard = AbuseGuard.from_settings(settings, clock=clock)
    app.state.abuse_guard = guard
    app.add_middleware(AbuseGuardMiddleware, guard=guard)
    return guard
