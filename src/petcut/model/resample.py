"""Bilinear resizing of a model's output map back to the photo, in numpy (no torch on the CPU path).

``align_corners=True`` is what transparent-background's ``Remover`` uses (``F.interpolate(...,
align_corners=True)``); ``False`` is the half-pixel convention (OpenCV, PIL, most ONNX pipelines). Both are
computed separably in float32 with exact weights, so the result matches torch's to float rounding.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def _axis(n_in: int, n_out: int, align_corners: bool) -> tuple[NDArray[np.intp], NDArray[np.intp], NDArray[np.float32]]:
    """Source indices (lower, upper) and the upper weight for each output position along one axis."""
    out = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = out * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        src = np.maximum((out + 0.5) * (n_in / n_out) - 0.5, 0.0)
    lower = np.minimum(np.floor(src).astype(np.intp), n_in - 1)
    upper = np.minimum(lower + 1, n_in - 1)
    weight = (src - lower).astype(np.float32)
    return lower, upper, weight


def resize_bilinear(values: NDArray[np.floating], size: tuple[int, int], *, align_corners: bool) -> NDArray[np.float32]:
    """Resize a float32 H×W map to ``size`` = (height, width)."""
    height, width = size
    values = np.asarray(values, dtype=np.float32)
    if values.shape == (height, width):
        return values.copy()
    # columns first, on the small input; then whole rows, which numpy gathers as contiguous copies
    left, right, wx = _axis(values.shape[1], width, align_corners)
    cols = values[:, left]
    cols += (values[:, right] - cols) * wx
    top, bottom, wy = _axis(values.shape[0], height, align_corners)
    out: NDArray[np.float32] = cols[top]
    step = cols[bottom]
    step -= out
    step *= wy[:, None]
    out += step
    return out
