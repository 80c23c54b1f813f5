"""Limits shared by two instances through a real Redis (the atomic Lua bucket), and Redis dying mid-test:
each instance falls back to its memory buckets, logs it once and keeps serving."""

from __future__ import annotations

import logging

import pytest

from petcut.api.buckets import Limit, RedisBuckets
from petcut.model.runtime import State
from petcut.redis_client import RedisLink
from tests.support.checks import check_error
from tests.support.fakes import FakeClock
from tests.support.images import jpeg_bytes
from tests.support.service import Service, make_settings, run, use_clock


def test_the_lua_bucket_refills_and_expires(redis_server) -> None:
    async def scenario() -> None:
        buckets = RedisBuckets(RedisLink(redis_server.url, timeout_s=1.0))
        limit = Limit("t", 6, 2)  # one token every 10 s
        try:
            assert await buckets.take("k", limit, 100.0) == (True, 1.0)
            assert await buckets.take("k", limit, 100.0) == (True, 0.0)
            assert await buckets.take("k", limit, 105.0) == (False, 0.5)
            assert await buckets.take("k", limit, 110.0) == (True, 0.0)
            assert await buckets.take("k", limit, 90.0) == (False, 0.0)  # a clock behind: no refill, no harm
            ttl = await buckets.link.client.ttl("petcut:rl:k")
            assert 1 <= ttl <= 21  # gone once it would be full again
            assert await buckets.take("k", limit, 10_000.0) == (True, 1.0)  # refilled to the burst only
        finally:
            await buckets.link.close()

    run(scenario())


def test_two_instances_share_limits_and_survive_redis_dying(redis_server, caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        clock = FakeClock()
        settings = make_settings(rate_limit_per_minute=4, redis_url=redis_server.url, redis_timeout_s=0.5)
        async with Service(settings) as first, Service(settings) as second:
            for svc in (first, second):
                use_clock(svc, clock)
                await svc.wait_state(State.READY)
            photo = jpeg_bytes(16, 12)
            statuses = [(await svc.process(photo)).status_code for svc in (first, second, first, second)]
            assert statuses == [200, 200, 200, 200]
            for svc in (first, second):  # the bucket is shared: both instances refuse the fifth
                refused = await svc.process(photo)
                check_error(refused, 429, "rate_limited")
                assert refused.headers["retry-after"] == "15"

            redis_server.stop()
            # Redis is gone: each instance uses its own memory buckets (full: a new burst each), and
            # never fails a request because of it
            for svc in (first, second):
                statuses = [(await svc.process(photo)).status_code for _ in range(5)]
                assert statuses == [200, 200, 200, 200, 429], statuses
                assert (await svc.client.get("/health")).status_code == 200

            redis_server.start()  # back, empty: shared again once the back-off passes
            for svc in (first, second):
                svc.app.state.abuse_guard.limiter.redis.link.breaker.reset()
            clock.advance(60)
            statuses = [(await svc.process(photo)).status_code for svc in (first, second, first, second, first)]
            assert statuses == [200, 200, 200, 200, 429]

    with caplog.at_level(logging.WARNING, logger="petcut.api.ratelimit"):
        run(scenario())
    messages = [record.getMessage() for record in caplog.records]
    down = [m for m in messages if m.startswith("redis unavailable for rate limiting")]
    assert len(down) == 2, messages  # once per instance, not once per request
    assert sum(m.startswith("redis reachable again") for m in messages) == 2
