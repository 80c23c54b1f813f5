"""What the runtime tells its callers when it cannot run a job, and how device errors are classified.

:class:`Unavailable` is a 503 (with ``Retry-After`` and the runtime's state) and :class:`DeadlineExceeded`
a 504, in the shared error model (:mod:`petcut.errors`, docs/api.md). Messages are for a person: no paths,
no exception text.
"""

from __future__ import annotations

import sys
from enum import StrEnum

from petcut.errors import PetcutError
from petcut.model.base import DeviceFault, OutOfMemory


class RuntimeRejection(PetcutError):
    """Base: the job was not (fully) run (503). ``state`` is the runtime's (a :class:`~petcut.model.runtime.State`);
    without one the API reports the runtime's current state."""

    status = 503
    code = "unavailable"
    default_message = "The model cannot take this request now; retry shortly."

    def __init__(self, message: str, *, code: str | None = None, state: str | None = None) -> None:
        super().__init__(message, code=code, state=state)


class Unavailable(RuntimeRejection):
    """Not run (or, for out-of-memory, run and failed in a way the next attempt may not): answer 503.

    ``retry_after`` is whole seconds for the ``Retry-After`` header.
    """

    description = (
        "The model is not ready (model_loading, model_unavailable), the queue is full (overloaded, "
        "queue_timeout), memory ran out (out_of_memory), the device failed (device_fault) or the instance "
        "is draining (draining)."
    )

    def __init__(self, message: str, *, code: str, retry_after: int, state: str | None = None) -> None:
        super().__init__(message, code=code, state=state)
        self.retry_after = max(1, int(retry_after))


class DeadlineExceeded(RuntimeRejection):
    """The job started but did not finish within the execution deadline: answer 504."""

    status = 504
    code = "deadline_exceeded"
    default_message = "The image took longer than the processing deadline."


class Fault(StrEnum):
    """How a failed inference is treated."""

    OOM = "oom"  # free memory, answer 503, the next request may succeed
    DEVICE = "device"  # non-recoverable: the runtime is poisoned
    OTHER = "other"  # a bug or a bad input the model choked on: propagates (500)


_DEVICE_MARKERS = (
    "cuda error",
    "illegal memory access",
    "device-side assert",
    "cublas_status",
    "cudnn_status",
    "unspecified launch failure",
    "an illegal instruction",
)


def classify(exc: BaseException) -> Fault:
    """Out-of-memory, a poisoned device, or anything else; never imports torch."""
    if isinstance(exc, OutOfMemory):
        return Fault.OOM
    if isinstance(exc, DeviceFault):
        return Fault.DEVICE
    torch = sys.modules.get("torch")
    oom_type = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None) if torch else None
    if isinstance(oom_type, type) and isinstance(exc, oom_type):
        return Fault.OOM
    if type(exc).__name__ == "OutOfMemoryError" and type(exc).__module__.startswith("torch"):
        return Fault.OOM
    if isinstance(exc, RuntimeError):
        text = str(exc).lower()
        if "out of memory" in text and ("cuda" in text or "mps" in text or "hip" in text):
            return Fault.OOM
        if any(marker in text for marker in _DEVICE_MARKERS):
            return Fault.DEVICE
    return Fault.OTHER


def free_accelerator_memory() -> None:
    """Release cached accelerator memory after an out-of-memory error (call outside ``except``)."""
    import gc

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is None:
        return
    try:
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        mps = getattr(torch, "mps", None)
        if mps is not None and getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            mps.empty_cache()
    except Exception:  # freeing memory is best effort; the next request will tell
        pass
