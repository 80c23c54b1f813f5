"""`enhancedblackwhite`: grey output, the film curve and each step against the formulas of effects.md."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from petcut import effects
from tests.support.images import random_rgba, uniform_rgba

NAME = "enhancedblackwhite"
NO_GRAIN = {"grain_strength": 0.0}
CURVE_ONLY = {"edge_strength": 0.0, "halation_strength": 0.0, "grain_strength": 0.0, "preserve_highlights": False}


def grey_ramp() -> np.ndarray:
    """1×256 image with R = G = B = 0..255."""
    v = np.arange(256, dtype=np.uint8)
    return np.dstack([v, v, v, np.full(256, 255, np.uint8)])


def film_curve(g, contrast=1.12):
    """Step 2 of effects.md, float64."""
    s = 0.92 * (1.1 * g) ** 1.25
    h = 1 - 0.95 * ((1 - g) * 1.05) ** 0.75
    m = np.clip((g - 0.25) / 0.3, 0, 1)
    return np.clip((s * (1 - m) + h * m) * contrast, 0, 1)


def spec_without_grain(rgba, p):
    """Steps 1-4, 6, 7 of effects.md in float64 (grain off)."""
    w = p["gray_weights"]
    g = (w[0] * rgba[..., 0] + w[1] * rgba[..., 1] + w[2] * rgba[..., 2]) / 255.0
    g = film_curve(g, p["contrast_boost"])
    blur = cv2.GaussianBlur(g, (5, 5), 1.2)
    g = np.clip(g + (g - blur) * p["edge_strength"] * 4 * g * (1 - g), 0, 1)
    b = (g > 0.75).astype(np.float64)
    halo = 0.3 * cv2.GaussianBlur(b, (21, 21), 7) + 0.7 * cv2.GaussianBlur(b, (9, 9), 2.5)
    g = np.clip(g + halo * p["halation_strength"] * (1 - g**2), 0, 1)
    if p["preserve_highlights"]:
        g = np.where(g > 0.9, 0.95 * g + 0.05, g)
    return g * 255


def assert_truncation_of(out: np.ndarray, exact: np.ndarray) -> None:
    """``out`` is ``exact`` truncated; where ``exact`` is within 1e-3 of an integer either side is fine."""
    near_integer = np.abs(exact - np.round(exact)) < 1e-3
    ok = (out == np.floor(exact)) | (near_integer & (np.abs(out - np.round(exact)) <= 1))
    assert ok.all(), (out[~ok][:10], exact[~ok][:10])


def test_output_is_grey():
    out = effects.apply(NAME, random_rgba(40, 30, seed=10))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_film_curve_on_a_grey_ramp():
    out = effects.apply(NAME, grey_ramp(), CURVE_ONLY)[0, :, 0].astype(np.float64)
    assert_truncation_of(out, film_curve(np.arange(256) / 255.0) * 255)
    assert np.all(np.diff(out) >= 0)  # the curve is monotone
    # a few values by hand: g = 0 → 0; g = 1 → H = 1, times 1.12, clipped → 255
    assert out[0] == 0 and out[255] == 255


def test_film_curve_known_value():
    # g = 0.5: S = 0.92 * 0.55**1.25, H = 1 - 0.95 * 0.525**0.75, m = 5/6
    s, h = 0.92 * 0.55**1.25, 1 - 0.95 * 0.525**0.75
    expected = (s / 6 + h * 5 / 6) * 1.12 * 255
    assert abs(expected - film_curve(0.5) * 255) < 1e-9 and abs(expected - round(expected)) > 0.01
    rgba = uniform_rgba(3, 3, (255, 0, 0))  # grey 0.5 through the weights
    out = effects.apply(NAME, rgba, {**CURVE_ONLY, "gray_weights": [0.5, 0.0, 0.0]})
    assert np.all(out[..., :3] == int(expected))


def test_contrast_boost_scales_the_curve():
    out = effects.apply(NAME, grey_ramp(), {**CURVE_ONLY, "contrast_boost": 0.8})[0, :, 0]
    assert_truncation_of(out.astype(np.float64), film_curve(np.arange(256) / 255.0, 0.8) * 255)


def test_preserve_highlights():
    on = effects.apply(NAME, grey_ramp(), {**CURVE_ONLY, "preserve_highlights": True})[0, :, 0]
    g = film_curve(np.arange(256) / 255.0)
    g = np.where(g > 0.9, 0.95 * g + 0.05, g)
    assert_truncation_of(on.astype(np.float64), g * 255)


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"edge_strength": 2.5, "halation_strength": 0.8, "contrast_boost": 1.4},
        {"preserve_highlights": False, "gray_weights": [0.3, 0.3, 0.4]},
    ],
)
def test_matches_the_spec_without_grain(params):
    # smooth image with highlights, so that sharpening and halation both act
    rng = np.random.default_rng(11)
    rgb = cv2.GaussianBlur(rng.integers(0, 256, (60, 50, 3)).astype(np.float32), (0, 0), 3)
    rgb = np.clip((rgb - 128) * 4 + 160, 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb, np.full((60, 50), 255, np.uint8)])
    p = effects.validate_params(NAME, {**params, **NO_GRAIN})
    out = effects.apply(NAME, rgba, p)[..., 0].astype(np.float64)
    exact = spec_without_grain(rgba, p)
    assert (exact > 0.75 * 255).any() and (exact < 0.5 * 255).any()
    # float32 vs float64 only moves values across a truncation boundary, by at most one level
    assert np.abs(out - exact).max() <= 1.0 + 1e-6
    assert np.mean(out == np.floor(exact)) > 0.98


def test_grain_is_seeded_from_the_content():
    flat = uniform_rgba(64, 64, (110, 110, 110))
    a, b = effects.apply(NAME, flat), effects.apply(NAME, flat)
    assert np.array_equal(a, b)
    assert a[..., 0].std() > 0.5  # grain present on a flat image
    other = flat.copy()
    other[0, 0, :3] = 111  # one pixel differs
    c = effects.apply(NAME, other)
    assert np.mean(a[8:, 8:, 0] != c[8:, 8:, 0]) > 0.3  # grain differs far from that pixel
    d = effects.apply(NAME, flat, {"grain_strength": 0.09})
    assert not np.array_equal(a, d)


def test_no_grain_on_a_flat_image_without_grain():
    out = effects.apply(NAME, uniform_rgba(32, 32, (110, 110, 110)), NO_GRAIN)
    assert np.unique(out[..., 0]).size == 1


def test_more_grain_in_the_shadows():
    # clip(1.2 - g, 0.3, 1): factor 1 at g <= 0.2, 0.3 at g >= 0.9
    p = {"edge_strength": 0.0, "halation_strength": 0.0, "preserve_highlights": False, "grain_strength": 0.2}
    dark = effects.apply(NAME, uniform_rgba(96, 96, (50, 50, 50)), p)[..., 0]
    light = effects.apply(NAME, uniform_rgba(96, 96, (230, 230, 230)), p)[..., 0]
    g_dark = film_curve(50 / 255)
    g_light = film_curve(230 / 255)
    assert 0.1 < g_dark < 0.2 and 0.9 < g_light < 0.95
    assert abs(dark.mean() - g_dark * 255) < 2 and abs(light.mean() - g_light * 255) < 2
    ratio = dark.std() / light.std()
    assert 2.0 < ratio < 5.0  # ≈ 1 / 0.3 before truncation


def test_grain_size_blurs_the_grain():
    p = {"edge_strength": 0.0, "halation_strength": 0.0, "grain_strength": 0.5, "preserve_highlights": False}
    flat = uniform_rgba(96, 96, (110, 110, 110))
    fine = effects.apply(NAME, flat, {**p, "grain_size": 1.0})[..., 0].astype(np.float64)
    coarse = effects.apply(NAME, flat, {**p, "grain_size": 4.0})[..., 0].astype(np.float64)

    def neighbour_correlation(x):
        x = x - x.mean()
        return (x[:, 1:] * x[:, :-1]).mean() / x.var()

    assert neighbour_correlation(coarse) > neighbour_correlation(fine) + 0.2


def test_weights_summing_above_one_do_not_break():
    white = uniform_rgba(8, 8, (255, 255, 255))
    out = effects.apply(NAME, white, {"gray_weights": [1.0, 1.0, 1.0], **NO_GRAIN})
    assert np.all(out[..., :3] == 255)
