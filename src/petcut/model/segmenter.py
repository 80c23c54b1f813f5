"""Models × engines: a model's pre- and post-processing around an engine, and the loader that picks both.

A :class:`ModelSegmenter` is what the runtime holds: ``predict_alpha`` = the model's ``preprocess`` →
the engine's ``run`` → the model's ``postprocess``. :func:`load_segmenter` picks the model
(``PETCUT_MODEL``) and the engine (``PETCUT_ENGINE``): ``auto`` runs InSPyReNet on OpenVINO on the CPU
when its prepared artifact is present and valid, on torch otherwise, and says which and why.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from petcut.config import Settings
from petcut.model import checkpoint
from petcut.model.base import AlphaMatte, ArtifactUnusableError, ModelError, RGBImage
from petcut.model.engine_torch import resolve_device, resolve_precision
from petcut.model.inspyrenet import InSPyReNet

log = logging.getLogger(__name__)


class Model(Protocol):
    name: str

    def describe(self) -> str: ...

    def preprocess(self, rgb: RGBImage) -> NDArray[np.float32]: ...

    def postprocess(self, output: NDArray[np.float32], size: tuple[int, int]) -> AlphaMatte: ...


class Engine(Protocol):
    name: str
    device: str
    precision: str

    def run(self, x: NDArray[np.float32]) -> NDArray[np.float32]: ...


@dataclass
class ModelSegmenter:
    """A model run by an engine. Only the runtime's worker thread calls ``predict_alpha``."""

    model: Model
    engine: Engine
    engine_reason: str

    @property
    def device(self) -> str:
        return self.engine.device

    @property
    def precision(self) -> str:
        return self.engine.precision

    @property
    def network(self) -> Any:
        """The torch module (torch engine only)."""
        return getattr(self.engine, "network", None)

    @property
    def description(self) -> str:
        return f"{self.model.describe()} on {self.engine.name} {self.device} {self.precision}"

    @property
    def info(self) -> dict[str, str]:
        """What runs, for the startup log, ``/``, ``/ready`` and the metrics' labels."""
        info = {
            "model": self.model.name,
            "engine": self.engine.name,
            "device": self.device,
            "precision": self.precision,
            "engine_reason": self.engine_reason,
        }
        cpu = getattr(self.engine, "cpu", None)
        if cpu is not None:
            info["cpu"] = f"{cpu.name}; native bf16: {'yes' if cpu.bf16 else 'no'}"
        return info

    def predict_alpha(self, rgb: RGBImage) -> AlphaMatte:
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 H×W×3, got {rgb.dtype} {rgb.shape}")
        output = self.engine.run(self.model.preprocess(rgb))
        return self.model.postprocess(output, rgb.shape[:2])


def load_segmenter(settings: Settings) -> ModelSegmenter:
    """Locate, verify and load the configured model on its engine; raise ModelError subclasses on failure."""
    started = time.perf_counter()
    if settings.model == "isnet":
        from petcut.model.isnet import load_isnet

        segmenter = load_isnet(settings)
    else:
        segmenter = _load_inspyrenet(settings)
    log.info(
        "model loaded",
        extra={**segmenter.info, "description": segmenter.description,
               "seconds": round(time.perf_counter() - started, 3)},
    )  # fmt: skip
    return segmenter


def _load_inspyrenet(settings: Settings) -> ModelSegmenter:
    device = resolve_device(settings.device)
    model = InSPyReNet.from_settings(settings)
    path = checkpoint.InSPyReNetWeights(settings).locate()
    if checkpoint.should_verify(settings, path):
        checkpoint.verify(path, settings.mode)
    engine_name, reason, artifact = choose_engine(settings, device, path, model.network_base_size)
    if engine_name == "openvino":
        from petcut.model import prepare
        from petcut.model.engine_openvino import OpenVinoEngine

        assert artifact is not None
        engine: Engine = OpenVinoEngine(
            artifact,
            precision=settings.precision,
            cache_dir=prepare.cache_dir(settings),
            threads=settings.torch_threads,
        )
    else:
        from petcut.model.engine_torch import load_torch_engine

        engine = load_torch_engine(
            path,
            model.network_base_size,
            device=device,
            precision=resolve_precision(settings.precision, device),
            threads=settings.torch_threads,
        )
    return ModelSegmenter(model=model, engine=engine, engine_reason=reason)


def choose_engine(settings: Settings, device: str, path: Path, base_size: int) -> tuple[str, str, Path | None]:
    """(engine, why, IR path or None). ``openvino`` asked for explicitly with no usable artifact is an
    error; ``auto`` falls back to torch with a warning that says how to prepare one."""
    if settings.engine == "torch":
        return "torch", "PETCUT_ENGINE=torch", None
    if device != "cpu":
        if settings.engine == "openvino":
            raise ModelError(f"PETCUT_ENGINE=openvino runs on the CPU only, the device is {device}")
        return "torch", f"the device is {device}: OpenVINO is the CPU engine", None
    from petcut.model import prepare

    found = prepare.find(settings, path, base_size)
    if found.artifact is None:
        if settings.engine == "openvino":
            raise ArtifactUnusableError(f"PETCUT_ENGINE=openvino but {found.reason}")
        log.warning("OpenVINO artifact unusable, falling back to torch", extra={"reason": found.reason})
        return "torch", f"fallback: {found.reason}", None
    why = "PETCUT_ENGINE=openvino" if settings.engine == "openvino" else "auto: CPU with a verified prepared artifact"
    return "openvino", why, found.artifact.xml
