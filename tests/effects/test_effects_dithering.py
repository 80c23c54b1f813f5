"""`dithering`: spaced Floyd–Steinberg dots, checked against a plain-Python reading of effects.md."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from petcut import effects
from petcut.effects.dithering import prepare_grey
from tests.support.images import random_rgba, uniform_rgba

NAME = "dithering"


def fs_on_grid(v, threshold, alpha, s, dot):
    """Step 4 of effects.md as written: sample points, skip alpha 0, push error to sample neighbours."""
    h, w = v.shape
    canvas = np.full((h, w), 255, np.uint8)
    err = np.zeros((h, w))
    for y in range(0, h, s):
        for x in range(0, w, s):
            if alpha[y, x] == 0:
                continue
            value = float(v[y, x]) + err[y, x]
            new = 0 if value < threshold[y, x] else 255
            e = value - new
            if new == 0:
                block = canvas[y : y + dot, x : x + dot]
                block[alpha[y : y + dot, x : x + dot] > 0] = 0
            for dy, dx, weight in ((0, s, 7 / 16), (s, -s, 3 / 16), (s, 0, 5 / 16), (s, s, 1 / 16)):
                if 0 <= y + dy < h and 0 <= x + dx < w:
                    err[y + dy, x + dx] += e * weight
    return canvas


def test_canvas_is_black_and_white_and_grey():
    out = effects.apply(NAME, random_rgba(50, 40, seed=20))
    assert set(np.unique(out[..., :3])) <= {0, 255}
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 0], out[..., 2])


@pytest.mark.parametrize(("spacing", "dot"), [(4, 2), (3, 1), (5, 3)])
def test_black_only_in_the_dot_blocks(spacing, dot):
    out = effects.apply(NAME, random_rgba(50, 40, seed=21), {"pixel_spacing": spacing, "dot_size": dot})
    y, x = np.indices(out.shape[:2])
    in_block = (y % spacing < dot) & (x % spacing < dot)
    assert np.all(out[~in_block, :3] == 255)
    assert np.any(out[in_block, 0] == 0)


def test_uniform_black_gives_every_dot_and_white_gives_none():
    params = {"pixel_spacing": 3, "dot_size": 2}
    black = effects.apply(NAME, uniform_rgba(30, 24, (0, 0, 0)), params)[..., 0]
    y, x = np.indices(black.shape)
    in_block = (y % 3 < 2) & (x % 3 < 2)
    assert np.all(black[in_block] == 0) and np.all(black[~in_block] == 255)
    white = effects.apply(NAME, uniform_rgba(30, 24, (255, 255, 255)), params)
    assert np.all(white[..., :3] == 255)


def test_transparent_regions_are_white():
    rgba = uniform_rgba(32, 32, (0, 0, 0))
    rgba[:, 16:, 3] = 0  # right half transparent, still black RGB
    rgba[5, 1, 3] = 0  # one transparent pixel inside the dot block of sample (4, 0)
    out = effects.apply(NAME, rgba, {"pixel_spacing": 4, "dot_size": 3})
    assert np.all(out[:, 16:, :3] == 255)
    assert np.all(out[5, 1, :3] == 255)
    assert out[4, 1, 0] == 0 and out[5, 0, 0] == 0 and out[6, 2, 0] == 0


def test_dot_density_follows_the_grey_level():
    # uniform v: no edges; Floyd–Steinberg keeps the mean, so the black share is about 1 - v / 255
    for level in (40, 100, 180):
        rgba = uniform_rgba(128, 128, (level,) * 3)
        out = effects.apply(NAME, rgba, {"pixel_spacing": 2, "dot_size": 1, "adaptive_threshold": False})
        v = 255 * (level / 255) ** 0.45
        black_share = np.mean(out[::2, ::2, 0] == 0)
        assert abs(black_share - (1 - v / 255)) < 0.03, level


def test_grey_preparation_follows_the_formulas():
    rgba = random_rgba(30, 26, seed=22)
    rgba[3:6, 3:6, 3] = 0
    v = prepare_grey(rgba, 0.45, 0.3).astype(np.float64)
    x = rgba[..., :3].astype(np.float64)
    ref = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    ref = 255 * (ref / 255) ** 0.45
    ref[rgba[..., 3] == 0] = 255
    kernel = np.array([[-1, -1, -1], [-1, 8, -1], [-1, -1, -1]]) / 8
    ref = np.clip(ref + 0.3 * cv2.filter2D(ref, -1, kernel, borderType=cv2.BORDER_REFLECT_101), 0, 255)
    assert np.abs(v - ref).max() < 1e-3


@pytest.mark.parametrize(
    "params",
    [
        {"adaptive_threshold": False},
        {"adaptive_threshold": True},
        {"pixel_spacing": 3, "dot_size": 4, "gamma_correction": 1.0, "enhancement_strength": 0.0},
        {"pixel_spacing": 1, "dot_size": 1},
    ],
)
def test_diffusion_matches_the_spec(params):
    rgba = random_rgba(41, 37, seed=23)
    p = effects.validate_params(NAME, params)
    v = prepare_grey(rgba, p["gamma_correction"], p["enhancement_strength"])
    if p["adaptive_threshold"]:
        threshold = 0.7 * cv2.GaussianBlur(v, (7, 7), 0).astype(np.float64) + 0.3 * 128
    else:
        threshold = np.full(v.shape, 128.0)
    expected = fs_on_grid(v, threshold, rgba[..., 3], p["pixel_spacing"], p["dot_size"])
    out = effects.apply(NAME, rgba, p)
    mismatch = out[..., 0] != expected
    # the threshold map is float32 in the effect: allow a rare flip right at the threshold
    assert mismatch.mean() < 0.002 if p["adaptive_threshold"] else not mismatch.any()
