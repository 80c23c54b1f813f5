"""docs/security.md: the CORS origin regex must not reflect malformed origins."""

from __future__ import annotations

import pytest

from petcut.api.cors import CorsPolicy
from tests.support.checks import check_edge
from tests.support.service import ORIGIN, ORIGIN_REGEX, PREVIEW_ORIGIN, Service, make_settings, run

MALFORMED = [
    "https://evil.com/.shopifypreview.com",
    "https://evil.com?.shopifypreview.com",
    "https://evil.com#.shopifypreview.com",
    "https://evil.com\\.shopifypreview.com",
    "https://user@evil.com/x.shopifypreview.com",
    "https://evil.com .shopifypreview.com",
    "https://x.shopifypreview.com/",
    "https://x.shopifypreview.com:99999",
    "https://x.shopifypreview.com:",
    "javascript://x.shopifypreview.com",
    "null",
]


@pytest.mark.parametrize("origin", MALFORMED)
def test_malformed_origins_are_not_allowed_even_when_the_regex_matches_them(origin: str) -> None:
    policy = CorsPolicy([ORIGIN], ORIGIN_REGEX)
    assert not policy.allows(origin)


@pytest.mark.parametrize(
    "origin", [PREVIEW_ORIGIN, ORIGIN, "https://a-b.c.shopifypreview.com", "https://xn--bcher-kva.shopifypreview.com"]
)
def test_well_formed_origins_still_match(origin: str) -> None:
    assert CorsPolicy([ORIGIN], ORIGIN_REGEX).allows(origin)


def test_a_malformed_origin_gets_no_cors_headers_on_a_real_request() -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            for origin in MALFORMED[:3]:
                response = await svc.client.get("/health", headers={"Origin": origin})
                check_edge(response, origin=None)
                assert "access-control-allow-credentials" not in response.headers
                preflight = await svc.client.options(
                    "/api/v2/remove-background", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
                )
                assert preflight.status_code == 400 and "access-control-allow-origin" not in preflight.headers
            allowed = await svc.client.get("/health", headers={"Origin": PREVIEW_ORIGIN})
            check_edge(allowed, origin=PREVIEW_ORIGIN)

    run(scenario())
