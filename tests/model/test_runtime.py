"""The model runtime without HTTP: retry policy, fault classification, the worker's queue and deadlines,
and state transitions driven directly."""

from __future__ import annotations

import asyncio
import random
import threading
import types

import numpy as np
import pytest

from petcut.model.base import (
    CheckpointInvalidError,
    ChecksumMismatchError,
    DeviceFault,
    DeviceUnavailableError,
    DownloadError,
    OutOfMemory,
    WeightsMissingError,
)
from petcut.model.runtime import ModelRuntime, State, backoff_delay, describe_load_error, is_transient
from petcut.model.runtime_errors import DeadlineExceeded, Fault, Unavailable, classify
from petcut.model.runtime_worker import InferenceWorker
from tests.support.fakes import FakeSegmenter, Loader
from tests.support.service import make_settings, run, wait_for


# --- policy ----------------------------------------------------------------------------------------
def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    for attempt, base in ((1, 1.0), (2, 1.0), (3, 1.0), (4, 0.5)):
        full = base * 2 ** (attempt - 1)
        delays = [backoff_delay(attempt, base, rng=rng) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 100  # jittered
    assert all(backoff_delay(20, 1.0, cap=30, rng=rng) <= 30 for _ in range(50))


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (DownloadError("offline"), True),
        (OutOfMemory("oom"), True),
        (OSError("EIO"), True),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
        (WeightsMissingError("x"), False),
        (ChecksumMismatchError("x"), False),
        (CheckpointInvalidError("x"), False),
        (DeviceUnavailableError("x"), False),
        (FileNotFoundError("x"), False),
        (PermissionError("x"), False),
        (ValueError("x"), False),
        (RuntimeError("x"), False),
    ],
)
def test_transient_load_errors(error: BaseException, transient: bool) -> None:
    assert is_transient(error) is transient


def test_load_error_descriptions_hold_no_paths_or_exception_text() -> None:
    for error in (
        WeightsMissingError("/secret/a.pth"),
        ChecksumMismatchError("/secret/a.pth"),
        CheckpointInvalidError("/secret/a.pth"),
        DeviceUnavailableError("/secret"),
        DownloadError("/secret"),
        RuntimeError("/secret/x"),
    ):
        text = describe_load_error(error)
        assert "/secret" not in text and text.endswith(".")


def _torch_like(name: str, module: str, base: type[BaseException] = RuntimeError) -> BaseException:
    cls = types.new_class(name, (base,))
    cls.__module__ = module
    return cls("CUDA out of memory")


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (OutOfMemory("x"), Fault.OOM),
        (_torch_like("OutOfMemoryError", "torch.cuda"), Fault.OOM),
        (RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"), Fault.OOM),
        (RuntimeError("MPS backend out of memory"), Fault.OOM),
        (DeviceFault("x"), Fault.DEVICE),
        (RuntimeError("CUDA error: an illegal memory access was encountered"), Fault.DEVICE),
        (RuntimeError("CUDA error: device-side assert triggered"), Fault.DEVICE),
        (RuntimeError("CUBLAS_STATUS_EXECUTION_FAILED when calling cublasSgemm"), Fault.DEVICE),
        (RuntimeError("shapes do not match"), Fault.OTHER),
        (MemoryError(), Fault.OTHER),
        (ValueError("CUDA error"), Fault.OTHER),
    ],
)
def test_classify(error: BaseException, fault: Fault) -> None:
    assert classify(error) is fault


# --- the worker ------------------------------------------------------------------------------------
def _worker(max_queue: int = 4, faults: list | None = None) -> InferenceWorker:
    seen = faults if faults is not None else []

    def on_fault(fault: Fault, description: str) -> Unavailable:
        seen.append((fault, description))
        return Unavailable("fault", code=str(fault), retry_after=1)

    worker = InferenceWorker(max_queue=max_queue, on_fault=on_fault, refusal=lambda: None)
    worker.start()
    return worker


