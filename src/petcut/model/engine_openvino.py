"""The OpenVINO engine: runs a prepared network (an IR or an ONNX file) on the CPU.

No torch here: serving through this engine imports OpenVINO and numpy only. Precision follows
``PETCUT_PRECISION``: ``auto`` is OpenVINO's own default for the CPU (bf16 where the CPU computes bf16
natively, fp32 elsewhere), ``fp32`` and ``bf16`` are forced. The compiled blob is cached in
``cache_dir`` (OpenVINO's ``CACHE_DIR``) so a restart does not compile again; the model is passed by
path, as OpenVINO keys that cache by the file.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from petcut.model.base import CheckpointInvalidError, ModelError, OutOfMemory

log = logging.getLogger(__name__)

_HINTS = {"fp32": "f32", "bf16": "bf16"}


@dataclass(frozen=True)
class CpuCapability:
    """What the CPU offers OpenVINO: its name, native bf16, and the precision ``auto`` picks."""

    name: str
    bf16: bool
    default_precision: str


def cpu_capability() -> CpuCapability:
    import openvino as ov

    core = ov.Core()
    capabilities = set(core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
    default = core.get_property("CPU", "INFERENCE_PRECISION_HINT")
    return CpuCapability(
        name=str(core.get_property("CPU", "FULL_DEVICE_NAME")),
        bf16="BF16" in capabilities,
        default_precision="bf16" if default == ov.Type.bf16 else "fp32",
    )


def openvino_version() -> str:
    import openvino as ov

    return str(ov.__version__).split("-")[0]


def resolve_precision(requested: str) -> str:
    """``auto`` → what OpenVINO picks on this CPU; ``fp16`` is a CUDA precision and an error here."""
    if requested == "auto":
        return cpu_capability().default_precision
    if requested not in _HINTS:
        raise ModelError(f"PETCUT_PRECISION={requested} is not available on the OpenVINO CPU engine (fp32, bf16)")
    return requested


class OpenVinoEngine:
    """A compiled network. ``run`` takes the model's NCHW float32 input and returns its first output."""

    name = "openvino"
    device = "cpu"

    def __init__(
        self, path: Path, *, precision: str = "auto", cache_dir: Path | None = None, threads: int | None = None
    ) -> None:
        import openvino as ov

        self.cpu = cpu_capability()
        requested = self.cpu.default_precision if precision == "auto" else resolve_precision(precision)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": _HINTS[requested], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        core = ov.Core()
        if cache_dir is not None:
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
                core.set_property({"CACHE_DIR": str(cache_dir)})
            except OSError as exc:  # a read-only directory: compile every start instead
                log.warning("OpenVINO cache directory unusable", extra={"path": str(cache_dir), "error": str(exc)})
        try:
            self._compiled = core.compile_model(str(path), "CPU", config)
        except RuntimeError as exc:
            raise CheckpointInvalidError(f"OpenVINO cannot compile {path.name}: {str(exc)[:300]}") from exc
        compiled_hint = self._compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = "bf16" if compiled_hint == ov.Type.bf16 else "fp32"  # what really runs
        self._request = self._compiled.create_infer_request()
        self._lock = threading.Lock()  # one request object: one inference at a time (the runtime's worker)
        self.input_name = self._compiled.inputs[0].get_any_name()

    def run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        try:
            with self._lock:
                result = self._request.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
                return np.array(result[self._compiled.outputs[0]], dtype=np.float32, copy=True)
        except MemoryError as exc:
            raise OutOfMemory(f"OpenVINO ran out of memory: {exc}") from exc
        except RuntimeError as exc:  # anything else is a bug or a bad input: it propagates (500)
            if "bad_alloc" in str(exc) or "out of memory" in str(exc).lower():
                raise OutOfMemory(f"OpenVINO: {str(exc)[:300]}") from exc
            raise
