"""The result cache: memory LRU bounded in bytes, and Redis (real server) that may die and return."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from petcut.cache import MemoryCache, RedisCache, cache_key, content_digest, open_cache
from petcut.config import Settings
from petcut.redis_client import RedisLink, open_redis


def run(coro):
    return asyncio.run(coro)


def test_memory_lru_is_bounded_in_bytes_and_evicts_least_recent() -> None:
    cache = MemoryCache(max_bytes=100)

    async def scenario() -> None:
        await cache.set("a", b"x" * 40)
        await cache.set("b", b"y" * 40)
        assert await cache.get("a") == b"x" * 40  # a is now most recent
        await cache.set("c", b"z" * 40)  # 120 bytes > 100: evicts b, the least recent
        assert await cache.get("b") is None
        assert await cache.get("a") is not None and await cache.get("c") is not None

    run(scenario())
    assert cache.size_bytes == 80
    assert len(cache) == 2
    assert (cache.stats.hits, cache.stats.misses) == (3, 1)


def test_memory_skips_items_over_the_item_limit() -> None:
    cache = MemoryCache(max_bytes=1000, max_item_bytes=10)
    run(cache.set("big", b"0" * 11))
    assert run(cache.get("big")) is None
    assert cache.stats.skipped_too_large == 1


def test_replacing_a_key_keeps_the_size_right() -> None:
    cache = MemoryCache(max_bytes=1000)
    run(cache.set("k", b"1" * 100))
    run(cache.set("k", b"2" * 10))
    assert cache.size_bytes == 10 and run(cache.get("k")) == b"2" * 10


def test_key_changes_with_everything_that_changes_a_result() -> None:
    digest = content_digest(b"photo")
    base = Settings(mode="fast", resize="static")
    key = cache_key(base, digest, "effect", effect="popart", params={"a": 1}, fmt="png")
    assert key == cache_key(base, digest, "effect", fmt="png", params={"a": 1}, effect="popart")
    same = {"effect": "popart", "params": {"a": 1}, "fmt": "png"}
    variants = [
        cache_key(Settings(mode="base", resize="static"), digest, "effect", **same),
        cache_key(Settings(mode="fast", resize="dynamic"), digest, "effect", **same),
        cache_key(Settings(mode="fast", precision="bf16"), digest, "effect", **same),
        cache_key(base, content_digest(b"other"), "effect", **same),
        cache_key(base, digest, "effect", effect="popart", params={"a": 2}, fmt="png"),
        cache_key(base, digest, "effect", effect="popart", params={"a": 1}, fmt="webp"),
        cache_key(base, digest, "cutout"),
    ]
    assert len({key, *variants}) == len(variants) + 1


def test_open_cache_picks_the_backend() -> None:
    for settings, backend in ((Settings(), "memory"), (Settings(redis_url="redis://127.0.0.1:1/0"), "redis")):
        link = open_redis(settings.redis_url, timeout_s=settings.redis_timeout_s)  # as create_app does
        assert open_cache(settings, link).backend == backend


def test_redis_round_trip_ttl_and_item_limit(redis_server) -> None:
    async def scenario() -> None:
        cache = RedisCache(RedisLink(redis_server.url, timeout_s=0.25), ttl_s=1, max_item_bytes=1000)
        await cache.set("k", b"value")
        assert await cache.get("k") == b"value"
        await cache.set("huge", b"0" * 1001)
        assert await cache.get("huge") is None
        await asyncio.sleep(2.1)
        assert await cache.get("k") is None  # expired
        await cache.link.close()

    run(scenario())


def test_redis_dying_costs_hits_only_and_hits_resume(redis_server, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        link = RedisLink(redis_server.url, timeout_s=0.2, retry_after_s=0.3)
        cache = RedisCache(link, ttl_s=60, max_item_bytes=10_000)
        await cache.set("k", b"v")
        assert await cache.get("k") == b"v"

        redis_server.stop()
        started = time.monotonic()
        assert await cache.get("k") is None  # a miss, not an exception
        await cache.set("k2", b"v2")  # silently skipped
        assert await cache.get("k") is None
        assert time.monotonic() - started < 2.0  # short timeouts, then no retries during the back-off
        assert cache.stats.errors >= 1

        redis_server.start()  # empty again: the old value is gone, new ones are cached
        await asyncio.sleep(0.4)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            await cache.set("k3", b"v3")
            if await cache.get("k3") == b"v3":
                break
            await asyncio.sleep(0.2)
        assert await cache.get("k3") == b"v3"
        await cache.link.close()

    with caplog.at_level(logging.WARNING, logger="petcut.cache"):
        run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    assert "redis cache unavailable; serving without it" in messages
    assert "redis cache reachable again" in messages


def test_the_model_is_part_of_every_cache_key() -> None:
    """IS-Net and InSPyReNet (and IS-Net's two variants) never share a cached result."""

    settings = [Settings(), Settings(model="isnet"), Settings(model="isnet", isnet_variant="small")]
    for kind, parts in (("cutout", {}), ("remove", {"fmt": "png"}), ("effect", {"effect": "color"})):
        keys = {cache_key(s, "d" * 40, kind, **parts) for s in settings}
        assert len(keys) == 3, kind
