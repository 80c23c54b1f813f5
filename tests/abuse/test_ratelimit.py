"""Per-client token buckets: 429 with Retry-After, RateLimit headers, CORS and the envelope; refill by the
clock; X-Forwarded-For only from trusted proxies; per-route rules; bounded memory; probes never limited."""

from __future__ import annotations

import ipaddress
import logging
import re

import pytest

from petcut.api import create_app
from petcut.api.buckets import Decision, Limit, MemoryBuckets
from petcut.api.clients import ClientResolver, parse_ip
from petcut.api.middleware import EdgeMiddleware
from petcut.api.ratelimit import AbuseGuardMiddleware, build_routes
from petcut.config import SettingsError, load_settings
from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error
from tests.support.fakes import FakeClock
from tests.support.images import jpeg_bytes
from tests.support.service import ORIGIN, Service, client_for, make_settings, run, upload, use_clock

PROCESS = "/api/v2/remove-background"
RATE_LIMIT = re.compile(r'"(?P<name>[a-z0-9_-]+)";r=(?P<r>\d+);t=(?P<t>\d+)')
POLICY = re.compile(r'"(?P<name>[a-z0-9_-]+)";q=(?P<q>\d+);w=(?P<w>\d+)')


def rate_headers(response) -> tuple[dict[str, str], dict[str, str]]:
    policy = POLICY.fullmatch(response.headers["ratelimit-policy"])
    state = RATE_LIMIT.fullmatch(response.headers["ratelimit"])
    assert policy and state, dict(response.headers)
    return policy.groupdict(), state.groupdict()


def test_burst_beyond_the_limit_gets_429s_while_health_stays_200() -> None:
    """The issue's done-when: a burst past the limit → 429 + Retry-After + CORS + envelope; probes 200."""

    async def scenario() -> None:
        clock = FakeClock()
        async with Service(make_settings(rate_limit_per_minute=5)) as svc:
            use_clock(svc, clock)
            await svc.wait_state(State.READY)
            photo = jpeg_bytes(32, 24)
            for expected_remaining in (4, 3, 2, 1, 0):
                ok = await svc.process(photo)
                assert ok.status_code == 200, ok.text
                check_edge(ok)
                policy, state = rate_headers(ok)
                assert policy == {"name": "remove-background", "q": "5", "w": "60"}
                assert int(state["r"]) == expected_remaining
            calls = svc.segmenter.calls
            for _ in range(10):
                refused = await svc.process(photo, headers={"X-Request-ID": "burst-1"})
                body = check_error(refused, 429, "rate_limited")
                retry = int(refused.headers["retry-after"])
                assert retry == 12 and body["retry_after"] == retry  # 5 a minute: one token every 12 s
                assert body["error"]["request_id"] == refused.headers["x-request-id"] == "burst-1"
                _, state = rate_headers(refused)
                assert state["r"] == "0" and int(state["t"]) == retry
                assert "Retry-After" in refused.headers["access-control-expose-headers"]
            assert svc.segmenter.calls == calls  # refused before the pipeline (and before the body is read)
            for path in ("/health", "/ready", "/metrics", "/", "/api/v2/effects", "/ui/", "/openapi.json"):
                for _ in range(3):
                    response = await svc.client.get(path)
                    assert response.status_code != 429 and "ratelimit" not in response.headers, path
                    assert response.status_code == 200 or path in ("/metrics", "/ui/"), (path, response.status_code)
            head = await svc.client.head("/health")
            assert head.status_code == 200
            preflight = await svc.client.options(PROCESS, headers={"Access-Control-Request-Method": "POST"})
            assert preflight.status_code == 204
            check_edge(preflight)

    run(scenario())


