"""Real processes: /health at startup without torch, and SIGTERM with requests in flight under uvicorn."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import httpx

from tests.support.checks import check_edge, check_png
from tests.support.images import jpeg_bytes
from tests.support.servers import ROOT, ServerProcess, server_env
from tests.support.service import ORIGIN

HEALTH_WITHOUT_TORCH = """
import asyncio, json, sys, time
from tests.support.service import Service, make_settings

def sleepy_loader(settings):
    time.sleep(30)

async def main():
    svc = Service(make_settings(), sleepy_loader)
    async with svc:
        response = await svc.client.get("/health")
        print(json.dumps({
            "status": response.status_code,
            "body": response.json(),
            "torch": "torch" in sys.modules,
        }))
        sys.stdout.flush()
    # the loader thread is a daemon: the process exits without waiting for it

asyncio.run(main())
"""


def test_health_answers_at_once_without_importing_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HEALTH_WITHOUT_TORCH],
        cwd=ROOT,
        env=server_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["body"]["model_status"] == "loading"
    assert report["torch"] is False
    # answered during the 30-s load: startup and /health did not wait for the model


def test_sigterm_drains_in_flight_requests_and_exits_0() -> None:
    server = ServerProcess(
        PETCUT_CORS_ORIGINS=ORIGIN, PETCUT_TEST_DELAY="1.0", PETCUT_MAX_QUEUE="4", PETCUT_SHUTDOWN_TIMEOUT_S="7"
    )
    with server:
        process = server.process
        assert process is not None
        base = server.base
        results: list[httpx.Response] = []

        def post() -> None:
            with httpx.Client(base_url=base, headers={"Origin": ORIGIN}, timeout=30) as c:
                files = {"file": ("pet.jpg", jpeg_bytes(), "image/jpeg")}
                results.append(c.post("/api/v2/remove-background", files=files))

        threads = [threading.Thread(target=post) for _ in range(2)]  # one running, one queued
        for thread in threads:
            thread.start()
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 20
            while client.get("/").json()["queue"] != {"depth": 1, "in_flight": 1, "max": 4}:
                assert time.monotonic() < deadline, "the two requests never reached the worker"
                time.sleep(0.02)

        sent_at = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=15)
        elapsed = time.monotonic() - sent_at
        for thread in threads:
            thread.join(timeout=15)
    log = server.log
    assert code == 0, log
    assert elapsed < 8.0, elapsed
    assert len(results) == 2, log
    for response in results:
        check_png(response, (64, 48))
        check_edge(response)
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert records and all("severity" in r and "message" in r and "time" in r for r in records)
    assert any(r.get("state") == "draining" for r in records), log
    assert not [r for r in records if r["severity"] in ("ERROR", "CRITICAL")], log
