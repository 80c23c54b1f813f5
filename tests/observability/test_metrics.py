"""``GET /metrics``: scraped after each fault, the right series moved (fake segmenters, in process)."""

from __future__ import annotations

import asyncio
import sys
import threading
import types
from typing import Any

import httpx
import pytest

from petcut.model.runtime import State
from petcut.observability import GpuMemoryCollector, Metrics
from tests.support.checks import check_edge, check_error
from tests.support.fakes import Loader, corrupt, oom
from tests.support.images import jpeg_bytes
from tests.support.metrics import Scrape, scrape
from tests.support.service import Service, degraded_service, make_settings, run, wait_for

SHOP_QUERY = {"return_all_effects": "true", "effects": "enhancedblackwhite,color"}


async def shop_request(svc: Service, data: bytes | None = None) -> httpx.Response:
    files = {"file": ("pet.jpg", data if data is not None else jpeg_bytes(), "image/jpeg")}
    return await svc.client.post(
        "/api/v2/process-with-effects", params=SHOP_QUERY, files=files, data={"effects": SHOP_QUERY["effects"]}
    )


def test_ready_service_exposes_state_load_warmup_process_and_build_series() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            m = await scrape(svc)
            assert m("petcut_model_state", state="ready") == 1
            assert sum(m("petcut_model_state", state=s) for s in State) == 1  # one state at a time
            assert m("petcut_model_load_attempts_total") == 1
            assert m("petcut_model_load_seconds_count") == 1
            assert m("petcut_warmup_total", result="success") == 1
            assert m("petcut_warmup_total", result="partial") == 0
            assert m("petcut_warmup_last_seconds") > 0
            assert m("process_resident_memory_bytes") > 10_000_000
            assert m("petcut_build_info", version="0.1.0", mode="fast", device="auto", model="inspyrenet-fast",
                     model_choice="configured") == 1  # fmt: skip
            assert m("petcut_inference_queue_depth") == 0 and m("petcut_inference_in_flight") == 0
            # the warmup ran the user path: every phase of the inference histogram moved
            for phase in ("decode", "queue_wait", "compute", "post", "render"):
                assert m("petcut_inference_seconds_count", phase=phase) >= 2, phase
            # every failure reason exists from the start, at zero
            for reason in ("rejected", "queue_timeout", "timeout", "oom", "device", "bad_input", "other"):
                assert m.has("petcut_inference_failures_total", reason=reason)
            assert "petcut_gpu_memory_bytes" not in m.names()  # no CUDA here
            assert not any(name.endswith("_created") for name in m.names())

    run(scenario())


def test_request_counts_use_route_templates_and_include_edge_answers() -> None:
    """404, a 413 sent before the body, a preflight and a 500 are all counted, by template."""

    async def scenario() -> None:
        settings = make_settings(max_upload_mb=0.1)
        async with Service(settings) as svc:
            segmenter = svc.segmenter
            await svc.wait_state(State.READY)
            assert (await svc.client.get("/no/such/path")).status_code == 404
            assert (await svc.client.get("/session/abc123/images")).status_code == 200
            big = await svc.client.post(
                "/api/v2/remove-background",
                content=b"x" * 600_000,
                headers={"content-type": "multipart/form-data; boundary=x"},
            )
            check_error(big, 413)
            preflight = await svc.client.options(
                "/api/v2/process-with-effects", headers={"Access-Control-Request-Method": "POST"}
            )
            assert preflight.status_code == 204
            segmenter.faults.append(ValueError("a bug in the model path"))
            check_error(await svc.process(), 500, "internal_error")
            ok = await svc.process()
            assert ok.status_code == 200
            m = await scrape(svc)
            assert m("petcut_http_requests_total", route="<unmatched>", method="GET", code="404") == 1
            assert m("petcut_http_requests_total", route="/session/{session_id}/images", method="GET", code="200") == 1
            assert m("petcut_http_requests_total", route="/api/v2/remove-background", method="POST", code="413") == 1
            assert m("petcut_http_requests_total", route="/api/v2/remove-background", method="POST", code="500") == 1
            assert m("petcut_http_requests_total", route="/api/v2/remove-background", method="POST", code="200") == 1
            shop = "/api/v2/process-with-effects"
            assert m("petcut_http_requests_total", route=shop, method="OPTIONS", code="204") == 1
            assert m("petcut_inference_failures_total", reason="other") == 1
            duration = m("petcut_http_request_duration_seconds_count", route="/api/v2/remove-background", method="POST")
            assert duration == 3
            # the raw path never becomes a label
            assert "abc123" not in m.text and "/no/such/path" not in m.text
            # the previous scrape is counted by the next one
            again = await scrape(svc)
            assert again("petcut_http_requests_total", route="/metrics", method="GET", code="200") == 1

    run(scenario())