def test_worker_runs_jobs_in_order_on_one_thread() -> None:
    async def scenario() -> None:
        worker = _worker()
        order: list[int] = []
        threads: set[str] = set()

        def job(i: int) -> int:
            threads.add(threading.current_thread().name)
            order.append(i)
            return i * 10

        results = await asyncio.gather(
            *(worker.run(lambda i=i: job(i), queue_timeout=5, exec_timeout=5) for i in range(4))
        )
        assert results == [0, 10, 20, 30] and order == [0, 1, 2, 3]
        assert threads == {"petcut-inference"}
        worker.stop()

    run(scenario())


def test_worker_admission_bounds_the_queue() -> None:
    async def scenario() -> None:
        worker = _worker(max_queue=1)
        gate = threading.Event()
        running = asyncio.ensure_future(worker.run(gate.wait, queue_timeout=5, exec_timeout=10))
        await wait_for(lambda: worker.in_flight == 1)
        queued = asyncio.ensure_future(worker.run(lambda: "queued", queue_timeout=5, exec_timeout=10))
        await wait_for(lambda: worker.depth == 1)
        with pytest.raises(Unavailable) as rejected:
            await worker.run(lambda: "rejected", queue_timeout=5, exec_timeout=10)
        assert rejected.value.code == "overloaded" and rejected.value.retry_after >= 1
        # internal jobs (admit=False) are not bounded
        internal = asyncio.ensure_future(worker.run(lambda: "internal", queue_timeout=5, exec_timeout=10, admit=False))
        gate.set()
        assert await running is True
        assert await queued == "queued" and await internal == "internal"
        worker.stop()

    run(scenario())


def test_a_timeout_error_raised_by_the_job_is_not_the_deadline() -> None:
    async def scenario() -> None:
        worker = _worker()

        def slow_io() -> None:
            raise TimeoutError("the job's own timeout")

        with pytest.raises(TimeoutError, match="own timeout"):
            await worker.run(slow_io, queue_timeout=5, exec_timeout=5)
        with pytest.raises(TimeoutError):
            await worker.run(slow_io, queue_timeout=None, exec_timeout=None, inference=False)
        worker.stop()

    run(scenario())


def test_execution_deadline_and_queue_deadline() -> None:
    async def scenario() -> None:
        worker = _worker()
        gate = threading.Event()
        ran: list[str] = []
        with pytest.raises(DeadlineExceeded):
            await worker.run(gate.wait, queue_timeout=5, exec_timeout=0.1)
        with pytest.raises(Unavailable) as expired:
            await worker.run(lambda: ran.append("late"), queue_timeout=0.1, exec_timeout=5)
        assert expired.value.code == "queue_timeout"
        gate.set()
        await wait_for(lambda: worker.in_flight == 0)
        assert await worker.run(lambda: "after", queue_timeout=5, exec_timeout=5) == "after"
        assert ran == []
        worker.stop()

    run(scenario())


def test_cancelled_caller_withdraws_its_queued_job() -> None:
    async def scenario() -> None:
        worker = _worker()
        gate = threading.Event()
        ran: list[str] = []
        running = asyncio.ensure_future(worker.run(gate.wait, queue_timeout=5, exec_timeout=10))
        await wait_for(lambda: worker.in_flight == 1)
        queued = asyncio.ensure_future(worker.run(lambda: ran.append("x"), queue_timeout=5, exec_timeout=10))
        await wait_for(lambda: worker.depth == 1)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert worker.depth == 0
        gate.set()
        await running
        await worker.run(lambda: None, queue_timeout=5, exec_timeout=5)
        assert ran == []
        worker.stop()

    run(scenario())


