"""The torch engine: runs a torch network eagerly on CUDA (fp16 autocast), MPS or the CPU.

The only engine on accelerators, and the CPU fallback when no OpenVINO artifact is prepared.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from petcut.model.base import DeviceUnavailableError

#: device nodes and drivers whose presence means CUDA (or ROCm) may be there; without any of them
#: ``auto`` is the CPU and torch is not imported to find that out (it costs a second of cold start)
_ACCELERATOR_MARKERS = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia", "/dev/kfd", "/dev/dxg")


def accelerator_possible() -> bool:
    return sys.platform == "darwin" or any(os.path.exists(marker) for marker in _ACCELERATOR_MARKERS)


def resolve_device(requested: str) -> str:
    """``auto`` → cuda, then mps, then cpu. A requested device that is missing is an error."""
    if requested == "cpu" or (requested == "auto" and not accelerator_possible()):
        return "cpu"
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("PETCUT_DEVICE=cuda but no CUDA device is available")
    if requested == "mps" and not has_mps:
        raise DeviceUnavailableError("PETCUT_DEVICE=mps but the MPS backend is not available")
    return requested


def resolve_precision(requested: str, device: str) -> str:
    if requested == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if requested == "fp16" and device != "cuda":
        raise DeviceUnavailableError(f"PETCUT_PRECISION=fp16 needs CUDA, the device is {device}")
    return requested


class TorchEngine:
    """An eval-mode torch network on ``device``. ``run`` takes and returns numpy (NCHW float32)."""

    name = "torch"

    def __init__(self, network: Any, *, device: str, precision: str, threads: int | None = None) -> None:
        import torch

        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.precision = precision
        self.network = network.to(device)

    def run(self, x: NDArray[np.float32]) -> NDArray[np.float32]:
        import torch

        tensor = torch.from_numpy(x).to(self.device, non_blocking=True)
        autocast = (
            torch.autocast(self.device, dtype=torch.float16 if self.precision == "fp16" else torch.bfloat16)
            if self.precision in ("fp16", "bf16")
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            out = self.network(tensor)
        with torch.inference_mode():
            alpha: NDArray[np.float32] = out.float().cpu().numpy()
        return alpha


def load_torch_engine(path: Path, base_size: int, *, device: str, precision: str, threads: int | None) -> TorchEngine:
    from petcut.model.inspyrenet_torch import load_network

    return TorchEngine(load_network(path, base_size), device=device, precision=precision, threads=threads)
