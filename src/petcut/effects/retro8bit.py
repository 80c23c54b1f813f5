"""`retro8bit`: pixel art with a pet-friendly 32-colour palette (pixelate, keep edges finer, quantise)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from ._common import LUMA_601, grey, rgb_of, with_alpha
from ._jit import lazy_njit
from ._palette import nearest_lut, rgb_code
from ._params import Param

NAME = "retro8bit"
DESCRIPTION = "8-bit pixel art: pixelated, finer along edges, in a 32-colour palette made for pets."
PARAMS = (
    Param("pixelation_factor", "int", 6, "Side in pixels of the pixel-art blocks.", 1, 64),
    Param("edge_threshold", "float", 40.0, "Sobel magnitude above which a pixel is an edge.", 0.0, 1500.0),
    Param("preserve_edges", "bool", True, "Use blocks half as large along edges."),
    Param("error_diffusion", "bool", False, "Floyd–Steinberg dithering when quantising."),
)

PALETTE = (
    *((v, v, v) for v in (0, 25, 50, 75, 100, 130, 160, 190, 220, 255)),  # greys
    (45, 30, 15), (62, 39, 20), (85, 55, 30), (101, 67, 33), (120, 80, 45),  # browns
    (139, 90, 50), (160, 110, 70), (180, 130, 90), (200, 150, 110),
    (255, 180, 120), (255, 200, 160), (240, 220, 200),  # creams
    (205, 133, 63), (160, 82, 45), (139, 69, 19),
    (70, 50, 30), (100, 70, 40), (40, 60, 80), (60, 80, 120), (150, 200, 255),  # eye colours
    (34, 70, 34), (50, 100, 50),  # greens
)  # fmt: skip
WEIGHTS = (0.15, 0.60, 0.25)
_PALETTE_U8 = np.array(PALETTE, dtype=np.uint8)
Quantise = Callable[[np.ndarray], np.ndarray]


def render(rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    rgb = rgb_of(rgba)
    alpha = np.ascontiguousarray(rgba[..., 3])
    lut = nearest_lut(PALETTE, WEIGHTS)
    if params["error_diffusion"]:
        out = np.zeros_like(rgb)  # alpha-0 pixels stay (0, 0, 0)
        _diffuse(_pixelate_with_edges(rgb, params, None), alpha, lut, _PALETTE_U8, out)
        return with_alpha(out, alpha)
    # quantising is per pixel, so quantise the downscaled images before their nearest upscale
    out = with_alpha(_pixelate_with_edges(rgb, params, lambda img: _PALETTE_U8[lut[rgb_code(img)]]), alpha)
    np.copyto(out.view(np.uint32)[..., 0], 0, where=alpha == 0)  # step 4: RGB (0, 0, 0); alpha is 0 too
    return out


def _pixelate_with_edges(rgb: np.ndarray, params: Mapping[str, Any], quantise: Quantise | None) -> np.ndarray:
    """Steps 1–2 (and 3 when ``quantise`` is given): Pixelate(f), finer Pixelate on the edge pixels."""
    f = params["pixelation_factor"]
    out = pixelate(rgb, f, quantise)
    if params["preserve_edges"] and f > 1:
        edges = edge_mask(rgb, params["edge_threshold"])
        cv2.copyTo(pixelate(rgb, max(2, f // 2), quantise), edges, out)
    return out


def pixelate(rgb: np.ndarray, f: int, quantise: Quantise | None = None) -> np.ndarray:
    """Area-downscale by ``f``, (quantise,) nearest-upscale back; unchanged if a side would be 0."""
    h, w = rgb.shape[:2]
    if w // f == 0 or h // f == 0:
        return rgb.copy() if quantise is None else quantise(rgb)
    small = cv2.resize(rgb, (w // f, h // f), interpolation=cv2.INTER_AREA)
    if quantise is not None:
        small = quantise(small)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def edge_mask(rgb: np.ndarray, threshold: float) -> np.ndarray:
    """uint8 0/1 mask: Sobel 3×3 magnitude of the grey above ``threshold``, dilated once (3×3 kernel)."""
    g = grey(rgb, LUMA_601)
    magnitude = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    edges = (magnitude > threshold).view(np.uint8)
    return cv2.dilate(edges, np.ones((3, 3), np.uint8), iterations=1)


@lazy_njit
def _diffuse(  # pragma: no cover - runs compiled
    rgb: NDArray[np.uint8],
    alpha: NDArray[np.uint8],
    lut: NDArray[np.uint8],
    palette: NDArray[np.uint8],
    out: NDArray[np.uint8],
) -> None:
    """Floyd–Steinberg in raster order, skipping alpha-0 pixels.

    The palette index of a diffused value comes from the table at the value clipped to [0, 255] and
    rounded half up.
    """
    h, w = alpha.shape
    cur = np.zeros((w + 2, 3), dtype=np.float32)  # error for this row and the next; a spare cell each side
    nxt = np.zeros((w + 2, 3), dtype=np.float32)
    value = np.zeros(3, dtype=np.float32)
    for y in range(h):
        for x in range(w):
            if alpha[y, x] == 0:
                continue
            code = 0
            for c in range(3):
                value[c] = rgb[y, x, c] + cur[x + 1, c]
                code = (code << 8) | int(min(max(value[c], np.float32(0)), np.float32(255)) + np.float32(0.5))
            k = lut[code]
            for c in range(3):
                out[y, x, c] = palette[k, c]
                err = value[c] - np.float32(palette[k, c])
                cur[x + 2, c] += err * np.float32(7 / 16)
                nxt[x, c] += err * np.float32(3 / 16)
                nxt[x + 1, c] += err * np.float32(5 / 16)
                nxt[x + 2, c] += err * np.float32(1 / 16)
        cur, nxt = nxt, cur
        nxt[:] = 0
