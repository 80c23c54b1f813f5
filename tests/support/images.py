"""Small images the tests make in code: encoded uploads, RGBA arrays for the effects, a photo read in."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def jpeg_bytes(width: int = 64, height: int = 48) -> bytes:
    """Seeded random noise as a JPEG: the default upload of the service tests."""
    rng = np.random.default_rng(0)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (24, 16), seed: int = 0) -> bytes:
    """A deterministic gradient in ``fmt`` (the image store's samples)."""
    image = Image.new("RGB", size)
    image.putdata(
        [
            ((x * 7 + seed) % 256, (y * 13 + seed) % 256, (x * y + seed) % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    """A photo as an RGB array, shrunk to ``max_side`` when given."""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if max_side:
        image.thumbnail((max_side, max_side))
    return np.asarray(image)


def random_rgba(h: int = 48, w: int = 40, seed: int = 0) -> np.ndarray:
    """Random RGB with a soft elliptical alpha (0 outside, 255 inside, a ramp between)."""
    rng = np.random.default_rng(seed)
    rgb = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    y, x = np.ogrid[:h, :w]
    r = np.hypot((x - w / 2) / (0.4 * w), (y - h / 2) / (0.4 * h))
    alpha = (np.clip((1.2 - r) * 2.5, 0, 1) * 255).astype(np.uint8)
    return np.dstack([rgb, alpha])


def uniform_rgba(h: int, w: int, rgb: tuple[int, int, int], alpha: int = 255) -> np.ndarray:
    """One colour everywhere, at one opacity."""
    out = np.empty((h, w, 4), dtype=np.uint8)
    out[...] = (*rgb, alpha)
    return out
