"""The model runtime: one segmenter per process, its state machine, background load and warmup.

States (docs/architecture.md)::

    not_loaded → loading → warming → ready
    loading → failed (after retries)         failed → loading (circuit half-open, or /warmup)
    warming → degraded (warmup failed)       ready ⇄ degraded (repeated out-of-memory)
    any → draining (SIGTERM)                 any → poisoned (non-recoverable device error)

Everything that touches the model runs on the single :class:`InferenceWorker` thread, the load
included. The event loop only schedules; state is guarded by a lock because the worker reports faults
from its own thread. The warmup is a probe injected by the layer above (it runs the user path: decode →
model → cut-out → encode), so this module never imports the pipeline or the HTTP layer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from petcut.config import Settings
from petcut.model.base import (
    AlphaMatte,
    ArtifactUnusableError,
    CheckpointInvalidError,
    ChecksumMismatchError,
    DeviceUnavailableError,
    DownloadError,
    ModelError,
    RGBImage,
    Segmenter,
    WeightsMissingError,
)
from petcut.model.runtime_errors import Fault, RuntimeRejection, Unavailable
from petcut.model.runtime_worker import InferenceWorker
from petcut.observability import Metrics, StartupTimeline

log = logging.getLogger("petcut.runtime")
T = TypeVar("T")


class State(StrEnum):
    """The runtime's states (the diagram above)."""

    NOT_LOADED = "not_loaded"
    LOADING = "loading"
    WARMING = "warming"
    READY = "ready"
    DEGRADED = "degraded"
    FAILED = "failed"
    DRAINING = "draining"
    POISONED = "poisoned"


Loader = Callable[[Settings], Segmenter]
#: runs the warmup through the user path; raises on failure; returns details for the /warmup body
WarmupProbe = Callable[["ModelRuntime"], Awaitable[dict[str, Any]]]

BACKOFF_CAP_S = 30.0
LOADING_RETRY_AFTER = 5
DRAINING_RETRY_AFTER = 10
POISONED_RETRY_AFTER = 30

# permanent OSErrors: retrying cannot make a missing or unreadable file appear
_PERMANENT_OS_ERRORS = (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError)


def is_transient(exc: BaseException) -> bool:
    """Load errors worth retrying: ModelError.transient, I/O and timeouts (not a missing file)."""
    if isinstance(exc, ModelError):
        return bool(exc.transient)
    if isinstance(exc, _PERMANENT_OS_ERRORS):
        return False
    return isinstance(exc, OSError | TimeoutError)


