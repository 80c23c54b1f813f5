"""Alpha compositing, subject box, crop and resize helpers (pure numpy/cv2, no I/O)."""

from __future__ import annotations

import math
import re

import cv2
import numpy as np

__all__ = [
    "alpha_to_mask",
    "composite",
    "crop",
    "expand_box",
    "fit_max_side",
    "parse_hex_color",
    "subject_bbox",
    "to_rgba",
]

Box = tuple[int, int, int, int]  # left, top, width, height

_HEX6 = re.compile(r"#?([0-9a-fA-F]{6})")
_HEX3 = re.compile(r"#?([0-9a-fA-F]{3})")
_MARGIN = re.compile(r"(\d+(?:\.\d+)?)\s*(px|%)?")


def alpha_to_mask(alpha: np.ndarray) -> np.ndarray:
    """float alpha in [0, 1] → uint8 H×W (×255, rounded half up). A uint8 mask is returned as is."""
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be H×W, got shape {alpha.shape}")
    if alpha.dtype == np.uint8:
        return alpha
    scaled = np.clip(alpha.astype(np.float32, copy=False), 0.0, 1.0) * 255.0 + 0.5
    return scaled.astype(np.uint8)


def to_rgba(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """uint8 H×W×3 + float alpha H×W in [0, 1] → uint8 H×W×4."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"rgb must be uint8 H×W×3, got {rgb.dtype} {rgb.shape}")
    if alpha.shape != rgb.shape[:2]:
        raise ValueError(f"alpha shape {alpha.shape} does not match image {rgb.shape[:2]}")
    out = np.empty((*rgb.shape[:2], 4), dtype=np.uint8)
    out[:, :, :3] = rgb
    out[:, :, 3] = alpha_to_mask(alpha)
    return out


def composite(rgba: np.ndarray, bg_color: tuple[int, int, int]) -> np.ndarray:
    """Blend uint8 H×W×4 over a solid colour → uint8 H×W×3 (rounded; exact at alpha 0 and 255)."""
    if rgba.dtype != np.uint8 or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise ValueError(f"rgba must be uint8 H×W×4, got {rgba.dtype} {rgba.shape}")
    bg = _check_color(bg_color)
    a = rgba[:, :, 3:4].astype(np.uint16)
    # rgb·a + bg·(255 − a) ≤ 255·255, + 127 still fits in uint16
    out = rgba[:, :, :3].astype(np.uint16) * a
    out += np.asarray(bg, dtype=np.uint16) * (255 - a)
    out += 127
    out //= 255
    return out.astype(np.uint8)


def parse_hex_color(s: str) -> tuple[int, int, int]:
    """'#rrggbb', 'rrggbb', '#rgb' or 'rgb' (case-insensitive) → (r, g, b). ValueError otherwise."""
    if not isinstance(s, str):
        raise ValueError(f"colour must be a string like '#ffffff', got {type(s).__name__}")
    text = s.strip()
    if m := _HEX6.fullmatch(text):
        h = m.group(1)
        return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)
    if m := _HEX3.fullmatch(text):
        h = m.group(1)
        return int(h[0] * 2, 16), int(h[1] * 2, 16), int(h[2] * 2, 16)
    raise ValueError(f"invalid colour {s!r}: expected '#rrggbb' or '#rgb'")


def subject_bbox(alpha: np.ndarray, threshold: float = 0.5) -> Box | None:
    """Bounding box (left, top, width, height) of pixels with alpha ≥ threshold; None when none pass.

    ``threshold`` is in alpha units 0..1; for a uint8 mask it is scaled (0.5 → 128).
    """
    if alpha.ndim != 2:
        raise ValueError(f"alpha must be H×W, got shape {alpha.shape}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    cutoff = math.ceil(threshold * 255) if alpha.dtype == np.uint8 else threshold
    passing = alpha >= cutoff
    rows = np.flatnonzero(passing.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(passing.any(axis=0))
    top, bottom = int(rows[0]), int(rows[-1])
    left, right = int(cols[0]), int(cols[-1])
    return left, top, right - left + 1, bottom - top + 1


def expand_box(box: Box, margin: str | int | float, width: int, height: int) -> Box:
    """Grow ``box`` by ``margin`` on every side, clamped to a width×height image.

    ``margin``: pixels (12, 12.0, "12", "12px") or a percentage of the box's larger side ("10%").
    """
    left, top, w, h = box
    pixels = _margin_pixels(margin, max(w, h))
    new_left = max(0, left - pixels)
    new_top = max(0, top - pixels)
    new_right = min(width, left + w + pixels)
    new_bottom = min(height, top + h + pixels)
    return new_left, new_top, new_right - new_left, new_bottom - new_top


def _margin_pixels(margin: str | int | float, larger_side: int) -> int:
    if isinstance(margin, bool):
        raise ValueError("margin must be a number of pixels or a percentage like '10%'")
    if isinstance(margin, int | float):
        value, unit = float(margin), "px"
    elif isinstance(margin, str):
        m = _MARGIN.fullmatch(margin.strip())
        if m is None:
            raise ValueError(f"invalid margin {margin!r}: expected pixels ('12', '12px') or a percentage ('10%')")
        value, unit = float(m.group(1)), m.group(2) or "px"
    else:
        raise ValueError(f"invalid margin type {type(margin).__name__}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"margin must be a finite, non-negative value, got {margin!r}")
    if unit == "%":
        value = value / 100.0 * larger_side
    return int(value + 0.5)


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """array[top:top+height, left:left+width] as a C-contiguous copy; the box must lie inside."""
    left, top, w, h = box
    rows, cols = array.shape[:2]
    if w < 1 or h < 1 or left < 0 or top < 0 or left + w > cols or top + h > rows:
        raise ValueError(f"box {box} is empty or outside the {cols}×{rows} image")
    return np.ascontiguousarray(array[top : top + h, left : left + w])


def fit_max_side(array: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale (cv2.INTER_AREA) so the longer side is at most ``max_side``; never upscale.

    Works for H×W, H×W×3 and H×W×4; returns the input itself when it already fits.
    """
    if max_side < 1:
        raise ValueError(f"max_side must be ≥ 1, got {max_side}")
    h, w = array.shape[:2]
    longer = max(h, w)
    if longer <= max_side:
        return array
    scale = max_side / longer
    new_w = max_side if w == longer else max(1, round(w * scale))
    new_h = max_side if h == longer else max(1, round(h * scale))
    resized = cv2.resize(array, (new_w, new_h), interpolation=cv2.INTER_AREA)
    if array.ndim == 3 and resized.ndim == 2:  # cv2 drops a trailing channel axis of size 1
        resized = resized[:, :, None]
    return resized


def _check_color(color: tuple[int, int, int]) -> tuple[int, int, int]:
    ok = (
        isinstance(color, tuple | list)
        and len(color) == 3
        and all(isinstance(c, int | np.integer) and not isinstance(c, bool) and 0 <= c <= 255 for c in color)
    )
    if not ok:
        raise ValueError(f"bg_color must be three integers 0..255, got {color!r}")
    return int(color[0]), int(color[1]), int(color[2])
