"""Small synthetic images for the effects tests."""

from __future__ import annotations

import numpy as np


def random_rgba(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    """Random RGB with a soft elliptical alpha (0 outside, 255 inside, a ramp between)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, x = np.ogrid[:h, :w]
    r = np.hypot((x - w / 2) / (0.4 * w), (y - h / 2) / (0.4 * h))
    alpha = (np.clip((1.2 - r) * 2.5, 0, 1) * 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def uniform_rgba(h: int, w: int, rgb: tuple[int, int, int], alpha: int = 255) -> np.ndarray:
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[...] = (*rgb, alpha)
    return out