def test_bad_input_and_oom_count_as_failures() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            check_error(await svc.process(b"this is not an image"), 415)
            check_error(await svc.process(jpeg_bytes()[:200]), 422)
            svc.segmenter.faults.append(oom())
            check_error(await svc.process(), 503, "out_of_memory")
            m = await scrape(svc)
            assert m("petcut_inference_failures_total", reason="bad_input") == 2
            assert m("petcut_inference_failures_total", reason="oom") == 1
            assert m("petcut_inference_failures_total", reason="other") == 0
            assert m("petcut_http_requests_total", route="/api/v2/remove-background", method="POST", code="415") == 1
            assert m("petcut_http_requests_total", route="/api/v2/remove-background", method="POST", code="503") == 1

    run(scenario())


def test_queue_full_counts_rejected_and_gauges_show_depth_while_metrics_bypasses_admission() -> None:
    async def scenario() -> None:
        async with Service(make_settings(max_queue=1)) as svc:
            await svc.wait_state(State.READY)
            segmenter = svc.segmenter
            first = await svc.occupy_worker(segmenter)
            second = asyncio.ensure_future(svc.process())
            await wait_for(lambda: svc.runtime.worker.depth == 1, what="second job queued")
            check_error(await svc.process(), 503, "overloaded")
            m = await scrape(svc)  # answers while the worker is busy (gate closed) and the queue is full
            assert m("petcut_inference_queue_depth") == 1
            assert m("petcut_inference_in_flight") == 1
            assert m("petcut_inference_failures_total", reason="rejected") == 1
            segmenter.gate.set()
            assert (await first).status_code == 200 and (await second).status_code == 200
            m = await scrape(svc)
            assert m("petcut_inference_queue_depth") == 0 and m("petcut_inference_in_flight") == 0

    run(scenario())


def test_execution_deadline_counts_timeout() -> None:
    async def scenario() -> None:
        async with Service(make_settings(inference_timeout_s=0.3)) as svc:
            await svc.wait_state(State.READY)
            svc.segmenter.gate = threading.Event()
            check_error(await svc.process(), 504, "deadline_exceeded")
            svc.segmenter.gate.set()
            m = await scrape(svc)
            assert m("petcut_inference_failures_total", reason="timeout") == 1
            assert m("petcut_http_requests_total", route="/api/v2/remove-background", method="POST", code="504") == 1

    run(scenario())


def test_repeated_shop_request_is_a_cache_hit() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            before = await scrape(svc)
            assert before("petcut_cache_requests_total", backend="memory", result="hit") == 0
            data = jpeg_bytes(80, 60)
            first = await shop_request(svc, data)
            assert first.status_code == 200 and first.json()["cache_info"]["total_cache_hits"] == 0
            after_first = await scrape(svc)
            misses = after_first("petcut_cache_requests_total", backend="memory", result="miss")
            assert misses == 3  # two effects and the cut-out
            second = await shop_request(svc, data)
            assert second.json()["cache_info"]["total_cache_hits"] == 3  # both effects, so no cut-out needed
            m = await scrape(svc)
            assert m("petcut_cache_requests_total", backend="memory", result="hit") == 2  # two lookups
            assert m("petcut_cache_requests_total", backend="memory", result="miss") == misses
            assert m("petcut_cache_requests_total", backend="memory", result="error") == 0
            assert m("petcut_cache_size_bytes", backend="memory") > 0
            # the cached request did no model work
            assert m("petcut_inference_seconds_count", phase="compute") == after_first(
                "petcut_inference_seconds_count", phase="compute"
            )

    run(scenario())