def test_the_429_is_built_inside_the_edge_layer() -> None:
    """Ordering: the guard sits inside EdgeMiddleware, so its 429/401 carry CORS and X-Request-ID; an
    origin that is not allowed gets no CORS header, as for every other response."""

    async def scenario() -> None:
        async with Service(make_settings(rate_limit_per_minute=1)) as svc:
            use_clock(svc, FakeClock())
            layers, layer = [], svc.app.build_middleware_stack()
            while layer is not None:
                layers.append(type(layer))
                layer = getattr(layer, "app", None)
            assert layers.index(EdgeMiddleware) < layers.index(AbuseGuardMiddleware), layers

            await svc.client.post("/warmup")  # 6 a minute, burst 3 on /warmup: separate from processing
            await svc.process()
            refused = await svc.process(headers={"Origin": "https://evil.example.com"})
            check_error(refused, 429, "rate_limited", origin=None)
            refused = await svc.process()
            check_error(refused, 429, "rate_limited")

    run(scenario())


def test_tokens_refill_with_the_clock() -> None:
    async def scenario() -> None:
        clock = FakeClock()
        settings = make_settings(rate_limit_per_minute=6, rate_limit_burst=2)  # one token every 10 s
        async with Service(settings) as svc:
            use_clock(svc, clock)
            await svc.wait_state(State.READY)
            photo = jpeg_bytes(16, 16)
            assert [(await svc.process(photo)).status_code for _ in range(3)] == [200, 200, 429]
            clock.advance(9.5)
            refused = await svc.process(photo)
            assert refused.status_code == 429 and refused.headers["retry-after"] == "1"
            clock.advance(0.5)
            allowed = await svc.process(photo)
            assert allowed.status_code == 200
            assert rate_headers(allowed)[1] == {"name": "remove-background", "r": "0", "t": "10"}
            assert (await svc.process(photo)).status_code == 429
            clock.advance(3600)  # a long pause refills to the burst, not beyond
            assert [(await svc.process(photo)).status_code for _ in range(3)] == [200, 200, 429]

    run(scenario())


def test_forwarded_for_from_an_untrusted_peer_is_ignored() -> None:
    async def scenario() -> None:
        async with Service(make_settings(rate_limit_per_minute=2)) as svc:
            use_clock(svc, FakeClock())
            async with client_for(svc, "203.0.113.7", Origin=ORIGIN) as client:
                statuses = []
                for i in range(4):  # a new "client address" every time: still one bucket, the peer's
                    response = await client.post(
                        PROCESS, headers={"X-Forwarded-For": f"198.51.100.{i}"}, **upload(jpeg_bytes(8, 8))
                    )
                    statuses.append(response.status_code)
                assert statuses[2:] == [429, 429]
            async with client_for(svc, "203.0.113.8", Origin=ORIGIN) as other:  # another peer: its own bucket
                response = await other.post(PROCESS, **upload(jpeg_bytes(8, 8)))
                assert response.status_code != 429

    run(scenario())


def test_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    async def scenario() -> None:
        settings = make_settings(rate_limit_per_minute=1, trusted_proxies="10.0.0.0/8")
        async with Service(settings) as svc:
            use_clock(svc, FakeClock())
            async with client_for(svc, "10.1.2.3", Origin=ORIGIN) as proxy:

                async def post(xff: str) -> int:
                    response = await proxy.post(PROCESS, headers={"X-Forwarded-For": xff}, **upload(b"x"))
                    return response.status_code

                assert await post("198.51.100.1") != 429
                assert await post("198.51.100.1") == 429
                assert await post("198.51.100.2") != 429  # another client behind the same proxy
                # the client prepends a spoofed hop; the proxy appends the real one: the real one counts
                assert await post("192.0.2.99, 198.51.100.1") == 429
                assert await post("192.0.2.100, 198.51.100.1, 10.9.9.9") == 429  # two trusted hops

    run(scenario())