def test_faults_are_classified_on_the_worker() -> None:
    async def scenario() -> None:
        seen: list = []
        worker = _worker(faults=seen)

        def oom() -> None:
            raise OutOfMemory("CUDA out of memory")

        def bug() -> None:
            raise KeyError("bug")

        with pytest.raises(Unavailable) as refused:
            await worker.run(oom, queue_timeout=5, exec_timeout=5)
        assert refused.value.code == "oom" and seen[0][0] is Fault.OOM
        with pytest.raises(KeyError):
            await worker.run(bug, queue_timeout=5, exec_timeout=5)
        # the model load is not an inference: its errors are returned as they are
        with pytest.raises(OutOfMemory):
            await worker.run(oom, queue_timeout=None, exec_timeout=None, inference=False)
        assert len(seen) == 1
        worker.stop()

    run(scenario())


def test_stopped_worker_refuses_new_jobs() -> None:
    async def scenario() -> None:
        worker = _worker()
        worker.stop()
        with pytest.raises(Unavailable) as refused:
            await worker.run(lambda: None, queue_timeout=1, exec_timeout=1)
        assert refused.value.code == "draining"
        await wait_for(lambda: not worker.alive)

    run(scenario())


# --- the runtime -----------------------------------------------------------------------------------
def test_runtime_lifecycle_without_http() -> None:
    async def scenario() -> None:
        segmenter = FakeSegmenter()
        runtime = ModelRuntime(make_settings(skip_model_preload=True), Loader(segmenter))
        await runtime.start()
        assert runtime.state is State.NOT_LOADED
        with pytest.raises(Unavailable) as loading:
            runtime.check_available()
        assert loading.value.code == "model_loading"
        await wait_for(lambda: runtime.state is State.READY)  # no probe: warmup trivially passes
        alpha = await runtime.predict_alpha(np.zeros((5, 7, 3), np.uint8))
        assert alpha.shape == (5, 7)
        status = runtime.status()
        assert status.model_ready and status.device == "cpu" and status.description == "fake segmenter"
        await runtime.stop()
        assert runtime.state is State.DRAINING
        await wait_for(lambda: not runtime.worker.alive)

    run(scenario())


def test_failed_runtime_retry_after_is_the_remaining_cool_down() -> None:
    async def scenario() -> None:
        runtime = ModelRuntime(make_settings(load_cooldown_s=40), Loader(errors=[CheckpointInvalidError("x")]))
        await runtime.start()
        await wait_for(lambda: runtime.state is State.FAILED)
        assert 30 <= runtime.retry_after() <= 40
        with pytest.raises(Unavailable) as refused:
            runtime.check_available()
        assert refused.value.code == "model_unavailable" and 30 <= refused.value.retry_after <= 40
        await runtime.stop()

    run(scenario())


def test_warmup_probe_failure_degrades_with_the_step_in_the_message() -> None:
    class StepFailed(Exception):
        step = "sample photo"

    async def probe(runtime: ModelRuntime) -> dict:
        try:
            raise ZeroDivisionError("secret")
        except ZeroDivisionError as exc:
            raise StepFailed() from exc

    async def scenario() -> None:
        runtime = ModelRuntime(make_settings(), Loader(), warmup_probe=probe)
        await runtime.start()
        await wait_for(lambda: runtime.state is State.DEGRADED)
        result = runtime.last_warmup
        assert result is not None and not result.passed
        assert "sample photo" in result.message and "ZeroDivisionError" in result.message
        assert "secret" not in result.message
        await runtime.stop()

    run(scenario())


def test_stop_returns_even_when_the_worker_hangs() -> None:
    async def scenario() -> None:
        gate = threading.Event()
        runtime = ModelRuntime(make_settings(), Loader(gate=gate))
        await runtime.start()
        await wait_for(lambda: runtime.state is State.LOADING)
        await runtime.stop(timeout=0.2)  # returns (the gate still closed): it did not wait for the hung loader
        gate.set()

    run(scenario())


def test_request_drain_is_safe_from_another_thread() -> None:
    async def scenario() -> None:
        runtime = ModelRuntime(make_settings(), Loader())
        await runtime.start()
        await wait_for(lambda: runtime.state is State.READY)
        thread = threading.Thread(target=runtime.request_drain)
        thread.start()
        thread.join()
        await wait_for(lambda: runtime.state is State.DRAINING)
        await runtime.stop()

    run(scenario())
