"""Fault injection through HTTP: out-of-memory, device errors, a full queue, both deadlines, a client
that goes away, and /health while the worker is saturated."""

from __future__ import annotations

import asyncio
import threading

import pytest

from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error, check_png
from tests.support.fakes import FakeSegmenter, Loader, cuda_oom_runtime_error, device_runtime_error, oom
from tests.support.images import jpeg_bytes
from tests.support.service import Service, make_settings, run, wait_for


async def ready_service(svc: Service) -> FakeSegmenter:
    await svc.wait_state(State.READY)
    return svc.segmenter


@pytest.mark.parametrize("fault", [oom, cuda_oom_runtime_error], ids=["OutOfMemory", "RuntimeError-CUDA-OOM"])
def test_oom_once_is_503_and_the_next_request_succeeds(fault, caplog) -> None:
    async def scenario() -> None:
        async with Service() as svc:
            segmenter = await ready_service(svc)
            segmenter.faults.append(fault())
            body = check_error(await svc.process(), 503, "out_of_memory")
            assert body["status"] == "ready"
            assert svc.runtime.state is State.READY
            assert svc.runtime.metrics.count("petcut_inference_failures_total", reason="oom") == 1
            assert any(r.levelname == "ERROR" and "out of memory" in r.getMessage() for r in caplog.records)
            check_png(await svc.process(), (64, 48))
            assert (await svc.client.get("/ready")).status_code == 200

    run(scenario())


def test_repeated_oom_degrades_for_a_cool_down_then_ready() -> None:
    async def scenario() -> None:
        async with Service(make_settings(oom_window_s=60, oom_cooldown_s=2.0)) as svc:
            segmenter = await ready_service(svc)
            segmenter.faults.extend([oom(), oom()])
            check_error(await svc.process(), 503, "out_of_memory")
            check_error(await svc.process(), 503, "out_of_memory")
            assert svc.runtime.state is State.DEGRADED
            ready = check_error(await svc.client.get("/ready"), 503, "not_ready")
            assert ready["status"] == "degraded" and "out-of-memory" in ready["reason"]
            health = await svc.client.get("/health")
            assert health.status_code == 200 and health.json()["model_status"] == "degraded"
            check_png(await svc.process(), (64, 48))  # degraded still serves
            await svc.wait_state(State.READY, timeout=10)
            assert (await svc.client.get("/ready")).status_code == 200

    run(scenario())


def test_oom_outside_the_window_does_not_degrade() -> None:
    async def scenario() -> None:
        async with Service(make_settings(oom_window_s=0.2)) as svc:
            segmenter = await ready_service(svc)
            segmenter.faults.append(oom())
            check_error(await svc.process(), 503, "out_of_memory")
            await asyncio.sleep(0.3)
            segmenter.faults.append(oom())
            check_error(await svc.process(), 503, "out_of_memory")
            assert svc.runtime.state is State.READY

    run(scenario())


def test_cuda_runtime_error_poisons(caplog) -> None:
    async def scenario() -> None:
        async with Service() as svc:
            segmenter = await ready_service(svc)
            segmenter.faults.append(device_runtime_error())
            check_error(await svc.process(), 503, "device_fault")
            check_error(await svc.client.get("/health"), 503, "device_fault")
            assert svc.runtime.metrics.count("petcut_inference_failures_total", reason="device") == 1
            assert any(r.levelname == "CRITICAL" and "poisoned" in r.getMessage() for r in caplog.records)

    run(scenario())


def test_queue_full_is_503_at_once_and_health_answers_while_saturated() -> None:
    async def scenario() -> None:
        async with Service(make_settings(max_queue=1)) as svc:
            segmenter = await ready_service(svc)
            first = await svc.occupy_worker(segmenter)
            second = asyncio.ensure_future(svc.process())
            await wait_for(lambda: svc.runtime.worker.depth == 1, what="second job queued")
            calls = segmenter.calls
            third = await svc.process()  # answered while the worker is held (gate closed): refused, not queued
            assert segmenter.calls == calls and svc.runtime.worker.depth == 1
            body = check_error(third, 503, "overloaded")
            assert body["status"] == "ready"
            assert svc.runtime.metrics.count("petcut_inference_failures_total", reason="rejected") == 1
            for _ in range(3):  # answered while the worker is held and the queue is full
                health = await svc.client.get("/health")
                assert health.status_code == 200 and svc.runtime.worker.depth == 1
                check_edge(health)
            segmenter.gate.set()
            check_png(await first, (64, 48))
            check_png(await second, (64, 48))
            assert svc.runtime.worker.depth == 0

    run(scenario())