def test_client_resolution_rules() -> None:
    resolver = ClientResolver(["10.0.0.0/8", "2001:db8:ffff::/48", "127.0.0.1"])

    def client(peer: str, *xff: str) -> str:
        headers = [(b"x-forwarded-for", value.encode()) for value in xff]
        return resolver.client_id({"client": (peer, 1), "headers": headers})

    assert client("198.51.100.1", "1.1.1.1") == "198.51.100.1"  # untrusted peer: header ignored
    assert client("10.0.0.1", "1.1.1.1") == "1.1.1.1"
    assert client("10.0.0.1", "6.6.6.6, 1.1.1.1", "10.0.0.2") == "1.1.1.1"  # several headers, right to left
    assert client("10.0.0.1", "10.0.0.3, 10.0.0.2") == "10.0.0.3"  # all trusted: the left-most
    assert client("10.0.0.1", "6.6.6.6, garbage") == "10.0.0.1"  # garbage: stop at the proxy
    assert client("10.0.0.1", "1.1.1.1:5555") == "1.1.1.1"
    assert client("10.0.0.1", '"[2001:db8::5]:443"') == "2001:db8::/64"
    assert client("10.0.0.1") == "10.0.0.1"
    assert client("::ffff:10.0.0.1", "1.1.1.1") == "1.1.1.1"  # IPv4-mapped peer
    # IPv6 clients are grouped by /64: rotating the interface id does not give new buckets
    assert client("2001:db8:1:2::1") == client("2001:db8:1:2:ffff::9") == "2001:db8:1:2::/64"
    assert client("2001:db8:ffff::1", "2001:db8:1:3::7") == "2001:db8:1:3::/64"
    assert resolver.client_id({"client": None}) == "unknown"
    assert parse_ip("unknown") is None and parse_ip("") is None
    assert parse_ip("1.2.3.4") == ipaddress.ip_address("1.2.3.4")


def test_per_route_overrides_and_exemptions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETCUT_RATE_LIMITS", '{"/store-image": 1, "/api/v2/remove-background": 0, '
                       '"/session/{id}/images": {"per_minute": 2, "burst": 1}}')  # fmt: skip
    monkeypatch.setenv("PETCUT_CORS_ORIGINS", ORIGIN)
    monkeypatch.setenv("PETCUT_RATE_LIMIT_PER_MINUTE", "3")
    settings = load_settings(mode="fast")
    limits = {route.template: route.limit for route in build_routes(settings, create_app(settings).routes)}
    assert limits["/store-image"] == Limit("store-image", 1, 1)
    assert limits["/api/v2/remove-background"] is None  # 0: exempt (still a protected route for keys)
    assert limits["/api/v2/process-with-effects"] == Limit("process-with-effects", 3, 3)
    assert limits["/warmup"] == Limit("warmup", 6, 3)
    assert limits["/session/{id}/images"] == Limit("images", 2, 1)

    async def scenario() -> None:
        async with Service(settings) as svc:
            use_clock(svc, FakeClock())
            form = {"session_id": "s" * 32, "image_type": "original"}
            first = await svc.client.post("/store-image", data=form, **upload(jpeg_bytes(8, 8)))
            assert first.status_code == 200, first.text
            check_error(await svc.client.post("/store-image", data=form, **upload(jpeg_bytes(8, 8))), 429)
            for _ in range(5):  # exempt route: never 429, no RateLimit headers
                response = await svc.process(jpeg_bytes(8, 8))
                assert response.status_code != 429 and "ratelimit" not in response.headers
            path = "/session/" + "a" * 32 + "/images"
            assert (await svc.client.get(path)).status_code == 200
            check_error(await svc.client.get("/session/" + "b" * 32 + "/images"), 429)  # one bucket per template

    run(scenario())


