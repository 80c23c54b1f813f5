"""IS-Net (DIS), the second model: its files, licence, pre- and post-processing, and its loader.

The trained weights are the ONNX files of the npm package ``@imgly/background-removal-data@1.4.5``
(:mod:`petcut.model.isnet_weights` downloads and checks them). The graph is fixed at 1024×1024: the
photo is stretched to that square (PIL bilinear, RGB), each channel normalised as ``(v − 128) / 256``;
the output ``output`` [1, 1, 1024, 1024] is already a sigmoid and is resized back to the photo with
half-pixel bilinear. ``PETCUT_RESIZE`` and ``PETCUT_TARGET_SIZE`` are InSPyReNet's and do not apply.

IS-Net runs on the OpenVINO CPU engine only (numpy and OpenVINO: no torch on its serving path).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from petcut.config import Settings
from petcut.model import isnet_weights
from petcut.model.base import AlphaMatte, ModelError, RGBImage
from petcut.model.resample import resize_bilinear
from petcut.model.segmenter import ModelSegmenter

log = logging.getLogger(__name__)

NAME = "isnet"
LICENCE = isnet_weights.LICENCE
INPUT_SIDE = 1024
MEAN = 128.0
SCALE = 256.0


@dataclass(frozen=True)
class IsNet:
    """One IS-Net variant's pre- and post-processing."""

    variant: str = "medium"
    note: str | None = None  # the fallback's explanation, when make run chose IS-Net

    name = NAME

    @classmethod
    def from_settings(cls, settings: Settings) -> IsNet:
        return cls(variant=settings.isnet_variant, note=settings.model_note)

    def describe(self) -> str:
        text = f"IS-Net {self.variant} {INPUT_SIDE}"
        return f"{text} ({self.note})" if self.note else text

    def preprocess(self, rgb: RGBImage) -> NDArray[np.float32]:
        """uint8 H×W×3 → float32 [1, 3, 1024, 1024], ``(v − 128) / 256``."""
        resized = Image.fromarray(rgb).resize((INPUT_SIDE, INPUT_SIDE), Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.float32)
        array -= MEAN
        array /= SCALE
        return np.ascontiguousarray(array.transpose(2, 0, 1)[None])

    def postprocess(self, output: NDArray[np.float32], size: tuple[int, int]) -> AlphaMatte:
        """The network's [1, 1, 1024, 1024] sigmoid → float32 alpha of ``size`` (height, width) in [0, 1]."""
        alpha = resize_bilinear(output[0, 0], size, align_corners=False)
        return np.clip(alpha, 0.0, 1.0, out=alpha)


def _engine_reason(settings: Settings) -> str:
    if settings.engine == "torch":
        raise ModelError("IS-Net runs on the OpenVINO CPU engine: use PETCUT_ENGINE=auto or openvino, not torch")
    if settings.device in ("cuda", "mps"):
        raise ModelError(f"IS-Net runs on the OpenVINO CPU engine, not PETCUT_DEVICE={settings.device}")
    if settings.engine == "openvino":
        return "PETCUT_ENGINE=openvino"
    return "auto: IS-Net runs on the OpenVINO CPU engine"


def load_isnet(settings: Settings) -> ModelSegmenter:
    """Locate and verify the configured variant's ONNX file and compile it on OpenVINO (CPU)."""
    from petcut.model import prepare
    from petcut.model.engine_openvino import OpenVinoEngine

    reason = _engine_reason(settings)
    model = IsNet.from_settings(settings)
    path = isnet_weights.IsNetWeights(settings).locate()
    isnet_weights.verify(path, model.variant)
    if settings.model_note:
        log.warning("serving IS-Net instead of InSPyReNet", extra={"reason": settings.model_note, "licence": LICENCE})
    if settings.resize != "static" or settings.target_size is not None:
        log.info("PETCUT_RESIZE and PETCUT_TARGET_SIZE do not apply to IS-Net (its graph is 1024×1024)")
    engine = OpenVinoEngine(
        path, precision=settings.precision, cache_dir=prepare.cache_dir(settings), threads=settings.torch_threads
    )
    return ModelSegmenter(model=model, engine=engine, engine_reason=reason)
