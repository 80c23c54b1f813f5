"""Foreground colour estimation: recover the subject's own colour where alpha is soft (fur edges).

Without it, semi-transparent edge pixels keep the old background's colour mixed in (a halo).

- "blur_fusion" (default): Forte & Pitié, "Approximate Fast Foreground Colour Estimation", ICIP 2021
  (arXiv 2020). With alpha-weighted box blurs F̂ = blur(F·α)/blur(α) and B̂ = blur(B·(1−α))/blur(1−α),
  F ← F̂ + α·(I − α·F̂ − (1−α)·B̂), run twice: radius 90 from F = B = I, then radius 6 from the first
  result and the first blurred background. Box filters (cv2.blur), float32, one channel at a time to
  keep peak memory near eight H×W float32 planes.
- "pymatting": pymatting's multilevel ``estimate_foreground_ml`` (the reference's path; slow, JIT
  compiled on first use), imported only when asked for.
- "none": the input colours unchanged.
"""

from __future__ import annotations

from typing import cast

import cv2
import numpy as np
from numpy.typing import NDArray

__all__ = ["FOREGROUND_METHODS", "estimate_foreground"]

FOREGROUND_METHODS: tuple[str, ...] = ("blur_fusion", "pymatting", "none")

_EPS = np.float32(1e-5)

#: an image plane, or the alpha matte: float32 H×W
Plane = NDArray[np.float32]


def estimate_foreground(
    rgb: NDArray[np.uint8], alpha: NDArray[np.uint8] | NDArray[np.floating], method: str = "blur_fusion"
) -> NDArray[np.uint8]:
    """uint8 H×W×3 image + alpha H×W (float in [0, 1], or uint8) → uint8 H×W×3 foreground colours."""
    if method not in FOREGROUND_METHODS:
        raise ValueError(f"unknown foreground method {method!r}: expected one of {', '.join(FOREGROUND_METHODS)}")
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError("rgb must be a uint8 H×W×3 array")
    if not isinstance(alpha, np.ndarray) or alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha must be an H×W array matching the image {rgb.shape[:2]}")
    if method == "none":
        return rgb
    a = _alpha_float32(alpha)
    if method == "pymatting":
        return _pymatting(rgb, a)
    return _blur_fusion(rgb, a)


def _alpha_float32(alpha: NDArray[np.uint8] | NDArray[np.floating]) -> Plane:
    if alpha.dtype == np.uint8:
        return alpha.astype(np.float32) * np.float32(1 / 255)
    return np.clip(alpha.astype(np.float32, copy=False), 0.0, 1.0)


#: how far a soft pixel's result reaches: the radius-90 box (±45) of the first pass, read at the pixels
#: the radius-6 box (±3) of the second pass reads, each of whose own ±45 windows must lie in the crop
_REACH = 45 + 3 + 45 + 3


def _blur_fusion(rgb: NDArray[np.uint8], alpha: Plane) -> NDArray[np.uint8]:
    """Blur-fusion on the bounding box of the soft pixels (0 < α < 1) plus its reach, the input colours
    elsewhere: where α = 1 the estimate is the input colour, where α = 0 the colour is invisible. Soft
    pixels get exactly the full-image result, at a fraction of the cost when the subject is small."""
    soft = (alpha > 0.0) & (alpha < 1.0)
    rows = np.flatnonzero(soft.any(axis=1))
    if rows.size == 0:
        return rgb.copy()
    cols = np.flatnonzero(soft.any(axis=0))
    height, width = alpha.shape
    top, bottom = max(0, int(rows[0]) - _REACH), min(height, int(rows[-1]) + _REACH + 1)
    left, right = max(0, int(cols[0]) - _REACH), min(width, int(cols[-1]) + _REACH + 1)
    if (bottom - top) * (right - left) == height * width:
        return _blur_fusion_region(rgb, alpha)
    out = rgb.copy()
    out[top:bottom, left:right] = _blur_fusion_region(rgb[top:bottom, left:right], alpha[top:bottom, left:right])
    return out


def _blur_fusion_region(rgb: NDArray[np.uint8], alpha: Plane) -> NDArray[np.uint8]:
    alpha = np.ascontiguousarray(alpha)
    one_minus_a = 1.0 - alpha
    out = np.empty_like(rgb)

    # Pass 1 (r = 90): F = B = I.  blur(I·(1−α)) = blur(I) − blur(I·α) by linearity (one blur saved).
    blur_a90 = _box_blur(alpha, 90)
    inv_fa90 = 1.0 / (blur_a90 + _EPS)
    inv_b90 = 1.0 / ((1.0 - blur_a90) + _EPS)
    del blur_a90
    # Pass 2 (r = 6) weights.
    blur_a6 = _box_blur(alpha, 6)
    inv_fa6 = 1.0 / (blur_a6 + _EPS)
    inv_b6 = 1.0 / ((1.0 - blur_a6) + _EPS)
    del blur_a6

    for c in range(3):
        image = np.ascontiguousarray(rgb[:, :, c], dtype=np.float32)
        image *= np.float32(1 / 255)

        fa = image * alpha
        f_hat = _box_blur(fa, 90)
        b_hat = _box_blur(image, 90)
        b_hat -= f_hat
        b_hat *= inv_b90  # blurred background, reused by pass 2
        f_hat *= inv_fa90
        f1 = _fuse(image, alpha, one_minus_a, f_hat, b_hat)

        np.multiply(f1, alpha, out=fa)
        f_hat = _box_blur(fa, 6)
        f_hat *= inv_fa6
        b_hat *= one_minus_a
        b_hat2 = _box_blur(b_hat, 6)
        b_hat2 *= inv_b6
        f2 = _fuse(image, alpha, one_minus_a, f_hat, b_hat2)

        f2 *= 255.0
        f2 += 0.5
        out[:, :, c] = f2.astype(np.uint8)  # f2 is clipped to [0, 1] → [0.5, 255.5)
    return out


def _box_blur(plane: Plane, side: int) -> Plane:
    """``cv2.blur`` with a ``side``×``side`` box: float32 in, float32 out (OpenCV's stubs say any array)."""
    return cast(Plane, cv2.blur(plane, (side, side)))


def _fuse(image: Plane, alpha: Plane, one_minus_a: Plane, f_hat: Plane, b_hat: Plane) -> Plane:
    """F̂ + α·(I − α·F̂ − (1−α)·B̂), clipped to [0, 1]."""
    residual = image - alpha * f_hat
    residual -= one_minus_a * b_hat
    residual *= alpha
    residual += f_hat
    np.clip(residual, 0.0, 1.0, out=residual)
    return residual


def _pymatting(rgb: NDArray[np.uint8], alpha: Plane) -> NDArray[np.uint8]:
    from pymatting import estimate_foreground_ml

    foreground: NDArray[np.float64] = estimate_foreground_ml(rgb.astype(np.float64) / 255.0, alpha.astype(np.float64))
    return (np.clip(foreground, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
