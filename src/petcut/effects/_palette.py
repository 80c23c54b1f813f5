"""Nearest-palette-colour lookup: a 256³ → palette index table built once, lazily, by a compiled kernel.

The table is exact for uint8 RGB: weighted squared distance, first index on ties. It takes 16 MB and is
built on first use (about 0.1 s); no per-pixel × per-colour array is ever made.
"""

from __future__ import annotations

import functools
import threading

import numpy as np
from numpy.typing import NDArray

from ._jit import lazy_njit

_build_lock = threading.Lock()


def nearest_lut(palette: tuple[tuple[int, int, int], ...], weights: tuple[float, float, float]) -> np.ndarray:
    """uint8 table of 256³ entries: index ``R << 16 | G << 8 | B`` → index of the nearest palette colour."""
    if not 0 < len(palette) <= 256:
        raise ValueError("a palette has 1 to 256 colours")
    with _build_lock:  # concurrent first calls build it once
        return _build(palette, weights)


@functools.cache
def _build(palette: tuple[tuple[int, int, int], ...], weights: tuple[float, float, float]) -> np.ndarray:
    lut = np.empty(256**3, dtype=np.uint8)
    _fill_lut(np.asarray(palette, dtype=np.float64), np.asarray(weights, dtype=np.float64), lut)
    lut.flags.writeable = False
    return lut


def rgb_code(rgb: np.ndarray) -> np.ndarray:
    """int32 ``R << 16 | G << 8 | B`` of a uint8 (..., 3) image: the index into :func:`nearest_lut`."""
    code = rgb[..., 0].astype(np.int32)
    code <<= 8
    code |= rgb[..., 1]
    code <<= 8
    code |= rgb[..., 2]
    return code


@lazy_njit
def _fill_lut(  # pragma: no cover - runs compiled
    palette: NDArray[np.float64], weights: NDArray[np.float64], lut: NDArray[np.uint8]
) -> None:
    n = palette.shape[0]
    blue_term = np.empty((n, 256))
    for k in range(n):
        for b in range(256):
            db = b - palette[k, 2]
            blue_term[k, b] = weights[2] * (db * db)
    best_d = np.empty(256)
    best_k = np.empty(256, dtype=np.uint8)
    for r in range(256):
        for g in range(256):
            best_d[:] = np.inf
            for k in range(n):
                dr = r - palette[k, 0]
                dg = g - palette[k, 1]
                red_green = weights[0] * (dr * dr) + weights[1] * (dg * dg)
                for b in range(256):
                    d = red_green + blue_term[k, b]
                    if d < best_d[b]:  # strict: the first index wins ties
                        best_d[b] = d
                        best_k[b] = k
            lut[(r * 256 + g) * 256 : (r * 256 + g + 1) * 256] = best_k
