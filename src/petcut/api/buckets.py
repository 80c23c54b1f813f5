"""Token buckets: in this process (bounded) and in Redis (an atomic Lua script), and the limiter that
takes a token from the one available (docs/security.md).

* Bucket: capacity ``burst``, refilled at ``per_minute / 60`` tokens a second; one request takes one token.
* Shared through Redis (``PETCUT_REDIS_URL``) so every instance sees the same buckets; while Redis fails,
  each instance falls back to its own memory buckets (logged once per outage, never a failed request).
  Memory buckets are bounded: a bucket that has refilled is the same as none and is dropped, and past
  ``PETCUT_RATE_LIMIT_MAX_CLIENTS`` the least recently used go first.
* Headers (draft-ietf-httpapi-ratelimit-headers-10): ``RateLimit-Policy: "<route>";q=<burst>;w=<seconds to
  refill it>`` and ``RateLimit: "<route>";r=<remaining>;t=<seconds until one more request is allowed>``.

Why not the ``limits`` library (5.8, what slowapi builds on): it has fixed-window, moving-window and
sliding-window-counter strategies but no token bucket, so it cannot give what the service promises and
tests/abuse pin: a refill of one token every ``60 / per_minute`` seconds after a burst (5 a minute →
``Retry-After: 12``, not the 60 s a window of 5 per minute answers), fractional tokens, and ``t`` in the
``RateLimit`` header as the time to the next token. Its storages read ``time.time()`` themselves (no
clock to inject; the Lua script here takes ``now`` as an argument), its memory storage is unbounded
(expired entries are swept by a timer thread, nothing caps the number of clients), and it has no fallback
from Redis to memory (slowapi adds one above it): the breaker and the bound would be written here anyway.
"""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from petcut.redis_client import RedisLink, error_text

log = logging.getLogger("petcut.api.ratelimit")

Clock = Callable[[], float]

REDIS_PREFIX = "petcut:rl:"
#: at most one "clients are being rate limited" log line per this many seconds
DENIAL_LOG_INTERVAL_S = 60.0


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
    """The same buckets in Redis, shared by every instance, through the process's
    :class:`~petcut.redis_client.RedisLink` (shared with the result cache). One short try per request (no
    retries): a failure opens the link's breaker and the caller uses its memory buckets meanwhile."""

    def __init__(self, link: RedisLink) -> None:
        """``link``: the process's Redis link (its owner, the app, closes it)."""
        self.link = link
        self.errors = 0
        self._script = self.link.client.register_script(TOKEN_BUCKET_LUA)
        self.link.breaker.watch(self._outage_started, self._outage_ended)

    @property
    def available(self) -> bool:
        return self.link.available

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
            self.errors += 1
            self.link.breaker.failed("rate limit", exc)
            return None
        self.link.breaker.succeeded()
        return result

    @staticmethod
    def _outage_started(operation: str, exc: BaseException) -> None:
        log.warning(
            "redis unavailable for rate limiting; using this instance's memory buckets",
            extra={"error": error_text(exc)},
        )

    @staticmethod
    def _outage_ended() -> None:
        log.warning("redis reachable again: rate limits are shared between instances again")


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
