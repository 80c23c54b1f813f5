"""docs/security.md in a real ``petcut`` process: SIGTERM with work in flight and X-Forwarded-For
from peers that are not trusted proxies."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx
import pytest

from petcut.api.server import build_server, forwarding
from tests.support.checks import check_error
from tests.support.fakes import SLOW_WIDTH, Loader
from tests.support.images import jpeg_bytes
from tests.support.servers import HardeningServer, ServerProcess
from tests.support.service import ORIGIN, make_settings


def _post(base: str, data: bytes, into: list[tuple[str, httpx.Response]], name: str) -> None:
    with httpx.Client(base_url=base, headers={"Origin": ORIGIN}, timeout=30) as client:
        files = {"file": ("pet.jpg", data, "image/jpeg")}
        into.append((name, client.post("/api/v2/remove-background", files=files)))


@pytest.mark.slow
@pytest.mark.parametrize("attempt", range(3))
def test_sigterm_answers_queued_at_once_and_overrunning_work_at_the_deadline(attempt: int) -> None:
    server = HardeningServer(
        PETCUT_CORS_ORIGINS=ORIGIN, PETCUT_MAX_QUEUE="4", PETCUT_SHUTDOWN_TIMEOUT_S="4", PETCUT_TEST_SLOW_S="30"
    )
    answers: list[tuple[str, httpx.Response]] = []
    with server:
        process = server.process
        assert process is not None
        with httpx.Client(base_url=server.base, timeout=10) as client:
            for width in (60, 61, 62):  # the usual job duration: quick (distinct images: no cache hits)
                files = {"file": ("a.jpg", jpeg_bytes(width, 40))}
                assert client.post("/api/v2/remove-background", files=files).status_code == 200
            slow = threading.Thread(target=_post, args=(server.base, jpeg_bytes(SLOW_WIDTH, 40), answers, "running"))
            slow.start()
            deadline = time.monotonic() + 20
            while client.get("/").json()["queue"]["in_flight"] != 1:
                assert time.monotonic() < deadline, "the slow request never reached the worker"
                time.sleep(0.02)
            queued = threading.Thread(target=_post, args=(server.base, jpeg_bytes(63, 40), answers, "queued"))
            queued.start()
            while client.get("/").json()["queue"]["depth"] != 1:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.02)
        time.sleep(1.5)  # the running job is now far past the usual duration
        sent_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
        elapsed = time.monotonic() - sent_at
        for thread in (slow, queued):
            thread.join(timeout=20)
    log = server.log
    assert code == 0, log
    assert elapsed < 8.0, (elapsed, log)
    assert [name for name, _ in answers] == ["queued", "running"], log  # the queued one first, at once
    for _, response in answers:
        body = check_error(response, 503, "draining")
        assert body["status"] == "draining" and int(response.headers["retry-after"]) >= 1
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert not [r for r in records if r["severity"] in ("ERROR", "CRITICAL")], log


def test_serve_ignores_forwarded_headers_unless_proxies_are_trusted(tmp_path) -> None:
    plain = build_server(make_settings(data_dir=tmp_path), load_segmenter=Loader()).config
    assert plain.proxy_headers is False and plain.forwarded_allow_ips == []
    trusted = make_settings(data_dir=tmp_path, trusted_proxies=["10.0.0.0/8"])
    assert forwarding(trusted) == {"proxy_headers": True, "forwarded_allow_ips": ["10.0.0.0/8"]}


def _rotating_xff_statuses(server: ServerProcess, count: int) -> list[int]:
    statuses = []
    with httpx.Client(base_url=server.base, timeout=10) as client:
        for i in range(count):
            headers = {"X-Forwarded-For": f"203.0.113.{i + 1}"}
            statuses.append(client.post("/api/v2/remove-background", headers=headers).status_code)
    return statuses


@pytest.mark.slow
def test_rotating_x_forwarded_for_from_loopback_does_not_escape_the_rate_limit() -> None:
    with ServerProcess(PETCUT_RATE_LIMIT_PER_MINUTE="3", PETCUT_TEST_DELAY="0") as server:
        statuses = _rotating_xff_statuses(server, 8)
    assert statuses[:3] == [400, 400, 400], statuses  # no file: refused, but counted
    assert set(statuses[3:]) == {429}, statuses


@pytest.mark.slow
def test_x_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    with ServerProcess(
        PETCUT_RATE_LIMIT_PER_MINUTE="3", PETCUT_TEST_DELAY="0", PETCUT_TRUSTED_PROXIES="127.0.0.1"
    ) as s:
        statuses = _rotating_xff_statuses(s, 8)
    assert set(statuses) == {400}, statuses  # eight clients, one request each