def test_zero_turns_rate_limiting_off() -> None:
    settings = make_settings(rate_limit_per_minute=0, rate_limits={"/store-image": 5})
    assert all(route.limit is None for route in build_routes(settings, create_app(settings).routes))

    async def scenario() -> None:
        async with Service(settings) as svc:
            for _ in range(8):
                response = await svc.client.post("/warmup")
                assert response.status_code != 429 and "ratelimit" not in response.headers

    run(scenario())


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ('{"/health": 5}', "never rate limited"),
        ('{"/metrics": 5}', "never rate limited"),
        ('{"/ui/": 5}', "never rate limited"),
        ('{"store-image": 5}', "starting with /"),
        ('{"/store-image": -1}', "greater than or equal to 0"),
        ('{"/store-image": {"per_minute": 5, "burst": 0}}', "greater than or equal to 1"),
        ("[1, 2]", "JSON object"),
        ("{nope", "not valid JSON"),
    ],
)
def test_invalid_route_limits_name_the_variable(monkeypatch: pytest.MonkeyPatch, value: str, message: str) -> None:
    monkeypatch.setenv("PETCUT_RATE_LIMITS", value)
    with pytest.raises(SettingsError, match="PETCUT_RATE_LIMITS") as info:
        load_settings()
    assert message in str(info.value)


def test_invalid_trusted_proxies_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETCUT_TRUSTED_PROXIES", "10.0.0.0/8, proxy.internal")
    with pytest.raises(SettingsError, match="PETCUT_TRUSTED_PROXIES"):
        load_settings()
    monkeypatch.setenv("PETCUT_TRUSTED_PROXIES", "10.0.0.0/8, 2001:db8::/32 127.0.0.1")
    assert load_settings().trusted_proxies == ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]


def test_memory_buckets_are_bounded_and_drop_idle_ones() -> None:
    limit = Limit("t", 60, 5)  # one token a second, 5 at most
    buckets = MemoryBuckets(max_entries=100)
    for i in range(1000):  # a flood of distinct clients: the bound holds
        assert buckets.take(f"ip:{i}", limit, now=1000.0) == (True, 4.0)
        assert len(buckets) <= 100
    assert buckets.evicted == 900
    assert "ip:999" in buckets and "ip:0" not in buckets

    buckets = MemoryBuckets(max_entries=1000)
    for i in range(10):
        buckets.take(f"ip:{i}", limit, now=0.0)
    for _ in range(5):
        buckets.take("busy", limit, now=0.0)
    buckets.take("busy", limit, now=0.5)
    assert len(buckets) == 11
    # 1 s later the idle buckets are full again (the same as absent) and go; "busy" is still short
    buckets.take("late", limit, now=1.0)
    assert "busy" in buckets and "late" in buckets and len(buckets) == 2
    # an evicted bucket comes back full: eviction never refuses anyone
    assert buckets.take("ip:3", limit, now=1.0) == (True, 4.0)


def test_decision_headers_follow_the_draft() -> None:
    limit = Limit("remove-background", 30, 30)
    assert limit.policy_header() == '"remove-background";q=30;w=60'
    full = Decision(True, limit, 29.0)
    assert (full.remaining, full.reset_s) == (29, 2)
    partial = Decision(True, limit, 0.25)
    assert (partial.remaining, partial.reset_s, partial.retry_after) == (0, 2, 2)
    denied = Decision(False, limit, 0.9)
    assert (denied.remaining, denied.retry_after) == (0, 1)
    assert dict(denied.headers()) == {
        b"ratelimit-policy": b'"remove-background";q=30;w=60',
        b"ratelimit": b'"remove-background";r=0;t=1',
    }
    assert Decision(True, Limit("w", 6, 3), 3.0).reset_s == 0


def test_denials_are_logged_at_most_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        async with Service(make_settings(rate_limit_per_minute=1)) as svc:
            use_clock(svc, FakeClock())
            for _ in range(6):
                await svc.process(b"x")

    with caplog.at_level(logging.WARNING, logger="petcut.api.ratelimit"):
        run(scenario())
    assert [r.getMessage() for r in caplog.records].count("clients are being rate limited") == 1
