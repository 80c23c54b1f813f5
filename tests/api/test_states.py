"""docs/api.md's table of model states, row by row: what /health, /ready, processing and /warmup answer in each
runtime state, each response checked for status, Retry-After, CORS, X-Request-ID and the error body."""

from __future__ import annotations

import asyncio
import threading

from petcut.model.base import ChecksumMismatchError, WeightsMissingError
from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error, check_png
from tests.support.fakes import FakeSegmenter, Loader, TransientLoadError, corrupt, device_fault
from tests.support.service import PREVIEW_ORIGIN, Service, degraded_service, make_settings, run, wait_for


async def expect_health(svc: Service, state: State, status: int = 200) -> dict:
    response = await svc.client.get("/health")  # never waits for the model (answered while it loads)
    assert response.status_code == status, response.text
    check_edge(response)
    body = response.json()
    for key in ("status", "container_ready", "model_ready", "model_status", "uptime_s", "version"):
        assert key in body
    assert body["model_status"] == str(state)
    return body


async def expect_not_ready(svc: Service, state: State) -> dict:
    body = check_error(await svc.client.get("/ready"), 503, "not_ready")
    assert body["status"] == str(state)
    assert body["reason"] and body["since"]
    return body


async def expect_warmup(svc: Service, status: int, label: str) -> dict:
    response = await svc.client.post("/warmup")
    assert response.status_code == status, response.text
    check_edge(response)
    body = response.json()
    for key in ("status", "model_ready", "total_time", "model_load_time", "warmup_time", "device", "mode", "resize"):
        assert key in body, key
    assert body["status"] == label
    assert response.headers["x-warmup-status"] == label
    assert response.headers["x-model-ready"] == ("true" if body["model_ready"] else "false")
    float(response.headers["x-warmup-time"])
    if status >= 500:
        check_error(response, status)
    return body


