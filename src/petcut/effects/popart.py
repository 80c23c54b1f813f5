"""`popart`: Warhol-style flat colour (contrast, saturation, posterise, luminance → palette, hue override)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from ._common import LUMA_601, grey, rgb_of
from ._params import Param

NAME = "popart"
DESCRIPTION = "Warhol-style pop art: posterised, flat bright colours from a six-colour palette."
PARAMS: tuple[Param, ...] = ()

BLACK = (0, 0, 0)
HOT_PINK = (255, 20, 147)
SPRING_GREEN = (0, 255, 127)
BLUE_VIOLET = (138, 43, 226)
DEEP_SKY_BLUE = (0, 191, 255)
RED_ORANGE = (255, 69, 0)
LIME_GREEN = (50, 205, 50)
PALETTE = (HOT_PINK, SPRING_GREEN, BLUE_VIOLET, DEEP_SKY_BLUE, RED_ORANGE, LIME_GREEN)

# Step 4: upper bounds (inclusive) of the luminance bands; below 40 is black, above 240 deep sky blue.
_LUMINANCE_BANDS = (
    (70, BLUE_VIOLET),
    (100, DEEP_SKY_BLUE),
    (130, HOT_PINK),
    (160, LIME_GREEN),
    (190, SPRING_GREEN),
    (210, LIME_GREEN),
    (240, HOT_PINK),
)
# Step 5: (colour if the integer sum is odd, colour if even) per dominant channel R, G, B.
_HUE_OVERRIDE = ((HOT_PINK, RED_ORANGE), (SPRING_GREEN, LIME_GREEN), (BLUE_VIOLET, DEEP_SKY_BLUE))

_POSTER_STEP = 127.5
_LEVELS = 3  # posterised channel values: 0, 127.5, 255


def render(rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    c = cast(NDArray[np.float32], cv2.LUT(rgb_of(rgba), _CONTRAST_LUT))  # step 1 per channel, float32
    lum = grey(c, LUMA_601)
    lum3 = cv2.merge([lum, lum, lum])
    # step 2: s = clip(L + (c - L) * 2, 0, 255)
    c -= lum3
    c *= np.float32(2)
    c += lum3
    np.clip(c, 0, 255, out=c)
    # step 3: p = round(s / 127.5) * 127.5, round half to even; keep the level k = p / 127.5 in {0, 1, 2}
    c /= np.float32(_POSTER_STEP)
    np.round(c, out=c)
    code = cv2.transform(c, _CODE_WEIGHTS).astype(np.uint8)  # 9 kR + 3 kG + kB
    # steps 4-5 from a table over the 27 codes; alpha goes through the table's identity channel
    return cv2.LUT(cv2.merge([code, code, code, rgba[..., 3].copy()]), _RGBA_OF_CODE)


def colour_of(p: np.ndarray) -> np.ndarray:
    """Steps 4–5 for posterised pixels ``p`` (N, 3) float: the uint8 (N, 3) palette colour."""
    p = np.asarray(p, dtype=np.float64)
    y = p @ np.array([0.2126, 0.7152, 0.0722])
    out = np.empty(p.shape, dtype=np.uint8)
    out[:] = DEEP_SKY_BLUE
    for upper, colour in reversed(_LUMINANCE_BANDS):
        out[y <= upper] = colour
    out[y < 40] = BLACK
    odd = np.floor(p.sum(axis=1)).astype(np.int64) % 2 == 1
    vivid = p.max(axis=1) - p.min(axis=1) > 60
    for ch, (if_odd, if_even) in enumerate(_HUE_OVERRIDE):
        others = np.delete(p, ch, axis=1)
        dominant = vivid & (p[:, ch] == p.max(axis=1)) & np.all(p[:, ch : ch + 1] > others + 30, axis=1)
        out[dominant & odd] = if_odd
        out[dominant & ~odd] = if_even
    return out


def _build_rgba_of_code() -> np.ndarray:
    """(256, 1, 4) uint8 table: code ``9 kR + 3 kG + kB`` (levels k in {0, 1, 2}) → RGB; channel 3 = index."""
    k = np.indices((_LEVELS,) * 3).reshape(3, -1).T
    table = np.zeros((256, 1, 4), dtype=np.uint8)
    table[: len(k), 0, :3] = colour_of(k * _POSTER_STEP)
    table[:, 0, 3] = np.arange(256)
    return table


_CONTRAST_LUT = np.clip((np.arange(256, dtype=np.float32) - 128) * 2.5 + 128, 0, 255).astype(np.float32)
_CODE_WEIGHTS = np.array([[_LEVELS**2, _LEVELS, 1]], dtype=np.float32)
_RGBA_OF_CODE = _build_rgba_of_code()
