"""``petcut smoke``: against a real local server (uvicorn in a thread, fake or real loader), and the
decisions it makes on scripted answers (httpx.MockTransport, a fake clock)."""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable, Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from PIL import Image
from typer.testing import CliRunner

from petcut.api import create_app
from petcut.api.app import default_loader
from petcut.cli import app as cli
from petcut.config import Settings
from petcut.smoke import FAIL, PASS, SKIP, Smoke, SmokeReport, run_smoke
from tests.support.fakes import Loader
from tests.support.servers import free_port
from tests.support.service import ORIGIN, make_settings

runner = CliRunner()
CHECKS = ["health", "ready", "cors preflight", "cors on error", "warmup", "process-with-effects"]


class ThreadServer:
    """A real uvicorn server on a free loopback port, in a background thread."""

    def __init__(self, settings: Settings, loader: Callable[[Settings], Any]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings, load_segmenter=loader)
        config = uvicorn.Config(
            self.app, host="127.0.0.1", port=self.port, log_config=None, access_log=False, lifespan="on"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="smoke-test-server", daemon=True)

    def __enter__(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


@pytest.fixture
def fake_server() -> Iterator[ThreadServer]:
    with ThreadServer(make_settings(), Loader()) as server:
        yield server


def statuses(report: SmokeReport) -> dict[str, str]:
    return {check.name: check.status for check in report.checks}


# --- against a local server ------------------------------------------------------------------------------
def test_smoke_passes_against_a_healthy_server(fake_server: ThreadServer) -> None:
    result = runner.invoke(cli, ["smoke", fake_server.url, "--origin", ORIGIN, "--wait", "30"])
    assert result.exit_code == 0, result.output
    assert "smoke test passed" in result.output and "6 checks passed" in result.output
    for name in CHECKS:
        assert name in result.output


def test_smoke_without_origin_skips_the_cors_checks(fake_server: ThreadServer) -> None:
    report = run_smoke(fake_server.url, wait=30)
    assert report.ok
    assert statuses(report) == {
        "health": PASS, "ready": PASS, "cors preflight": SKIP, "cors on error": SKIP, "warmup": PASS,
        "process-with-effects": PASS,
    }  # fmt: skip


def test_smoke_fails_on_an_origin_the_server_does_not_allow(fake_server: ThreadServer) -> None:
    report = run_smoke(fake_server.url, origin="https://not-the-shop.example", wait=30)
    assert not report.ok
    assert statuses(report)["cors preflight"] == FAIL and statuses(report)["cors on error"] == FAIL
    assert statuses(report)["process-with-effects"] == FAIL  # the real request lacks CORS too
    assert "PETCUT_CORS_ORIGINS" in report.failures[1].detail


def test_smoke_waits_for_a_loading_model(tmp_path: Path) -> None:
    gate = threading.Event()
    progress: list[str] = []
    with ThreadServer(make_settings(), Loader(gate=gate)) as server:
        threading.Timer(0.5, gate.set).start()
        report = run_smoke(server.url, origin=ORIGIN, wait=30, max_poll=0.1, progress=progress.append)
    assert report.ok, report.checks
    assert any("loading" in line for line in progress), progress


def test_smoke_fails_fast_with_the_reason_against_a_corrupt_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "ckpt_base.pth"
    checkpoint.write_bytes(b"this is not a torch checkpoint \x00\x01\x02" * 1000)
    settings = make_settings(checkpoint=checkpoint, device="cpu", mode="fast", load_attempts=3)
    with ThreadServer(settings, default_loader) as server:
        result = runner.invoke(cli, ["smoke", server.url, "--origin", ORIGIN, "--wait", "120"])
    assert result.exit_code == 1, result.output
    output = " ".join(result.output.split())
    # the load failure ends the wait, not --wait (that would say "not ready after 120 s")
    assert "smoke test FAILED (ready): the model failed to load" in output
    assert "corrupt" in output
    assert str(tmp_path) not in output


def test_smoke_against_nothing_fails_within_the_wait() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    result = runner.invoke(cli, ["smoke", url, "--wait", "1"])
    assert result.exit_code == 1
    assert time.monotonic() - started < 15
    output = " ".join(result.output.split())
    assert "unreachable" in output and "skipped: /health failed" in output


def test_smoke_rejects_a_url_without_scheme() -> None:
    result = runner.invoke(cli, ["smoke", "petcut.example.com"])
    assert result.exit_code == 2


# --- decisions on scripted answers ---------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(round(seconds, 3))
        self.now += seconds


def png_b64(size: tuple[int, int]) -> str:
    buf = BytesIO()
    Image.new("RGBA", size).save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def scripted(ready: list[httpx.Response], **overrides: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    """A client whose /ready answers come from ``ready`` in turn (the last one repeats)."""
    from petcut.smoke import _photo_size, sample_photo

    size = _photo_size(sample_photo())
    allow = {"Access-Control-Allow-Origin": ORIGIN, "Access-Control-Expose-Headers": "X-Request-ID, Retry-After"}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path in overrides:
            return overrides[path](request)
        if path == "/health":
            return httpx.Response(200, json={"status": "healthy", "model_status": "ready", "version": "x"})
        if path == "/ready":
            return ready.pop(0) if len(ready) > 1 else ready[0]
        if request.method == "OPTIONS":
            return httpx.Response(204, headers={**allow, "Access-Control-Allow-Methods": "GET, POST"})
        if path == "/api/v2/remove-background":
            body = {"success": False, "error": {"code": "bad_request", "message": "no file", "request_id": "r"}}
            return httpx.Response(400, json=body, headers=allow)
        if path == "/warmup":
            return httpx.Response(200, json={"status": "success"}, headers={**allow, "X-Warmup-Status": "success"})
        if path == "/api/v2/process-with-effects":
            effects = {"enhancedblackwhite": png_b64(size), "color": "data:image/png;base64," + png_b64(size)}
            return httpx.Response(200, json={"success": True, "effects": effects}, headers=allow)
        return httpx.Response(404, json={})

    return httpx.Client(transport=httpx.MockTransport(handler), base_url="http://petcut.test")


def not_ready(state: str, reason: str, retry_after: int) -> httpx.Response:
    body = {"status": state, "reason": reason, "success": False, "error": {"code": "not_ready", "message": reason}}
    return httpx.Response(503, json=body, headers={"Retry-After": str(retry_after)})


def smoke(client: httpx.Client, clock: FakeClock, **options: Any) -> SmokeReport:
    return Smoke("http://petcut.test", origin=ORIGIN, client=client, sleep=clock.sleep, clock=clock, **options).run()


def test_ready_polling_honours_retry_after_within_the_wait() -> None:
    clock = FakeClock()
    answers = [not_ready("loading", "Loading the model.", 3), not_ready("warming", "Warming up.", 2),
               httpx.Response(200, json={"status": "ready"})]  # fmt: skip
    report = smoke(scripted(answers), clock, wait=60)
    assert report.ok, report.checks
    assert clock.sleeps == [3, 2]


def test_ready_poll_interval_is_capped_and_the_wait_ends_it() -> None:
    clock = FakeClock()
    report = smoke(scripted([not_ready("loading", "Loading the model.", 30)]), clock, wait=12, max_poll=5)
    assert clock.sleeps == [5, 5, 2]
    ready = next(check for check in report.checks if check.name == "ready")
    assert ready.status == FAIL and "not ready after 12 s" in ready.detail and "loading" in ready.detail
    assert statuses(report)["warmup"] == SKIP and statuses(report)["cors preflight"] == PASS


@pytest.mark.parametrize(
    ("state", "words"),
    [("failed", "the model failed to load"), ("poisoned", "poisoned"), ("draining", "shutting down")],
)
def test_ready_fails_fast_on_a_state_that_waiting_cannot_fix(state: str, words: str) -> None:
    clock = FakeClock()
    report = smoke(scripted([not_ready(state, "Because of reasons.", 40)]), clock, wait=300)
    assert clock.sleeps == []
    ready = next(check for check in report.checks if check.name == "ready")
    assert ready.status == FAIL and words in ready.detail and "Because of reasons." in ready.detail


def test_a_poisoned_health_fails_at_once_and_skips_the_rest() -> None:
    def poisoned(request: httpx.Request) -> httpx.Response:
        body = {"status": "unhealthy", "model_status": "poisoned", "error": {"code": "device_fault", "message": "x"}}
        return httpx.Response(503, json=body)

    clock = FakeClock()
    report = smoke(scripted([httpx.Response(200, json={})], **{"/health": poisoned}), clock, wait=300)
    assert clock.sleeps == []
    assert statuses(report)["health"] == FAIL and "poisoned" in report.checks[0].detail
    assert [check.status for check in report.checks[1:]] == [SKIP] * 5


def test_error_response_without_cors_fails_the_check() -> None:
    def bare_400(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"success": False, "error": {"code": "bad_request", "message": "m"}})

    clock = FakeClock()
    ready = [httpx.Response(200, json={"status": "ready"})]
    report = smoke(scripted(ready, **{"/api/v2/remove-background": bare_400}), clock)
    assert statuses(report)["cors on error"] == FAIL and statuses(report)["process-with-effects"] == PASS


def test_partial_warmup_and_a_missing_effect_fail() -> None:
    def partial(request: httpx.Request) -> httpx.Response:
        headers = {"Access-Control-Allow-Origin": ORIGIN, "X-Warmup-Status": "partial"}
        return httpx.Response(206, json={"status": "partial", "message": "the warmup failed"}, headers=headers)

    def one_effect(request: httpx.Request) -> httpx.Response:
        body = {"success": True, "effects": {"color": png_b64((4, 4))}, "failed_effects": ["enhancedblackwhite"]}
        return httpx.Response(200, json=body, headers={"Access-Control-Allow-Origin": ORIGIN})

    clock = FakeClock()
    ready = [httpx.Response(200, json={"status": "ready"})]
    report = smoke(scripted(ready, **{"/warmup": partial, "/api/v2/process-with-effects": one_effect}), clock)
    checks = {check.name: check for check in report.checks}
    assert checks["warmup"].status == FAIL and "the warmup failed" in checks["warmup"].detail
    assert checks["process-with-effects"].status == FAIL
    assert "enhancedblackwhite" in checks["process-with-effects"].detail