async def expect_preflight(svc: Service) -> None:
    response = await svc.client.options(
        "/api/v2/remove-background",
        headers={"Origin": PREVIEW_ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert response.status_code == 204
    check_edge(response, PREVIEW_ORIGIN)


def test_not_loaded() -> None:
    async def scenario() -> None:
        loader = Loader()
        async with Service(make_settings(skip_model_preload=True), loader) as svc:
            await asyncio.sleep(0.05)
            assert svc.runtime.state is State.NOT_LOADED and loader.calls == 0
            body = await expect_health(svc, State.NOT_LOADED)
            assert body["model_ready"] is False and body["container_ready"] is True
            await expect_not_ready(svc, State.NOT_LOADED)
            await expect_preflight(svc)
            # processing starts the load and answers 503 + Retry-After
            check_error(await svc.process(), 503, "model_loading")
            await svc.wait_state(State.READY)
            assert loader.calls == 1
            check_png(await svc.process(), (64, 48))

    run(scenario())


def test_not_loaded_warmup_loads_then_200() -> None:
    async def scenario() -> None:
        async with Service(make_settings(skip_model_preload=True)) as svc:
            body = await expect_warmup(svc, 200, "success")
            assert body["model_ready"] is True and body["model_load_time"] is not None
            assert body["details"]["sample"]["width"] == 278 and body["details"]["tiny"]["width"] == 16
            assert (await svc.client.get("/ready")).status_code == 200

    run(scenario())


def test_loading_then_ready() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        async with Service(make_settings(warmup_wait_s=0.2), Loader(gate=gate)) as svc:
            await svc.wait_state(State.LOADING)
            body = await expect_health(svc, State.LOADING)
            assert body["model_ready"] is False
            await expect_not_ready(svc, State.LOADING)
            check_error(await svc.process(), 503, "model_loading")
            await expect_preflight(svc)
            # /warmup waits a bounded time, then 503 + Retry-After: answered while the load still runs
            body = await expect_warmup(svc, 503, "loading")
            assert svc.runtime.state is State.LOADING and not gate.is_set()
            assert body["model_ready"] is False
            gate.set()
            await svc.wait_state(State.READY)
            await expect_health(svc, State.READY)
            ready = await svc.client.get("/ready")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            check_edge(ready)
            check_png(await svc.process(), (64, 48))
            await expect_warmup(svc, 200, "success")

    run(scenario())


def test_warming() -> None:
    async def scenario() -> None:
        segmenter = FakeSegmenter()
        segmenter.gate = threading.Event()  # the warmup inference blocks
        async with Service(make_settings(warmup_wait_s=0.2), Loader(segmenter)) as svc:
            await svc.wait_state(State.WARMING)
            await expect_health(svc, State.WARMING)
            await expect_not_ready(svc, State.WARMING)
            check_error(await svc.process(), 503, "model_loading")
            await expect_warmup(svc, 503, "loading")
            segmenter.gate.set()
            await svc.wait_state(State.READY)

    run(scenario())


def test_ready() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            await expect_health(svc, State.READY)
            response = await svc.client.get("/ready")
            assert response.status_code == 200
            check_edge(response)
            check_png(await svc.process(), (64, 48))
            body = await expect_warmup(svc, 200, "success")
            assert body["model_ready"] is True and body["device"] == "cpu" and body["mode"] == "fast"
            root = await svc.client.get("/")
            check_edge(root)
            assert root.json() | {"version": None, "queue": None} == {
                "service": "petcut",
                "version": None,
                "mode": "fast",
                "resize": "static",
                "device": "cpu",
                "state": "ready",
                "model": "fake segmenter",
                "engine": None,  # a fake segmenter has no engine info
                "model_id": "inspyrenet-fast",
                "model_choice": "configured",
                "queue": None,
            }

    run(scenario())


def test_degraded_when_warmup_fails_then_recovers_on_a_passing_warmup() -> None:
    async def scenario() -> None:
        # the startup warmup (sample photo) fails, like the old "height and width must be > 0"
        async with degraded_service(ValueError("height and width must be > 0")) as (svc, segmenter):
            body = await expect_health(svc, State.DEGRADED)
            assert body["model_ready"] is True
            ready = await expect_not_ready(svc, State.DEGRADED)
            assert "warmup" in ready["reason"]
            check_png(await svc.process(), (64, 48))  # served: the model is loaded
            segmenter.faults.append(ValueError("again"))
            body = await expect_warmup(svc, 206, "partial")
            assert body["model_ready"] is True and "sample photo" in body["message"]
            assert "again" not in body["message"]
            await expect_warmup(svc, 200, "success")
            assert svc.runtime.state is State.READY
            assert (await svc.client.get("/ready")).status_code == 200

    run(scenario())


def test_failed_permanent_error_no_retry_circuit_open_then_warmup_retries(caplog) -> None:
    async def scenario() -> None:
        loader = Loader(errors=[corrupt(), WeightsMissingError("/secret/weights missing")])
        async with Service(make_settings(load_attempts=4), loader) as svc:
            await svc.wait_state(State.FAILED)
            assert loader.calls == 1  # permanent: not retried
            critical = [
                r for r in caplog.records if r.levelname == "CRITICAL" and r.getMessage() == "model load failed"
            ]
            assert critical and "CheckpointInvalidError" in critical[0].error
            assert svc.runtime.metrics.count("petcut_model_load_failures_total", reason="CheckpointInvalidError") == 1
            body = await expect_health(svc, State.FAILED)
            assert body["model_ready"] is False
            ready = await expect_not_ready(svc, State.FAILED)
            assert "corrupt" in ready["reason"]
            response = await svc.process()
            check_error(response, 503, "model_unavailable")
            assert int(response.headers["retry-after"]) > 1  # the circuit's remaining cool-down
            assert loader.calls == 1  # circuit open: no new attempt
            await expect_preflight(svc)
            # /warmup lets an attempt through at once: it fails again (500), then succeeds (200)
            body = await expect_warmup(svc, 500, "error")
            assert body["model_ready"] is False and "weights" in body["message"]
            assert loader.calls == 2
            await expect_warmup(svc, 200, "success")
            assert loader.calls == 3
            check_png(await svc.process(), (64, 48))

    run(scenario())


def test_failed_circuit_half_opens_after_cool_down() -> None:
    async def scenario() -> None:
        loader = Loader(errors=[ChecksumMismatchError("bad md5")])
        async with Service(make_settings(load_cooldown_s=1.5), loader) as svc:
            await svc.wait_state(State.FAILED)
            check_error(await svc.process(), 503, "model_unavailable")
            assert loader.calls == 1
            await asyncio.sleep(1.6)
            check_error(await svc.process(), 503, "model_loading")  # half-open: one attempt starts
            await svc.wait_state(State.READY)
            assert loader.calls == 2

    run(scenario())


def test_transient_errors_retry_with_backoff_then_succeed() -> None:
    async def scenario() -> None:
        loader = Loader(errors=[TransientLoadError("device init"), OSError("I/O error")])
        async with Service(make_settings(load_attempts=3), loader) as svc:
            await svc.wait_state(State.READY)
            assert loader.calls == 3
            assert svc.runtime.load_attempts == 3

    run(scenario())


def test_transient_errors_exhaust_attempts_then_failed() -> None:
    async def scenario() -> None:
        loader = Loader(errors=[TimeoutError("slow disk")] * 5)
        async with Service(make_settings(load_attempts=3), loader) as svc:
            await svc.wait_state(State.FAILED)
            assert loader.calls == 3
            ready = await expect_not_ready(svc, State.FAILED)
            assert "TimeoutError" in ready["reason"]

    run(scenario())


def test_load_hangs_health_still_answers() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        async with Service(make_settings(warmup_wait_s=0.1), Loader(gate=gate)) as svc:
            await svc.wait_state(State.LOADING)
            for _ in range(5):
                await expect_health(svc, State.LOADING)
            await expect_not_ready(svc, State.LOADING)
            check_error(await svc.process(), 503, "model_loading")
            await expect_warmup(svc, 503, "loading")
            gate.set()

    run(scenario())


def test_draining() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            svc.runtime.begin_draining()
            await expect_health(svc, State.DRAINING)
            await expect_not_ready(svc, State.DRAINING)
            body = check_error(await svc.process(), 503, "draining")
            assert body["status"] == "draining"
            await expect_warmup(svc, 503, "draining")
            await expect_preflight(svc)

    run(scenario())


def test_poisoned() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            svc.segmenter.faults.append(device_fault())
            check_error(await svc.process(), 503, "device_fault")
            assert svc.runtime.state is State.POISONED
            response = await svc.client.get("/health")
            body = check_error(response, 503, "device_fault")
            assert body["model_status"] == "poisoned" and body["container_ready"] is False
            await expect_not_ready(svc, State.POISONED)
            calls = svc.segmenter.calls
            check_error(await svc.process(), 503, "device_fault")
            assert svc.segmenter.calls == calls  # the device is not touched again
            await expect_warmup(svc, 503, "poisoned")
            await expect_preflight(svc)
            svc.runtime.begin_draining()  # poisoned is final
            assert svc.runtime.state is State.POISONED

    run(scenario())


def test_min_instances_runs_a_logged_startup_warmup_even_when_preload_is_skipped(caplog) -> None:
    async def scenario() -> None:
        loader = Loader()
        async with Service(make_settings(skip_model_preload=True, min_instances=1), loader) as svc:
            await svc.wait_state(State.READY)
            assert loader.calls == 1 and svc.segmenter.calls == 2

    with caplog.at_level("INFO"):
        run(scenario())
    steps = [getattr(r, "startup_step", None) for r in caplog.records]
    assert {"imports done", "weights loaded", "warmup done", "ready"} <= set(steps)
    warmup = next(r for r in caplog.records if getattr(r, "startup_step", None) == "warmup done")
    assert warmup.passed is True and "sample" in warmup.warmup


def test_warmup_joins_a_load_in_progress() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        async with Service(make_settings(warmup_wait_s=15), Loader(gate=gate)) as svc:
            await svc.wait_state(State.LOADING)
            pending = asyncio.ensure_future(svc.client.post("/warmup"))
            await asyncio.sleep(0.1)
            assert not pending.done()
            gate.set()
            response = await pending
            assert response.status_code == 200 and response.headers["x-warmup-status"] == "success"
            await wait_for(lambda: svc.runtime.state is State.READY)

    run(scenario())


def test_effects_are_warmed_up_once_the_model_is_ready(caplog) -> None:
    import logging

    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            await wait_for(lambda: any(r.getMessage() == "effects warmed up" for r in caplog.records), what="warm-up")

    with caplog.at_level(logging.INFO, logger="petcut.api"):
        run(scenario())
