"""The one Redis client of a process and its outage breaker, shared by the result cache and the rate limiter.

Redis is optional (``PETCUT_REDIS_URL``) and never a reason to fail a request (docs/security.md,
docs/api.md): every call is one short try (no retries, ``PETCUT_REDIS_TIMEOUT_S``), and after a failure
:class:`OutageBreaker` keeps every user off Redis for ``retry_after_s`` while each serves from its fallback
(the cache: a miss; the rate limiter: this instance's memory buckets). The start and the end of an outage
are told once to each user that watches the breaker, so each logs its own line once per outage, not once
per request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger(__name__)

#: how long Redis is left alone after a failure
RETRY_AFTER_S = 2.0

OnDown = Callable[[str, BaseException], None]  # (the failed operation, the error)
OnUp = Callable[[], None]


class OutageBreaker:
    """Open for ``retry_after_s`` after each failure (``available`` is False meanwhile)."""

    def __init__(self, retry_after_s: float = RETRY_AFTER_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after_s = retry_after_s
        self.clock = clock
        self.down = False
        self._down_until = 0.0
        self._watchers: list[tuple[OnDown, OnUp]] = []

    def watch(self, on_down: OnDown, on_up: OnUp) -> None:
        """Be told once when an outage starts and once when Redis answers again."""
        self._watchers.append((on_down, on_up))

    @property
    def available(self) -> bool:
        return self.clock() >= self._down_until

    def failed(self, operation: str, exc: BaseException) -> None:
        self._down_until = self.clock() + self.retry_after_s
        if not self.down:
            self.down = True
            for on_down, _ in self._watchers:
                on_down(operation, exc)

    def succeeded(self) -> None:
        if self.down:
            self.down = False
            for _, on_up in self._watchers:
                on_up()

    def reset(self) -> None:
        """Try Redis again on the next call, without waiting for the back-off."""
        self._down_until = 0.0


class RedisLink:
    """A ``redis.asyncio`` client with short timeouts and no retries, and its breaker. Connects lazily."""

    def __init__(self, url: str, *, timeout_s: float, retry_after_s: float = RETRY_AFTER_S) -> None:
        import redis.asyncio as redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.client: Redis = redis.Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry_on_timeout=False,
            retry=Retry(NoBackoff(), 0),  # one try: a dead Redis costs one short timeout, then the back-off
        )
        self.breaker = OutageBreaker(retry_after_s)

    @property
    def available(self) -> bool:
        return self.breaker.available

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception:  # closing a client to a dead server must not fail shutdown
            log.debug("redis close failed", exc_info=True)


def open_redis(url: str | None, *, timeout_s: float, retry_after_s: float = RETRY_AFTER_S) -> RedisLink | None:
    """The process's Redis link, or None without ``PETCUT_REDIS_URL``."""
    return RedisLink(url, timeout_s=timeout_s, retry_after_s=retry_after_s) if url else None


def error_text(exc: BaseException) -> str:
    """``Type: message`` for a log line's ``error`` field."""
    return f"{type(exc).__name__}: {exc}"
