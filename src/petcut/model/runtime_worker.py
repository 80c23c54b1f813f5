"""The one inference thread, its bounded queue (admission) and the two deadlines.

Only this thread touches the model. Callers on the event loop submit a job with :meth:`run`; the job
waits at most ``queue_timeout`` to start (else 503, never executed) and ``exec_timeout`` to finish (else
504; the thread cannot be interrupted, the late result is dropped). A caller that goes away (its task is
cancelled, e.g. the client disconnected) takes its job out of the queue. Out-of-memory and device errors
are classified here, on the worker thread, so memory is freed where the model runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from petcut.model.runtime_errors import (
    DeadlineExceeded,
    Fault,
    Unavailable,
    classify,
    free_accelerator_memory,
)
from petcut.observability import Metrics

log = logging.getLogger("petcut.runtime")
T = TypeVar("T")

#: called on the worker thread with the fault kind and a one-line description (type name + text);
#: returns what the caller gets instead of the exception
FaultHandler = Callable[[Fault, str], Unavailable]
#: called on the worker thread before each inference job; a non-None answer refuses the job
Refusal = Callable[[], Unavailable | None]


class _JobState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    CANCELLED = "cancelled"  # its caller went away before it started
    EXPIRED = "expired"  # the queue-wait deadline passed before it started
    DONE = "done"


@dataclass(eq=False)
class _Job(Generic[T]):
    fn: Callable[[], T]
    loop: asyncio.AbstractEventLoop
    started: asyncio.Future[None]
    done: asyncio.Future[T]
    enqueued_at: float
    queue_deadline: float | None
    inference: bool  # classify faults, honour refusals; False for the model load itself
    # the submitter's context (request id, trace): the job's log lines carry them
    context: contextvars.Context = field(default_factory=contextvars.copy_context)
    state: _JobState = _JobState.QUEUED
    started_at: float | None = None
    abandoned: bool = field(default=False)


def _resolve(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class InferenceWorker:
    """A daemon thread that runs submitted callables one at a time, in order."""

    def __init__(
        self,
        *,
        max_queue: int,
        on_fault: FaultHandler,
        refusal: Refusal,
        metrics: Metrics | None = None,
        name: str = "petcut-inference",
    ) -> None:
        self.max_queue = max_queue
        self._on_fault = on_fault
        self._refusal = refusal
        self._metrics = metrics or Metrics()
        self._name = name
        self._queue: queue.SimpleQueue[_Job[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._pending = 0
        self._waiting: set[_Job[Any]] = set()  # queued jobs, for refuse_queued
        self._running: _Job[Any] | None = None
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._ema_seconds = 1.0  # running estimate of one job's duration, for Retry-After

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Refuse new jobs; the thread finishes what is queued, then exits (it is a daemon thread)."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
        self._queue.put(None)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # --- introspection ---------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """Jobs waiting to start."""
        return self._pending

    @property
    def in_flight(self) -> int:
        return 1 if self._running is not None else 0

    def busy_for(self) -> float:
        """Seconds the current job has been running (0 when idle)."""
        job = self._running
        return time.monotonic() - job.started_at if job is not None and job.started_at else 0.0

    def retry_after(self) -> int:
        """A guess at when a rejected request could get in: the queue ahead times a job's duration."""
        return max(1, min(60, math.ceil(self._ema_seconds * (self._pending + 1))))

    @property
    def job_seconds(self) -> float:
        """Running estimate of one job's duration."""
        return self._ema_seconds

    # --- draining (SIGTERM; event loop only) ------------------------------------------------------
    def refuse_queued(self, error: Callable[[], Unavailable]) -> int:
        """Answer every job still waiting to start with ``error()`` (they are never run). Returns how many."""
        with self._lock:
            jobs = [job for job in self._waiting if job.state is _JobState.QUEUED]
            for job in jobs:
                job.state = _JobState.CANCELLED
                self._pending -= 1
            self._waiting.clear()
            self._metrics.set("petcut_inference_queue_depth", self._pending)
        for job in jobs:
            _resolve(job.started, None, None)
            _resolve(job.done, None, error())
        return len(jobs)

    def abandon_running(self, error: Callable[[], Unavailable]) -> bool:
        """Answer the running job's caller with ``error()`` now; the thread finishes it unobserved."""
        job = self._running
        if job is None or job.done.done():
            return False
        job.abandoned = True
        _resolve(job.done, None, error())
        return True

    # --- submit ----------------------------------------------------------------------------------
    async def run(
        self,
        fn: Callable[[], T],
        *,
        queue_timeout: float | None,
        exec_timeout: float | None,
        admit: bool = True,
        inference: bool = True,
    ) -> T:
        """Run ``fn`` on the worker thread and return its result.

        Raises :class:`Unavailable` (queue full: ``overloaded``; not started within ``queue_timeout``:
        ``queue_timeout``; out of memory; device fault; worker stopping), :class:`DeadlineExceeded`
        (started, not finished within ``exec_timeout``), or whatever ``fn`` raised.
        ``admit=False`` skips the queue bound (internal jobs: model load, warmup).
        """
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        job: _Job[T] = _Job(
            fn=fn,
            loop=loop,
            started=loop.create_future(),
            done=loop.create_future(),
            enqueued_at=now,
            queue_deadline=None if queue_timeout is None else now + queue_timeout,
            inference=inference,
        )
        with self._lock:
            if self._stopping:
                raise Unavailable("The service is shutting down.", code="draining", retry_after=10)
            if admit and self._pending >= self.max_queue:
                retry = self.retry_after()
                self._metrics.inc("petcut_inference_failures_total", reason="rejected")
                raise Unavailable("The service is at capacity; retry shortly.", code="overloaded", retry_after=retry)
            self._pending += 1
            self._waiting.add(job)
            self._metrics.set("petcut_inference_queue_depth", self._pending)
        self._queue.put(job)
        try:
            await self._wait_started(job, queue_timeout)
            remaining = None
            if exec_timeout is not None and job.started_at is not None:
                remaining = max(0.0, job.started_at + exec_timeout - time.monotonic())
            # asyncio.wait, not wait_for: a TimeoutError raised by ``fn`` must not look like the deadline
            done, _ = await asyncio.wait({job.done}, timeout=remaining)
            if done:
                return job.done.result()
            self._abandon(job)
            self._metrics.inc("petcut_inference_failures_total", reason="timeout")
            raise DeadlineExceeded("The image took longer than the processing deadline.", code="deadline_exceeded")
        except asyncio.CancelledError:
            self._withdraw(job)
            raise

    async def _wait_started(self, job: _Job[Any], queue_timeout: float | None) -> None:
        done, _ = await asyncio.wait({job.started}, timeout=queue_timeout)
        if not done:
            with self._lock:
                expired = job.state is _JobState.QUEUED
                if expired:
                    job.state = _JobState.EXPIRED
                    self._waiting.discard(job)
                    self._pending -= 1
                    self._metrics.set("petcut_inference_queue_depth", self._pending)
            if expired:
                self._metrics.inc("petcut_inference_failures_total", reason="queue_timeout")
                raise Unavailable(
                    "The request waited too long for the model; it was not processed. Retry shortly.",
                    code="queue_timeout",
                    retry_after=self.retry_after(),
                ) from None
            # the worker took it at the last moment: started_at is set, go on to the result

    @staticmethod
    def _abandon(job: _Job[Any]) -> None:
        """Nobody will read this job's outcome: drop it quietly when it comes."""
        job.abandoned = True
        job.done.add_done_callback(lambda f: f.cancelled() or f.exception())

    def _withdraw(self, job: _Job[Any]) -> None:
        with self._lock:
            if job.state is _JobState.QUEUED:
                job.state = _JobState.CANCELLED
                self._waiting.discard(job)
                self._pending -= 1
                self._metrics.set("petcut_inference_queue_depth", self._pending)
            else:
                self._abandon(job)
        log.info("inference job withdrawn (caller went away)", extra={"job_state": job.state.value})

    # --- the thread ------------------------------------------------------------------------------
    def _main(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            refusal: Unavailable | None = None
            now = time.monotonic()
            with self._lock:
                if job.state is not _JobState.QUEUED:
                    continue
                self._waiting.discard(job)
                self._pending -= 1
                self._metrics.set("petcut_inference_queue_depth", self._pending)
                if job.queue_deadline is not None and now > job.queue_deadline:
                    job.state = _JobState.EXPIRED
                    refusal = Unavailable(
                        "The request waited too long for the model; it was not processed. Retry shortly.",
                        code="queue_timeout",
                        retry_after=self.retry_after(),
                    )
                else:
                    job.state = _JobState.RUNNING
                    job.started_at = now
                    self._running = job
            if refusal is None and job.inference:
                refusal = self._refusal()
            self._call(job, _resolve, job.started, None, None)
            if refusal is not None:
                with self._lock:
                    job.state = _JobState.DONE
                    self._running = None
                self._call(job, _resolve, job.done, None, refusal)
                continue
            if job.inference:
                self._metrics.observe("petcut_inference_seconds", now - job.enqueued_at, phase="queue_wait")
            self._metrics.set("petcut_inference_in_flight", 1)
            result, error = job.context.run(self._execute, job)
            elapsed = time.monotonic() - now
            self._ema_seconds = 0.7 * self._ema_seconds + 0.3 * elapsed
            with self._lock:
                job.state = _JobState.DONE
                self._running = None
            self._metrics.set("petcut_inference_in_flight", 0)
            if job.inference:
                self._metrics.observe("petcut_inference_seconds", elapsed, phase="compute")
                if error is not None and not job.abandoned and not isinstance(error, Unavailable):
                    self._metrics.inc("petcut_inference_failures_total", reason="other")
            if job.abandoned:
                log.warning(
                    "inference finished after its caller gave up",
                    extra={"seconds": round(elapsed, 3), "failed": error is not None},
                )
            self._call(job, _resolve, job.done, result, error)
            del job, result, error  # drop references to arrays before waiting for the next job

    def _execute(self, job: _Job[Any]) -> tuple[Any, BaseException | None]:
        fault = Fault.OTHER
        description = ""
        try:
            return job.fn(), None
        except Exception as exc:
            fault = classify(exc) if job.inference else Fault.OTHER
            if fault is Fault.OTHER:
                return None, exc
            description = f"{type(exc).__name__}: {str(exc)[:500]}"
        # outside the ``except`` block: the exception and its frames (holding tensors) are released
        if fault is Fault.OOM:
            free_accelerator_memory()
        return None, self._on_fault(fault, description)

    @staticmethod
    def _call(job: _Job[Any], fn: Callable[..., None], *args: Any) -> None:
        # RuntimeError: the event loop is closed (process shutting down): nobody is waiting
        with contextlib.suppress(RuntimeError):
            job.loop.call_soon_threadsafe(fn, *args)
