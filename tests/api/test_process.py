"""Real processes: /health at startup without torch, and SIGTERM with requests in flight under uvicorn."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from tests.api.conftest import ORIGIN, check_edge, check_png, jpeg_bytes
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]

HEALTH_WITHOUT_TORCH = """
import asyncio, json, sys, time
from tests.api.conftest import Service, make_settings

def sleepy_loader(settings):
    time.sleep(30)

async def main():
    svc = Service(make_settings(), sleepy_loader)
    started = time.monotonic()
    async with svc:
        response = await svc.client.get("/health")
        elapsed = time.monotonic() - started
        print(json.dumps({
            "status": response.status_code,
            "body": response.json(),
            "elapsed": elapsed,
            "torch": "torch" in sys.modules,
        }))
        sys.stdout.flush()
    # the loader thread is a daemon: the process exits without waiting for it

asyncio.run(main())
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCUT_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.update(extra)
    return env


def test_health_answers_at_once_without_importing_torch() -> None:
    result = subprocess.run(
        [sys.executable, "-c", HEALTH_WITHOUT_TORCH],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["status"] == 200
    assert report["body"]["model_status"] == "loading"
    assert report["torch"] is False
    assert report["elapsed"] < 1.0  # lifespan start → /health answered (milliseconds normally)


SERVER = """
from petcut.api.server import run
from tests.api.fakes import slow_loader
run(load_segmenter=slow_loader)
"""


def test_sigterm_drains_in_flight_requests_and_exits_0() -> None:
    port = free_port()
    env = _env(
        PETCUT_HOST="127.0.0.1",
        PETCUT_PORT=str(port),
        PETCUT_CORS_ORIGINS=ORIGIN,
        PETCUT_MODE="fast",
        PETCUT_TEST_DELAY="1.0",
        PETCUT_MAX_QUEUE="4",
        PETCUT_SHUTDOWN_TIMEOUT_S="7",
    )
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        with httpx.Client(base_url=base, headers={"Origin": ORIGIN}, timeout=30) as client:
            while True:
                assert process.poll() is None, "".join(output)
                try:
                    if client.get("/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server never became ready:\n" + "".join(output)
                time.sleep(0.1)

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
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    reader.join(timeout=5)
    log = "".join(output)
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