def test_queue_wait_deadline_is_503_and_the_job_is_not_executed() -> None:
    async def scenario() -> None:
        async with Service(make_settings(queue_timeout_s=0.5)) as svc:
            segmenter = await ready_service(svc)
            first = await svc.occupy_worker(segmenter)
            calls = segmenter.calls
            waited = await svc.process()
            body = check_error(waited, 503, "queue_timeout")
            assert "not processed" in body["error"]["message"]
            assert svc.runtime.metrics.count("petcut_inference_failures_total", reason="queue_timeout") == 1
            segmenter.gate.set()
            check_png(await first, (64, 48))
            await asyncio.sleep(0.1)
            assert segmenter.calls == calls  # the expired job never reached the model
            assert svc.runtime.worker.depth == 0

    run(scenario())


def test_execution_deadline_is_504_and_the_service_recovers() -> None:
    async def scenario() -> None:
        async with Service(make_settings(inference_timeout_s=0.3)) as svc:
            segmenter = await ready_service(svc)
            segmenter.gate = threading.Event()
            check_error(await svc.process(), 504, "deadline_exceeded")
            assert svc.runtime.metrics.count("petcut_inference_failures_total", reason="timeout") == 1
            segmenter.gate.set()
            segmenter.gate = None
            await wait_for(lambda: svc.runtime.worker.in_flight == 0, what="late job finished")
            check_png(await svc.process(), (64, 48))
            assert svc.runtime.state is State.READY

    run(scenario())


def test_client_disconnect_withdraws_the_queued_job() -> None:
    """A raw ASGI request whose client goes away while its job waits in the queue."""

    async def scenario() -> None:
        async with Service() as svc:
            segmenter = await ready_service(svc)
            first = await svc.occupy_worker(segmenter)
            calls = segmenter.calls

            boundary = "b0undary"
            body = (
                (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                + jpeg_bytes()
                + f"\r\n--{boundary}--\r\n".encode()
            )
            gone = asyncio.Event()
            messages = [{"type": "http.request", "body": body, "more_body": False}]
            sent: list[dict] = []

            async def receive() -> dict:
                if messages:
                    return messages.pop(0)
                await gone.wait()
                return {"type": "http.disconnect"}

            async def send(message: dict) -> None:
                sent.append(message)

            scope = {
                "type": "http",
                "asgi": {"version": "3.0"},
                "http_version": "1.1",
                "method": "POST",
                "scheme": "http",
                "path": "/api/v2/remove-background",
                "raw_path": b"/api/v2/remove-background",
                "query_string": b"",
                "root_path": "",
                "headers": [
                    (b"host", b"petcut.test"),
                    (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
                "client": ("127.0.0.1", 1234),
                "server": ("petcut.test", 80),
                "state": {},
            }
            request = asyncio.ensure_future(svc.app(scope, receive, send))
            await wait_for(lambda: svc.runtime.worker.depth == 1, what="job queued")
            gone.set()
            await asyncio.wait_for(request, 10)
            assert svc.runtime.worker.depth == 0
            segmenter.gate.set()
            check_png(await first, (64, 48))
            await asyncio.sleep(0.1)
            assert segmenter.calls == calls  # the withdrawn job never ran
            start = next(m for m in sent if m["type"] == "http.response.start")
            assert start["status"] == 499

    run(scenario())


def test_inference_runs_on_the_single_worker_thread() -> None:
    async def scenario() -> None:
        segmenter = FakeSegmenter()
        async with Service(loader=Loader(segmenter)) as svc:
            await svc.wait_state(State.READY)
            await asyncio.gather(*(svc.process() for _ in range(4)))
            assert segmenter.thread_names == {"petcut-inference"}

    run(scenario())


def test_warmup_that_cannot_reach_a_busy_model_is_206_and_does_not_degrade() -> None:
    async def scenario() -> None:
        async with Service(make_settings(queue_timeout_s=0.5)) as svc:
            segmenter = await ready_service(svc)
            first = await svc.occupy_worker(segmenter)
            response = await svc.client.get("/warmup")  # GET works as POST
            assert response.status_code == 206, response.text
            check_edge(response)
            assert response.headers["x-warmup-status"] == "partial"
            assert "waited too long" in response.json()["message"]
            assert svc.runtime.state is State.READY
            segmenter.gate.set()
            check_png(await first, (64, 48))

    run(scenario())
