"""`dithering`: spaced Floyd–Steinberg on a sample grid, painted as black dots (newspaper look)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from ._common import LUMA_601, grey, with_alpha
from ._jit import lazy_njit
from ._params import Param

NAME = "dithering"
DESCRIPTION = "Newspaper-dot look: Floyd–Steinberg error diffusion on a spaced grid of black dots."
PARAMS = (
    Param("pixel_spacing", "int", 2, "Distance in pixels between sample points.", 1, 32),
    Param("dot_size", "int", 2, "Side in pixels of the square dot painted at a black sample.", 1, 32),
    Param("gamma_correction", "float", 0.45, "Gamma applied to the grey before dithering.", 0.05, 5.0),
    Param("enhancement_strength", "float", 0.3, "Strength of the edge boost.", 0.0, 3.0),
    Param("adaptive_threshold", "bool", True, "Threshold follows the local (blurred) grey."),
)

_EDGE_KERNEL = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]], dtype=np.float32) / 8


def render(rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    alpha = rgba[..., 3]
    v = prepare_grey(rgba, params["gamma_correction"], params["enhancement_strength"])
    if params["adaptive_threshold"]:
        threshold = cast(NDArray[np.float32], cv2.GaussianBlur(v, (7, 7), 0))  # sigma 1.4, from the kernel size
        threshold *= np.float32(0.7)
        threshold += np.float32(0.3 * 128)
    else:
        threshold = np.full_like(v, 128)
    canvas = np.full(alpha.shape, 255, dtype=np.uint8)
    _diffuse(v, threshold, alpha, params["pixel_spacing"], params["dot_size"], canvas)
    return with_alpha(canvas, alpha)


def prepare_grey(rgba: np.ndarray, gamma: float, enhancement: float) -> np.ndarray:
    """Steps 1–2: gamma-corrected luma in [0, 255] (255 where alpha is 0), plus the edge boost."""
    v = grey(rgba, LUMA_601, 1 / 255)
    np.clip(v, 0, 1, out=v)
    np.power(v, np.float32(gamma), out=v)
    v *= np.float32(255)
    v[rgba[..., 3] == 0] = 255
    if enhancement:
        edges = cast(NDArray[np.float32], cv2.filter2D(v, -1, _EDGE_KERNEL, borderType=cv2.BORDER_REFLECT_101))
        edges *= np.float32(enhancement)
        v += edges
        np.clip(v, 0, 255, out=v)
    return v


@lazy_njit
def _diffuse(  # pragma: no cover - runs compiled
    v: NDArray[np.float32],
    threshold: NDArray[np.float32],
    alpha: NDArray[np.uint8],
    s: int,
    dot: int,
    canvas: NDArray[np.uint8],
) -> None:
    """Step 4: Floyd–Steinberg over the sample points ``(y, x)``, ``y, x`` multiples of ``s``."""
    h, w = v.shape
    rows = (h + s - 1) // s
    cols = (w + s - 1) // s
    # error carried to the current and the next sample row; one spare cell on each side
    cur = np.zeros(cols + 2)
    nxt = np.zeros(cols + 2)
    for i in range(rows):
        y = i * s
        for j in range(cols):
            x = j * s
            if alpha[y, x] == 0:
                continue  # receives error (dropped here) but diffuses none
            value = v[y, x] + cur[j + 1]
            if value < threshold[y, x]:
                err = value
                for yy in range(y, min(y + dot, h)):
                    for xx in range(x, min(x + dot, w)):
                        if alpha[yy, xx] > 0:
                            canvas[yy, xx] = 0
            else:
                err = value - 255.0
            cur[j + 2] += err * (7.0 / 16.0)
            nxt[j] += err * (3.0 / 16.0)
            nxt[j + 1] += err * (5.0 / 16.0)
            nxt[j + 2] += err * (1.0 / 16.0)
        cur, nxt = nxt, cur
        nxt[:] = 0.0