def test_failed_load_sets_state_failures_and_warmup_error() -> None:
    async def scenario() -> None:
        async with Service(loader=Loader(errors=[corrupt()])) as svc:
            await svc.wait_state(State.FAILED)
            m = await scrape(svc)
            assert m("petcut_model_state", state="failed") == 1
            assert m("petcut_model_state", state="loading") == 0
            assert m("petcut_model_load_attempts_total") == 1  # permanent: no retry
            assert m("petcut_model_load_failures_total", reason="CheckpointInvalidError") == 1
            assert m("petcut_model_load_seconds_count") == 0
            assert m("petcut_warmup_total", result="error") == 1
            assert m("petcut_warmup_total", result="success") == 0

    run(scenario())


def test_failed_warmup_is_partial_then_success() -> None:
    async def scenario() -> None:
        async with degraded_service() as (svc, _):
            m = await scrape(svc)
            assert m("petcut_warmup_total", result="partial") == 1
            assert m("petcut_model_state", state="degraded") == 1
            response = await svc.client.post("/warmup")
            assert response.status_code == 200
            m = await scrape(svc)
            assert m("petcut_warmup_total", result="success") == 1
            assert m("petcut_model_state", state="ready") == 1 and m("petcut_model_state", state="degraded") == 0

    run(scenario())


def test_each_app_has_its_own_registry() -> None:
    async def scenario() -> None:
        async with Service() as one, Service() as two:
            await one.wait_state(State.READY)
            await two.wait_state(State.READY)
            await one.client.get("/nope")
            assert (await scrape(one))("petcut_http_requests_total", route="<unmatched>", method="GET", code="404") == 1
            assert (await scrape(two))("petcut_http_requests_total", route="<unmatched>", method="GET", code="404") == 0
            assert one.app.state.metrics.registry is not two.app.state.metrics.registry

    run(scenario())


def test_metrics_answers_without_cors_origin_and_in_every_state() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        async with Service(loader=Loader(gate=gate)) as svc:
            await svc.wait_state(State.LOADING)
            response = await svc.client.get("/metrics", headers={"Origin": "https://evil.example"})
            assert response.status_code == 200
            check_edge(response, origin=None)
            assert Scrape(response.text)("petcut_model_state", state="loading") == 1
            gate.set()
            await svc.wait_state(State.READY)

    run(scenario())


# --- units ----------------------------------------------------------------------------------------------
def test_gpu_memory_is_read_only_when_torch_is_imported_and_cuda_initialised(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake_torch(initialised: bool) -> Any:
        cuda = types.SimpleNamespace(
            is_initialized=lambda: initialised, memory_allocated=lambda: 1234, memory_reserved=lambda: 5678
        )
        return types.SimpleNamespace(cuda=cuda)

    monkeypatch.delitem(sys.modules, "torch", raising=False)
    assert list(GpuMemoryCollector().collect()) == []
    monkeypatch.setitem(sys.modules, "torch", fake_torch(False))
    assert list(GpuMemoryCollector().collect()) == []
    monkeypatch.setitem(sys.modules, "torch", fake_torch(True))
    metrics = Metrics(process=False)
    m = Scrape(metrics.render().decode())
    assert m("petcut_gpu_memory_bytes", kind="allocated") == 1234
    assert m("petcut_gpu_memory_bytes", kind="reserved") == 5678


def test_unknown_series_or_labels_never_raise(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics(process=False)
    metrics.inc("petcut_no_such_series_total")
    metrics.inc("petcut_inference_failures_total", wrong_label="x")
    metrics.observe("petcut_inference_seconds", 0.1, phase="compute")
    assert metrics.sample("petcut_inference_seconds_count", phase="compute") == 1
    assert metrics.count("petcut_no_such_series_total") == 1  # still readable in process
    assert sum("metric not recorded" in r.getMessage() for r in caplog.records) == 2
