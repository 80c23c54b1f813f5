"""Two petcut processes sharing one real Redis: the second serves from the cache the first filled, and
killing Redis costs cache hits and nothing else."""

from __future__ import annotations

import httpx

from tests.support.images import jpeg_bytes
from tests.support.servers import ServerProcess
from tests.support.service import ORIGIN

SHOP = "/api/v2/process-with-effects?return_all_effects=true&effects=enhancedblackwhite,color"


def shop_request(base: str, data: bytes) -> httpx.Response:
    with httpx.Client(base_url=base, headers={"Origin": ORIGIN}, timeout=60) as client:
        return client.post(SHOP, files={"file": ("pet.jpg", data, "image/jpeg")}, data={"effects": "color"})


def test_two_instances_share_the_redis_cache_and_survive_its_death(redis_server) -> None:
    env = {"PETCUT_REDIS_URL": redis_server.url, "PETCUT_TEST_DELAY": "0.2", "PETCUT_CORS_ORIGINS": ORIGIN}
    photo = jpeg_bytes(90, 70)
    with ServerProcess(**env) as first, ServerProcess(**env) as second:
        filled = shop_request(first.base, photo)
        assert filled.status_code == 200, filled.text
        assert filled.json()["cache_info"]["total_cache_hits"] == 0

        served = shop_request(second.base, photo)
        assert served.status_code == 200
        info = served.json()["cache_info"]
        assert info["background_removal_hit"] and info["total_cache_hits"] == 3, info
        assert served.json()["effects"] == filled.json()["effects"]

        redis_server.stop()
        other = jpeg_bytes(60, 50)
        for base in (first.base, second.base):  # Redis gone: both still serve, as cache misses
            response = shop_request(base, other)
            assert response.status_code == 200, response.text
            assert response.headers["access-control-allow-origin"] == ORIGIN
            assert response.json()["cache_info"]["total_cache_hits"] == 0

        redis_server.start()  # back (empty): hits resume once the client's back-off passes
        import time

        deadline = time.monotonic() + 20
        while True:
            shop_request(first.base, photo)
            if shop_request(second.base, photo).json()["cache_info"]["total_cache_hits"] == 3:
                break
            assert time.monotonic() < deadline, "cache hits never resumed after Redis came back"
            time.sleep(0.5)
    assert "redis cache unavailable" in first.log + second.log
