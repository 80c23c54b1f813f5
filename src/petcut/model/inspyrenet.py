"""InSPyReNet, the model: its input size policy and its pre- and post-processing (PIL and numpy only).

Preprocessing matches ``transparent_background.Remover`` on PIL input exactly (PIL bilinear resize,
ImageNet normalisation in float32, the same static/dynamic sizes) except that no side ever rounds to
zero: tiny or extremely thin images are resized up to the minimum and the alpha is resized back.
Post-processing is the reference's bilinear resize with ``align_corners=True``, in numpy, so that the
OpenVINO engine serves without torch. The network itself is run by an engine (``engine_torch`` or
``engine_openvino``); its weights are handled by :mod:`petcut.model.checkpoint`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from petcut.config import Settings
from petcut.model import checkpoint
from petcut.model.base import AlphaMatte, RGBImage
from petcut.model.resample import resize_bilinear

NAME = "inspyrenet"
LICENCE = "MIT (transparent-background; InSPyReNet by Taehun Kim)"
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: the reference's dynamic-resize cap on the shorter side
DYNAMIC_SHORT_SIDE = 1280
#: petcut's extra guard: the longer side of a dynamic input never exceeds this many short-side caps
DYNAMIC_MAX_ASPECT = 2
MIN_SIDE = 32


def _round32(value: float) -> int:
    return max(MIN_SIDE, round(value / 32) * 32)


def input_size(width: int, height: int, *, resize: str, base_size: int, short_cap: int) -> tuple[int, int]:
    """The network input (width, height) for an image, as the reference computes it.

    static: ``base_size`` square. dynamic: the reference's rule (shorter side capped at ``short_cap``,
    both sides rounded to multiples of 32), with every side at least 32 and the longer side at most
    ``DYNAMIC_MAX_ASPECT * short_cap`` so that no decodable image fails or exhausts memory.
    """
    if resize == "static":
        return base_size, base_size
    w, h = float(width), float(height)
    if w >= h and h > short_cap:
        w, h = w / (h / short_cap), short_cap
    elif h > w and w > short_cap:
        w, h = short_cap, h / (w / short_cap)
    longest = DYNAMIC_MAX_ASPECT * short_cap
    if max(w, h) > longest:
        scale = longest / max(w, h)
        w, h = w * scale, h * scale
    return _round32(w), _round32(h)


@dataclass(frozen=True)
class InSPyReNet:
    """The resize policy of one configuration, and the model's pre- and post-processing."""

    mode: str
    resize: str
    base_size: int
    short_cap: int

    name = NAME

    @classmethod
    def from_settings(cls, settings: Settings) -> InSPyReNet:
        info = checkpoint.mode_info(settings.mode)
        return cls(
            mode=settings.mode,
            resize=settings.resize,
            base_size=settings.target_size or info.base_size[0],
            short_cap=settings.target_size or DYNAMIC_SHORT_SIDE,
        )

    @property
    def network_base_size(self) -> int:
        """The size the network's attention stages are built for (the mode's, not TARGET_SIZE)."""
        return checkpoint.mode_info(self.mode).base_size[0]

    def describe(self) -> str:
        return f"InSPyReNet {self.mode}/{self.resize}"

    def preprocess(self, rgb: RGBImage) -> NDArray[np.float32]:
        """uint8 H×W×3 → float32 [1, 3, h, w], normalised, at the network input size."""
        height, width = rgb.shape[:2]
        size = input_size(width, height, resize=self.resize, base_size=self.base_size, short_cap=self.short_cap)
        resized = Image.fromarray(rgb).resize(size, Image.Resampling.BILINEAR)
        array = np.asarray(resized, dtype=np.float32)
        array /= 255.0
        array -= MEAN
        array /= STD
        return np.ascontiguousarray(array.transpose(2, 0, 1)[None])

    def postprocess(self, output: NDArray[np.float32], size: tuple[int, int]) -> AlphaMatte:
        """The network's [1, 1, h, w] map → float32 alpha of ``size`` (height, width) in [0, 1]."""
        alpha = resize_bilinear(output[0, 0], size, align_corners=True)
        return np.clip(alpha, 0.0, 1.0, out=alpha)
