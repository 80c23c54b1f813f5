"""`enhancedblackwhite`: Tri-X style film black and white (film curve, sharpening, halation, grain)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import cv2
import numpy as np
from numpy.typing import NDArray

from ._common import grey, normal_f32, seeded_rng, to_uint8, with_alpha
from ._params import Param

NAME = "enhancedblackwhite"
DESCRIPTION = "Tri-X style film black and white: film curve, mid-tone sharpening, halation and film grain."
PARAMS = (
    Param("contrast_boost", "float", 1.12, "Multiplier applied after the film curve.", 0.5, 2.0),
    Param("edge_strength", "float", 0.9, "Mid-tone sharpening strength.", 0.0, 3.0),
    Param("halation_strength", "float", 0.12, "Glow around highlights.", 0.0, 1.0),
    Param("grain_strength", "float", 0.08, "Film grain amount (0 = none).", 0.0, 1.0),
    Param("grain_size", "float", 2.0, "Grain size; above 1 the grain is blurred.", 0.0, 8.0),
    Param("preserve_highlights", "bool", True, "Lift tones above 0.9 towards white."),
    Param("gray_weights", "float_list", (0.18, 0.72, 0.10), "R, G, B weights of the grey.", 0.0, 1.0, 3),
)


def render(rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    g = grey(rgba, params["gray_weights"], 1 / 255)
    np.clip(g, 0, 1, out=g)  # no-op unless the weights sum to more than 1
    g = film_curve(g, params["contrast_boost"])
    if params["edge_strength"]:
        _sharpen_midtones(g, params["edge_strength"])
    if params["halation_strength"]:
        _add_halation(g, params["halation_strength"])
    if params["grain_strength"]:
        _add_grain(g, grain_noise(rgba, params), params["grain_strength"])
    if params["preserve_highlights"]:
        high = g > 0.9
        np.multiply(g, np.float32(0.95), out=g, where=high)
        np.add(g, np.float32(0.05), out=g, where=high)
    g *= 255
    return with_alpha(to_uint8(g), rgba[..., 3])


def film_curve(g: np.ndarray, contrast_boost: float) -> np.ndarray:
    """Step 2: shadow/highlight film curve blended over the mid-tones, times ``contrast_boost``."""
    shadows = g * np.float32(1.1)
    np.power(shadows, np.float32(1.25), out=shadows)
    shadows *= np.float32(0.92)
    highs = np.subtract(np.float32(1), g)
    highs *= np.float32(1.05)
    np.power(highs, np.float32(0.75), out=highs)
    highs *= np.float32(-0.95)
    highs += np.float32(1)
    m = g - np.float32(0.25)
    m /= np.float32(0.3)
    np.clip(m, 0, 1, out=m)
    highs *= m  # H m
    np.subtract(np.float32(1), m, out=m)
    shadows *= m  # S (1 - m)
    shadows += highs
    shadows *= np.float32(contrast_boost)
    return np.clip(shadows, 0, 1, out=shadows)


def _sharpen_midtones(g: np.ndarray, strength: float) -> None:
    """Step 3, in place: ``g += (g - blur) * strength * 4 g (1 - g)``."""
    detail = cv2.GaussianBlur(g, (5, 5), 1.2)
    np.subtract(g, detail, out=detail)
    weight = np.subtract(np.float32(1), g)
    weight *= g
    weight *= np.float32(4 * strength)
    detail *= weight
    g += detail
    np.clip(g, 0, 1, out=g)


def _add_halation(g: np.ndarray, strength: float) -> None:
    """Step 4, in place: glow from pixels brighter than 0.75, weighted by ``1 - g²``."""
    bright = (g > 0.75).astype(np.float32)
    halo = cast(NDArray[np.float32], cv2.GaussianBlur(bright, (21, 21), 7))
    halo *= np.float32(0.3)
    halo += np.float32(0.7) * cv2.GaussianBlur(bright, (9, 9), 2.5)
    np.square(g, out=bright)
    np.subtract(np.float32(1), bright, out=bright)
    bright *= np.float32(strength)
    halo *= bright
    g += halo
    np.clip(g, 0, 1, out=g)


def grain_noise(rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """Step 5 noise ``n`` (before shadow weighting): 0.7 fine N(0, 0.4) + 0.3 coarse N(0, 0.6), blurred.

    Drawn from a generator seeded by the image and the parameters: fine noise first, then coarse.
    The coarse field is at least 1×1 so that 1-pixel-wide images work.
    """
    h, w = rgba.shape[:2]
    rng = seeded_rng(NAME, rgba, params)
    noise = normal_f32(rng, (h, w), 0.7 * 0.4)
    coarse = normal_f32(rng, (max(1, h // 2), max(1, w // 2)), 0.3 * 0.6)
    noise += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_LINEAR)
    if params["grain_size"] > 1:
        sigma = (params["grain_size"] - 1) * 0.5
        k = max(3, int(4 * sigma) + 1)
        k += 1 - k % 2  # odd
        noise = cv2.GaussianBlur(noise, (k, k), sigma)
    return noise


def _add_grain(g: np.ndarray, noise: np.ndarray, strength: float) -> None:
    """Step 5, in place: more grain in the shadows, ``g += n * clip(1.2 - g, 0.3, 1) * strength``."""
    shadow = np.subtract(np.float32(1.2), g)
    np.clip(shadow, 0.3, 1.0, out=shadow)
    noise *= shadow
    noise *= np.float32(strength)
    g += noise
    np.clip(g, 0, 1, out=g)
