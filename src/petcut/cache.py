"""Result cache: an in-memory LRU bounded in bytes (default) and Redis (shared between instances).

Values are opaque bytes (encoded images); keys come from :func:`cache_key`, which folds in everything
that changes a result: the image content, the model (and its mode or variant), resize, precision, input
size, foreground method, the colour setting, the effect and its parameters, the output format and
petcut's version. A cache failure is never a request failure: Redis errors become misses, are logged once
per outage and counted (the Redis client and its outage breaker are :mod:`petcut.redis_client`'s, shared
with the rate limiter).
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from petcut import __version__
from petcut.config import Settings
from petcut.redis_client import RedisLink, error_text

log = logging.getLogger(__name__)


def content_digest(data: bytes) -> str:
    """A short, collision-resistant name for uploaded bytes."""
    return hashlib.blake2b(data, digest_size=20).hexdigest()


def cache_key(settings: Settings, digest: str, kind: str, **parts: object) -> str:
    """The key for one result of ``kind`` (e.g. "cutout", "effect") of the image with ``digest``."""
    model = {
        "model": settings.model_id,  # inspyrenet-<mode> or isnet-<variant>
        "mode": settings.mode,
        "resize": settings.resize,
        "precision": settings.precision,
        "target": settings.target_size,
        "fg": settings.foreground,
        "color": settings.color,
        "v": __version__,
    }
    extra = json.dumps({**model, **parts}, sort_keys=True, separators=(",", ":"), default=str)
    return f"petcut:{kind}:{digest}:{hashlib.blake2b(extra.encode(), digest_size=12).hexdigest()}"


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    errors: int = 0
    sets: int = 0
    skipped_too_large: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class ResultCache(Protocol):
    """What the pipeline needs from a cache. Implementations never raise on backend failure."""

    stats: CacheStats
    backend: str

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes) -> None: ...

    async def close(self) -> None: ...


class MemoryCache:
    """A thread-safe LRU whose bound is the total size of the values, in bytes."""

    backend = "memory"

    def __init__(self, max_bytes: int, max_item_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes
        self.max_item_bytes = min(max_item_bytes or max_bytes, max_bytes)
        self.stats = CacheStats()
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @property
    def size_bytes(self) -> int:
        return self._size

    def __len__(self) -> int:
        return len(self._items)

    async def get(self, key: str) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is None:
                self.stats.misses += 1
                return None
            self._items.move_to_end(key)
            self.stats.hits += 1
            return value

    async def set(self, key: str, value: bytes) -> None:
        if len(value) > self.max_item_bytes:
            self.stats.skipped_too_large += 1
            return
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._size -= len(old)
            self._items[key] = value
            self._size += len(value)
            while self._size > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)
            self.stats.sets += 1

    async def close(self) -> None:
        with self._lock:
            self._items.clear()
            self._size = 0


class RedisCache:
    """Redis with short timeouts (the process's :class:`~petcut.redis_client.RedisLink`, shared with the rate
    limiter). While Redis is unreachable every call is a miss; after a failure, Redis is not asked again for
    the breaker's back-off, so a dead server costs no latency per request."""

    backend = "redis"

    def __init__(self, link: RedisLink, *, ttl_s: int, max_item_bytes: int) -> None:
        """``link``: the process's Redis link (its owner, the app, closes it)."""
        self.link = link
        self.url = link.url
        self.ttl_s = ttl_s
        self.max_item_bytes = max_item_bytes
        self.stats = CacheStats()
        self.link.breaker.watch(self._outage_started, self._outage_ended)

    @property
    def available(self) -> bool:
        return self.link.available

    def _outage_started(self, operation: str, exc: BaseException) -> None:
        log.warning(
            "redis cache unavailable; serving without it",
            extra={"operation": operation, "error": error_text(exc)},
        )

    def _outage_ended(self) -> None:
        log.warning("redis cache reachable again")

    def _failed(self, operation: str, exc: BaseException) -> None:
        self.stats.errors += 1
        self.link.breaker.failed(operation, exc)

    async def get(self, key: str) -> bytes | None:
        if not self.available:
            self.stats.misses += 1
            return None
        try:
            value = await self.link.client.get(key)
        except Exception as exc:  # redis raises its own ConnectionError, TimeoutError, ResponseError
            self._failed("get", exc)
            self.stats.misses += 1
            return None
        self.link.breaker.succeeded()
        if value is None:
            self.stats.misses += 1
            return None
        self.stats.hits += 1
        return value.encode() if isinstance(value, str) else bytes(value)  # str only with decode_responses

    async def set(self, key: str, value: bytes) -> None:
        if len(value) > self.max_item_bytes:
            self.stats.skipped_too_large += 1
            return
        if not self.available:
            return
        try:
            await self.link.client.set(key, value, ex=self.ttl_s)
        except Exception as exc:
            self._failed("set", exc)
            return
        self.link.breaker.succeeded()
        self.stats.sets += 1

    async def close(self) -> None:
        """Nothing of its own to close: the link belongs to the app."""


def open_cache(settings: Settings, redis: RedisLink | None) -> ResultCache:
    """Redis through the process's link when there is one (``PETCUT_REDIS_URL``), else memory."""
    max_item = int(settings.cache_max_item_mb * 1024 * 1024)
    if redis is not None:
        return RedisCache(redis, ttl_s=settings.cache_ttl_s, max_item_bytes=max_item)
    return MemoryCache(int(settings.cache_max_mb * 1024 * 1024), max_item)


# --- cache values: a small JSON header and the image bytes ----------------------------------------------
def pack(meta: Mapping[str, Any], payload: bytes) -> bytes:
    header = json.dumps(meta, separators=(",", ":")).encode()
    return struct.pack(">I", len(header)) + header + payload


def unpack(blob: bytes) -> tuple[dict[str, Any], bytes]:
    (size,) = struct.unpack_from(">I", blob)
    return json.loads(blob[4 : 4 + size]), blob[4 + size :]
