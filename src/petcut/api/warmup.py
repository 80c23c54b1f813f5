"""The warmup probe: the bundled sample photo and a 16×16 image through the user path.

The old service's warmup fed a 16×16 dummy to the model under dynamic resize, which rounded to 0×0 and
failed, yet answered 200. Here both images go through exactly what a user request runs (decode → model at
the configured resize → cut-out → encode); any failure makes the runtime ``degraded`` and ``/warmup`` 206.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from importlib import resources
from typing import Any

import numpy as np

from petcut.imaging import encode_image
from petcut.model.runtime import ModelRuntime, WarmupProbe
from petcut.pipeline import Pipeline, RemoveOptions

TINY_SIDE = 16


class WarmupStepFailed(Exception):
    """Wraps a failure with the step it happened in (``sample photo`` or ``16×16 image``)."""

    def __init__(self, step: str, cause: BaseException) -> None:
        super().__init__(f"{step}: {type(cause).__name__}")
        self.step = step


@functools.cache
def sample_photo() -> bytes:
    """The bundled sample (a ≤ 320 px JPEG of a pet)."""
    return resources.files("petcut").joinpath("assets/sample.jpg").read_bytes()


@functools.cache
def tiny_image() -> bytes:
    """A 16×16 PNG: a light square with a darker blob, so there is something to segment."""
    yy, xx = np.mgrid[0:TINY_SIDE, 0:TINY_SIDE]
    blob = (yy - 8) ** 2 + (xx - 8) ** 2 < 25
    rgb = np.full((TINY_SIDE, TINY_SIDE, 3), 220, np.uint8)
    rgb[blob] = (120, 80, 40)
    return encode_image(rgb, "png")


def make_probe(get_pipeline: Callable[[], Pipeline]) -> WarmupProbe:
    async def probe(runtime: ModelRuntime) -> dict[str, Any]:
        pipeline = get_pipeline()
        details: dict[str, Any] = {}
        for step, data in (("sample photo", sample_photo()), ("16×16 image", tiny_image())):
            started = time.perf_counter()
            try:
                result = await pipeline.remove_background(data, RemoveOptions(), use_cache=False, internal=True)
            except Exception as exc:
                raise WarmupStepFailed(step, exc) from exc
            details["sample" if step == "sample photo" else "tiny"] = {
                "width": result.width,
                "height": result.height,
                "bytes": len(result.data),
                "seconds": round(time.perf_counter() - started, 3),
            }
        return details

    return probe
