"""The user path shared by the processing route and the warmup: decode → model → cut-out → encode.

Decoding, post-processing and encoding run in the bounded CPU pool; the model runs on the runtime's
single worker thread. Nothing here blocks the event loop.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from petcut.api.deps import CpuPool
from petcut.config import Settings
from petcut.imaging import decode_image, encode_image, subject_bbox
from petcut.model.runtime import ModelRuntime
from petcut.pipeline import make_cutout


class ModelOutputError(RuntimeError):
    """The segmenter returned something that is not an H×W alpha in [0, 1] (a bug: 500)."""


@dataclass(frozen=True)
class CutoutResult:
    data: bytes
    width: int
    height: int
    box: tuple[int, int, int, int] | None  # left, top, width, height of the subject
    timings: dict[str, float]


def check_alpha(alpha: object, height: int, width: int) -> np.ndarray:
    if not isinstance(alpha, np.ndarray) or alpha.shape != (height, width):
        shape = getattr(alpha, "shape", None)
        raise ModelOutputError(f"the model returned {type(alpha).__name__} {shape}, expected ({height}, {width})")
    if not np.issubdtype(alpha.dtype, np.floating) or not np.isfinite(alpha).all():
        raise ModelOutputError("the model returned a non-finite or non-float alpha")
    return alpha


def _post(rgb: np.ndarray, alpha: np.ndarray, foreground: str) -> tuple[bytes, tuple[int, int, int, int] | None]:
    cutout = make_cutout(rgb, alpha, foreground)
    return encode_image(cutout.rgba, "png"), subject_bbox(alpha)


async def cutout_png(
    data: bytes, *, settings: Settings, runtime: ModelRuntime, cpu: CpuPool, internal: bool = False
) -> CutoutResult:
    """The cut-out PNG of the image in ``data``. ``internal=True`` is the warmup (no admission)."""
    t0 = time.perf_counter()
    if not internal:
        runtime.check_available()  # cheap: refuse (and start a load) before decoding anything
    decoded = await cpu.run(decode_image, data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels)
    t1 = time.perf_counter()
    rgb = decoded.rgb
    alpha = await runtime.predict_alpha(rgb, internal=internal)
    alpha = check_alpha(alpha, rgb.shape[0], rgb.shape[1])
    t2 = time.perf_counter()
    png, box = await cpu.run(_post, rgb, alpha, settings.foreground)
    t3 = time.perf_counter()
    return CutoutResult(
        data=png,
        width=int(rgb.shape[1]),
        height=int(rgb.shape[0]),
        box=box,
        timings={"decode": t1 - t0, "model": t2 - t1, "post": t3 - t2, "total": t3 - t0},
    )