def backoff_delay(attempt: int, base: float, cap: float = BACKOFF_CAP_S, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, for retry ``attempt`` (1-based)."""
    delay = min(cap, base * (2.0 ** (attempt - 1)))
    return delay / 2 + (rng or random).uniform(0, delay / 2)


def describe_load_error(exc: BaseException) -> str:
    """A message for a person, safe to put in a response body (no paths, no exception text)."""
    if isinstance(exc, WeightsMissingError):
        return (
            "The model weights are missing: set PETCUT_CHECKPOINT or PETCUT_WEIGHTS_DIR, "
            "or run `petcut weights download`."
        )
    if isinstance(exc, ChecksumMismatchError):
        return "The model checkpoint failed its checksum check."
    if isinstance(exc, CheckpointInvalidError):
        return "The model checkpoint is corrupt or not an InSPyReNet checkpoint."
    if isinstance(exc, DeviceUnavailableError):
        return "The configured device is not available on this machine."
    if isinstance(exc, DownloadError):
        return "Downloading the model weights failed."
    if isinstance(exc, ArtifactUnusableError):
        return (
            "PETCUT_ENGINE=openvino, but the prepared OpenVINO artifact is missing, stale or corrupt: "
            "run `petcut weights prepare`."
        )
    return f"The model could not be loaded ({type(exc).__name__})."


def _engine_info(segmenter: object) -> dict[str, str] | None:
    info = getattr(segmenter, "info", None)
    return dict(info) if isinstance(info, dict) else None


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class WarmupResult:
    passed: bool
    message: str
    duration_s: float
    finished_at: float  # wall clock
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class WarmupOutcome:
    """What ``/warmup`` answers: ``success`` 200, ``partial`` 206, ``loading`` 503, ``unavailable`` 503
    (draining/poisoned), ``error`` 500 (the model could not be loaded)."""

    kind: str
    message: str
    result: WarmupResult | None = None
    retry_after: int | None = None


@dataclass(frozen=True)
class RuntimeStatus:
    state: State
    since: str
    reason: str
    model_ready: bool
    device: str | None
    description: str | None
    #: what runs (model, engine, device, precision, engine_reason) once loaded
    engine: dict[str, str] | None
    load_time_s: float | None
    load_attempts: int
    queue_depth: int
    in_flight: int
    retry_after: int
    last_warmup: WarmupResult | None


class ModelRuntime:
    """Owns the segmenter. Create it anywhere; :meth:`start` and :meth:`stop` run on the event loop."""

    def __init__(
        self,
        settings: Settings,
        load_segmenter: Loader,
        *,
        warmup_probe: WarmupProbe | None = None,
        metrics: Metrics | None = None,
        timeline: StartupTimeline | None = None,
    ) -> None:
        self.settings = settings
        self._load_segmenter = load_segmenter
        self._probe = warmup_probe
        self.metrics = metrics or Metrics()
        self.timeline = timeline or StartupTimeline(log)
        self._lock = threading.RLock()
        self._state = State.NOT_LOADED
        self._since = time.time()
        self._reason = "The model has not been loaded yet."
        self._segmenter: Segmenter | None = None
        self.load_time_s: float | None = None
        self.load_attempts = 0
        self._failed_at: float | None = None
        self._degraded_by: str | None = None  # "warmup" | "oom"
        self._degraded_until: float | None = None
        self._oom_times: deque[float] = deque()
        self._cycle: asyncio.Task[None] | None = None
        self._warmup_task: asyncio.Task[WarmupResult] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.last_warmup: WarmupResult | None = None
        self._startup = True
        self.worker = InferenceWorker(
            max_queue=settings.max_queue, on_fault=self._on_fault, refusal=self._refusal, metrics=self.metrics
        )
        self.metrics.set("petcut_model_state", 1, state=str(self._state))

    # --- state -----------------------------------------------------------------------------------
    def _set_state(self, state: State, reason: str) -> None:
        """Change state (lock held). draining and poisoned are final, except draining → poisoned."""
        if self._state is State.POISONED or (self._state is State.DRAINING and state is not State.POISONED):
            return
        if state is not State.DEGRADED:
            self._degraded_by = None
            self._degraded_until = None
        previous = self._state
        self._state = state
        self._reason = reason
        self._since = time.time()
        self.metrics.set("petcut_model_state", 0, state=str(previous))
        self.metrics.set("petcut_model_state", 1, state=str(state))
        level = {State.FAILED: logging.CRITICAL, State.POISONED: logging.CRITICAL, State.DEGRADED: logging.WARNING}
        log.log(
            level.get(state, logging.INFO),
            "model state %s → %s",
            previous,
            state,
            extra={"state": str(state), "previous_state": str(previous), "reason": reason},
        )

    def _refresh(self) -> None:
        """Lazy transitions that depend on time: the out-of-memory cool-down ending (lock held)."""
        if (
            self._state is State.DEGRADED
            and self._degraded_by == "oom"
            and self._degraded_until is not None
            and time.monotonic() >= self._degraded_until
        ):
            self._set_state(State.READY, "The out-of-memory cool-down has ended.")

    @property
    def state(self) -> State:
        with self._lock:
            self._refresh()
            return self._state

    @property
    def model_loaded(self) -> bool:
        with self._lock:
            return self._segmenter is not None and self._state is not State.POISONED

    @property
    def device(self) -> str | None:
        seg = self._segmenter
        return str(getattr(seg, "device", None) or self.settings.device) if seg is not None else None

    def retry_after(self) -> int:
        with self._lock:
            self._refresh()
            state = self._state
            now = time.monotonic()
            if state is State.FAILED and self._failed_at is not None:
                return max(1, math.ceil(self._failed_at + self.settings.load_cooldown_s - now))
            if state is State.DEGRADED and self._degraded_until is not None:
                return max(1, math.ceil(self._degraded_until - now))
            if state is State.DRAINING:
                return DRAINING_RETRY_AFTER
            if state in (State.POISONED, State.DEGRADED):
                return POISONED_RETRY_AFTER
            if state in (State.READY,):
                return self.worker.retry_after()
            return LOADING_RETRY_AFTER

    def status(self) -> RuntimeStatus:
        with self._lock:
            self._refresh()
            seg = self._segmenter
            return RuntimeStatus(
                state=self._state,
                since=_iso(self._since),
                reason=self._reason,
                model_ready=seg is not None and self._state is not State.POISONED,
                device=self.device,
                description=getattr(seg, "description", None) if seg is not None else None,
                engine=_engine_info(seg),
                load_time_s=self.load_time_s,
                load_attempts=self.load_attempts,
                queue_depth=self.worker.depth,
                in_flight=self.worker.in_flight,
                retry_after=self.retry_after(),
                last_warmup=self.last_warmup,
            )

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the worker and, unless deferred, the background load. Returns at once."""
        self._loop = asyncio.get_running_loop()
        self.worker.start()
        preload = not self.settings.skip_model_preload or self.settings.min_instances > 0
        if self.settings.skip_model_preload and self.settings.min_instances > 0:
            log.info("MIN_INSTANCES > 0: loading and warming up at startup despite SKIP_MODEL_PRELOAD")
        if preload:
            self.start_loading()
        else:
            with self._lock:
                self._reason = "Model loading is deferred to the first /warmup or processing request."
            log.info("model preload skipped (SKIP_MODEL_PRELOAD)")

    def begin_draining(self) -> None:
        """SIGTERM: stop taking new work; queued and in-flight jobs still finish. Thread-safe."""
        with self._lock:
            if self._state not in (State.DRAINING, State.POISONED):
                self._set_state(State.DRAINING, "The service is shutting down.")

    def request_drain(self) -> None:
        """Schedule :meth:`begin_draining` on the event loop (safe from a signal handler)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.begin_draining)
        else:
            self.begin_draining()

    async def stop(self, timeout: float = 0.5) -> None:
        """Drain: refuse new work, let queued jobs finish (bounded), stop the worker."""
        self.begin_draining()
        self.worker.stop()
        deadline = time.monotonic() + timeout
        while self.worker.alive and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for task in (self._cycle, self._warmup_task):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await asyncio.wait_for(task, 0.2)
        if self.worker.alive:
            log.warning("inference worker still busy at shutdown; leaving it (daemon thread)")

    # --- loading ---------------------------------------------------------------------------------
    def start_loading(self, *, attempts: int | None = None) -> None:
        """Begin a load cycle (load with retries, then warm up) unless one is running. Event loop only."""
        if self._cycle is not None and not self._cycle.done():
            return
        with self._lock:
            if self._state in (State.DRAINING, State.POISONED):
                return
            self._set_state(State.LOADING, "Loading the model.")
        self._cycle = asyncio.get_running_loop().create_task(
            self._load_cycle(attempts or self.settings.load_attempts), name="petcut-model-load"
        )

    async def _load_cycle(self, attempts: int) -> None:
        try:
            if await self._load(attempts):
                await self.warmup()
                if self._startup:
                    self._startup = False
                    self._log_startup_warmup()
            elif self.state is State.FAILED:  # no model, so no warmup: that cycle's warmup is an error
                self.metrics.inc("petcut_warmup_total", result="error")
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug here must not leave the state stuck in loading
            log.exception("model load cycle crashed")
            with self._lock:
                self._failed_at = time.monotonic()
                self._set_state(State.FAILED, "The model could not be loaded (internal error).")

    def _log_startup_warmup(self) -> None:
        result = self.last_warmup
        if result is None:
            return
        # MIN_INSTANCES > 0: the instance is kept warm, so its startup warmup is logged in full
        self.timeline.mark(
            "warmup done",
            level=logging.INFO if result.passed else logging.WARNING,
            passed=result.passed,
            seconds=result.duration_s,
            **({"warmup": result.details} if self.settings.min_instances > 0 else {}),
        )
        if result.passed:  # the warmup made the instance ready (it may already be draining: a fast SIGTERM)
            self.timeline.mark("ready")

    async def _load(self, attempts: int) -> bool:
        for attempt in range(1, attempts + 1):
            with self._lock:
                if self._state is not State.LOADING:
                    return False
                self.load_attempts += 1
                self._reason = f"Loading the model (attempt {attempt} of {attempts})."
            self.metrics.inc("petcut_model_load_attempts_total")
            started = time.monotonic()
            try:
                segmenter = await self.worker.run(
                    lambda: self._load_segmenter(self.settings),
                    queue_timeout=None,
                    exec_timeout=None,
                    admit=False,
                    inference=False,
                )
                if not isinstance(segmenter, Segmenter):
                    raise TypeError(f"the loader returned {type(segmenter).__name__}, not a Segmenter")
            except Unavailable:  # the worker is stopping
                return False
            except Exception as exc:
                elapsed = time.monotonic() - started
                transient = is_transient(exc)
                if transient and attempt < attempts:
                    delay = backoff_delay(attempt, self.settings.load_backoff_s)
                    log.warning(
                        "model load failed (transient), retrying",
                        extra={
                            "attempt": attempt,
                            "attempts": attempts,
                            "retry_in_s": round(delay, 2),
                            "error": f"{type(exc).__name__}: {exc}",
                            "seconds": round(elapsed, 3),
                        },
                    )
                    with self._lock:
                        self._reason = f"Loading the model (attempt {attempt} failed, retrying)."
                    await asyncio.sleep(delay)
                    continue
                log.critical(
                    "model load failed",
                    exc_info=exc,
                    extra={
                        "attempt": attempt,
                        "attempts": attempts,
                        "transient": transient,
                        "error": f"{type(exc).__name__}: {exc}",
                    },
                )
                self.metrics.inc("petcut_model_load_failures_total", reason=type(exc).__name__)
                with self._lock:
                    self._failed_at = time.monotonic()
                    self._set_state(State.FAILED, describe_load_error(exc))
                return False
            elapsed = time.monotonic() - started
            self.metrics.observe("petcut_model_load_seconds", elapsed)
            info = getattr(segmenter, "info", None)
            if isinstance(info, dict):
                labels = {name: str(info.get(name, "")) for name in ("model", "engine", "device", "precision")}
                self.metrics.set("petcut_model_info", 1, **labels)
            with self._lock:
                self._segmenter = segmenter
                self.load_time_s = round(elapsed, 3)
                self._failed_at = None
                self._set_state(State.WARMING, "Running the warmup inference.")
            if self._startup:
                self.timeline.mark(
                    "weights loaded",
                    seconds=round(elapsed, 3),
                    model=getattr(segmenter, "description", None),
                    engine_reason=getattr(segmenter, "engine_reason", None),
                )
            return True
        return False

    # --- warmup ----------------------------------------------------------------------------------
    async def warmup(self) -> WarmupResult:
        """Run the warmup probe (joining one in progress); update state: ready or degraded."""
        task = self._warmup_task
        if task is None or task.done():
            task = asyncio.get_running_loop().create_task(self._run_warmup(), name="petcut-warmup")
            self._warmup_task = task
        return await asyncio.shield(task)

    async def _run_warmup(self) -> WarmupResult:
        started = time.monotonic()
        details: dict[str, Any] = {}
        busy = False  # the warmup could not get to the model (traffic): says nothing about the model
        try:
            if self._probe is not None:
                details = dict(await self._probe(self) or {})
            passed, message = True, "The warmup inference passed."
        except Exception as exc:
            passed = False
            step = getattr(exc, "step", None)  # the probe says which image failed
            cause = exc.__cause__ if step and exc.__cause__ is not None else exc
            where = f" on the {step}" if step else ""
            if isinstance(cause, RuntimeRejection):
                busy = cause.code in ("queue_timeout", "overloaded")
                message = f"The warmup inference failed{where}: {cause.message}"
                log.error("warmup inference failed", extra={"step": step, "code": cause.code})
            else:
                message = f"The warmup inference failed{where} ({type(cause).__name__}); see the logs."
                log.error("warmup inference failed", exc_info=cause, extra={"step": step})
        result = WarmupResult(
            passed=passed,
            message=message,
            duration_s=round(time.monotonic() - started, 3),
            finished_at=time.time(),
            details=details,
        )
        self.metrics.inc("petcut_warmup_total", result="success" if passed else "partial")
        self.metrics.set("petcut_warmup_last_seconds", result.duration_s)
        with self._lock:
            self.last_warmup = result
            if self._state in (State.WARMING, State.READY, State.DEGRADED):
                if passed:
                    if self._state is not State.READY:
                        self._set_state(State.READY, "The model is loaded and the warmup passed.")
                elif not (busy and self._state is State.READY):
                    self._set_state(State.DEGRADED, message)
                    self._degraded_by = "warmup"
                    self._degraded_until = None
        return result

    async def request_warmup(self, wait_s: float) -> WarmupOutcome:
        """``/warmup``: load if needed (the circuit breaker lets it through), wait at most ``wait_s``
        for the load, run the warmup, and say how it went."""
        state = self.state
        if state in (State.DRAINING, State.POISONED):
            return self._unavailable_outcome()
        if state in (State.NOT_LOADED, State.FAILED):
            self.start_loading()
        cycle = self._cycle
        if cycle is not None and not cycle.done():
            done, _ = await asyncio.wait({asyncio.shield(cycle)}, timeout=wait_s)
            if not done:
                return WarmupOutcome(
                    "loading", "The model is still loading; retry shortly.", retry_after=self.retry_after()
                )
            result = self.last_warmup
            state = self.state
            if state in (State.READY, State.DEGRADED) and result is not None:
                return self._warmup_outcome(result)
        state = self.state
        if state is State.FAILED:
            return WarmupOutcome("error", self.status().reason)
        if state in (State.READY, State.DEGRADED):
            result = await self.warmup()
            if self.state in (State.DRAINING, State.POISONED):
                return self._unavailable_outcome()
            return self._warmup_outcome(result)
        if state in (State.DRAINING, State.POISONED):
            return self._unavailable_outcome()
        return WarmupOutcome("loading", "The model is still loading; retry shortly.", retry_after=self.retry_after())

    def _warmup_outcome(self, result: WarmupResult) -> WarmupOutcome:
        return WarmupOutcome("success" if result.passed else "partial", result.message, result)

    def _unavailable_outcome(self) -> WarmupOutcome:
        status = self.status()
        return WarmupOutcome("unavailable", status.reason, retry_after=status.retry_after)

    # --- inference -------------------------------------------------------------------------------
    def check_available(self) -> None:
        """Raise :class:`Unavailable` unless processing requests can be served now.

        ``not_loaded`` starts the load; ``failed`` starts one when the circuit breaker's cool-down has
        passed (half-open: one attempt). Event loop only.
        """
        start_attempts: int | None = None
        with self._lock:
            self._refresh()
            state = self._state
            if state in (State.READY, State.DEGRADED):
                if self.worker.depth >= self.worker.max_queue:  # refuse before decoding
                    self.metrics.inc("petcut_inference_failures_total", reason="rejected")
                    raise Unavailable(
                        "The service is at capacity; retry shortly.",
                        code="overloaded",
                        retry_after=self.worker.retry_after(),
                        state=state,
                    )
                return
            if state is State.NOT_LOADED:
                start_attempts = self.settings.load_attempts
            elif state is State.FAILED:
                assert self._failed_at is not None
                if time.monotonic() >= self._failed_at + self.settings.load_cooldown_s:
                    start_attempts = 1
                else:
                    raise Unavailable(
                        f"The model is not available: {self._reason}",
                        code="model_unavailable",
                        retry_after=self.retry_after(),
                        state=state,
                    )
            elif state is State.DRAINING:
                raise Unavailable(
                    "The service is shutting down.", code="draining", retry_after=DRAINING_RETRY_AFTER, state=state
                )
            elif state is State.POISONED:
                raise Unavailable(
                    "The accelerator failed; this instance is being replaced.",
                    code="device_fault",
                    retry_after=POISONED_RETRY_AFTER,
                    state=state,
                )
        if start_attempts is not None:
            self.start_loading(attempts=start_attempts)
        raise Unavailable(
            "The model is loading; retry shortly.",
            code="model_loading",
            retry_after=LOADING_RETRY_AFTER,
            state=self.state,
        )

    async def infer(self, fn: Callable[[Segmenter], T], *, internal: bool = False) -> T:
        """Run ``fn(segmenter)`` on the worker thread, under admission control and both deadlines.

        ``internal=True`` (the warmup probe) skips the availability check and the queue bound.
        """
        if not internal:
            self.check_available()
        segmenter = self._segmenter
        if segmenter is None:
            raise Unavailable(
                "The model is not loaded.", code="model_loading", retry_after=LOADING_RETRY_AFTER, state=self.state
            )
        return await self.worker.run(
            lambda: fn(segmenter),
            queue_timeout=self.settings.queue_timeout_s,
            exec_timeout=self.settings.inference_timeout_s,
            admit=not internal,
        )

    async def predict_alpha(self, rgb: RGBImage, *, internal: bool = False) -> AlphaMatte:
        """The model's alpha for ``rgb`` (uint8 H×W×3), computed on the worker thread."""
        return await self.infer(lambda seg: seg.predict_alpha(rgb), internal=internal)

    # --- worker callbacks (worker thread) ---------------------------------------------------------
    def _refusal(self) -> Unavailable | None:
        with self._lock:
            if self._state is State.POISONED:
                return Unavailable(
                    "The accelerator failed; this instance is being replaced.",
                    code="device_fault",
                    retry_after=POISONED_RETRY_AFTER,
                    state=self._state,
                )
        return None

    def _on_fault(self, fault: Fault, description: str) -> Unavailable:
        now = time.monotonic()
        if fault is Fault.OOM:
            self.metrics.inc("petcut_inference_failures_total", reason="oom")
            log.error("inference ran out of memory", extra={"error": description})
            with self._lock:
                self._oom_times.append(now)
                while self._oom_times and now - self._oom_times[0] > self.settings.oom_window_s:
                    self._oom_times.popleft()
                repeated = len(self._oom_times) >= 2
                if repeated and self._state in (State.READY, State.DEGRADED) and self._degraded_by != "warmup":
                    if self._state is State.READY:
                        self._set_state(State.DEGRADED, "Repeated out-of-memory errors; cooling down.")
                    self._degraded_by = "oom"
                    self._degraded_until = now + self.settings.oom_cooldown_s
                state = self._state
            return Unavailable(
                "The model ran out of memory on this request; retry shortly.",
                code="out_of_memory",
                retry_after=2,
                state=state,
            )
        self.metrics.inc("petcut_inference_failures_total", reason="device")
        log.critical("non-recoverable device error: instance poisoned", extra={"error": description})
        with self._lock:
            self._set_state(
                State.POISONED, "The accelerator reported a non-recoverable error; the instance must restart."
            )
        return Unavailable(
            "The accelerator failed; this instance is being replaced.",
            code="device_fault",
            retry_after=POISONED_RETRY_AFTER,
            state=State.POISONED,
        )
