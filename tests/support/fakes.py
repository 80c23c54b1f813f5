"""Fakes: segmenters and loaders for fault injection (no torch, deterministic, controllable), the
pipeline's model and executor, and a clock that moves only when the test says so."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable

import numpy as np

from petcut.config import Settings
from petcut.model.base import CheckpointInvalidError, DeviceFault, ModelError, OutOfMemory, Segmenter


def ellipse_alpha(height: int, width: int) -> np.ndarray:
    """A centred ellipse: a subject covering the middle of the image."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ry, rx = max(height / 3, 0.5), max(width / 3, 0.5)
    return (((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1.0).astype(np.float32)


class FakeSegmenter:
    """Deterministic; every behaviour is switchable while the service runs.

    ``gate``: when set (a threading.Event), each call waits for it (fills the worker / the queue).
    ``faults``: a list of exceptions (or factories) raised by the next calls, one each.
    ``delay``: seconds each call sleeps.
    """

    description = "fake segmenter"
    device = "cpu"

    def __init__(self, *, delay: float = 0.0) -> None:
        self.delay = delay
        self.gate: threading.Event | None = None
        self.faults: list[BaseException | Callable[[], BaseException]] = []
        self.calls = 0
        self.started = threading.Event()  # set when a call begins
        self.thread_names: set[str] = set()
        self._lock = threading.Lock()

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls += 1
            fault = self.faults.pop(0) if self.faults else None
        self.thread_names.add(threading.current_thread().name)
        self.started.set()
        if self.gate is not None:
            self.gate.wait(30)
        if self.delay:
            time.sleep(self.delay)
        if fault is not None:
            raise fault() if callable(fault) and not isinstance(fault, BaseException) else fault
        height, width = rgb.shape[:2]
        return ellipse_alpha(height, width)


class TransientLoadError(ModelError):
    transient = True


class Loader:
    """A controllable ``load_segmenter``: fails with ``errors`` first (one per attempt), can sleep or
    hang (``gate``), then returns ``segmenter``."""

    def __init__(
        self,
        segmenter: Segmenter | None = None,
        *,
        errors: list[BaseException] | None = None,
        delay: float = 0.0,
        gate: threading.Event | None = None,
    ) -> None:
        self.segmenter = segmenter or FakeSegmenter()
        self.errors = list(errors or [])
        self.delay = delay
        self.gate = gate
        self.calls = 0
        self.settings: Settings | None = None

    def __call__(self, settings: Settings) -> Segmenter:
        self.calls += 1
        self.settings = settings
        if self.gate is not None:
            self.gate.wait(60)
        if self.delay:
            time.sleep(self.delay)
        if self.errors:
            raise self.errors.pop(0)
        return self.segmenter


def oom() -> BaseException:
    return OutOfMemory("CUDA out of memory. Tried to allocate 2.00 GiB")


def cuda_oom_runtime_error() -> BaseException:
    return RuntimeError("CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB total capacity)")


def device_fault() -> BaseException:
    return DeviceFault("CUDA error: an illegal memory access was encountered")


def device_runtime_error() -> BaseException:
    return RuntimeError("CUDA error: device-side assert triggered")


def corrupt() -> BaseException:
    return CheckpointInvalidError("/secret/path/ckpt.pth is not a loadable checkpoint (UnpicklingError)")


# --- for the SIGTERM test: a server process with a slow segmenter --------------------------------------
def slow_loader(settings: Settings) -> Segmenter:
    """Each inference takes PETCUT_TEST_DELAY seconds (default 2)."""
    return FakeSegmenter(delay=float(os.environ.get("PETCUT_TEST_DELAY", "2")))


# --- for the drain tests: a server process whose model is slow only for images SLOW_WIDTH pixels wide ----
SLOW_WIDTH = 333


class MarkedSlowSegmenter(FakeSegmenter):
    """Warmup and ordinary requests are quick (the usual job duration is known and small); an image
    ``SLOW_WIDTH`` pixels wide takes ``slow_s`` seconds."""

    def __init__(self, slow_s: float) -> None:
        super().__init__()
        self.slow_s = slow_s

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[1] == SLOW_WIDTH:
            time.sleep(self.slow_s)
        return ellipse_alpha(*rgb.shape[:2])


def marked_slow_loader(settings: Settings) -> Segmenter:
    """Slow images take PETCUT_TEST_SLOW_S seconds (default 30)."""
    return MarkedSlowSegmenter(float(os.environ.get("PETCUT_TEST_SLOW_S", "30")))


# --- for the pipeline: the runtime's interface without a runtime ----------------------------------------
class EllipseModel:
    """A deterministic 'model': an ellipse in the middle of the image (or nothing at all)."""

    def __init__(self, empty: bool = False) -> None:
        self.calls = 0
        self.empty = empty

    def check_available(self) -> None:
        pass

    async def predict_alpha(self, rgb: np.ndarray, *, internal: bool = False) -> np.ndarray:
        self.calls += 1
        height, width = rgb.shape[:2]
        if self.empty:
            return np.zeros((height, width), np.float32)
        yy, xx = np.mgrid[0:height, 0:width]
        inside = ((yy - height / 2) / (height / 4)) ** 2 + ((xx - width / 2) / (width / 4)) ** 2 <= 1
        return inside.astype(np.float32)


class ThreadExecutor:
    """The CPU executor's ``run`` on a plain thread."""

    async def run(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)


class FakeClock:
    """Wall-clock seconds that move only when the test says so (injected into the rate limiter)."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
