"""`retro8bit`: palette membership, pixel blocks, edges kept finer, nearest colour with ties, dithering."""

from __future__ import annotations

import numpy as np
import pytest

from petcut import effects
from petcut.effects._palette import nearest_lut, rgb_code
from petcut.effects.retro8bit import PALETTE, WEIGHTS, edge_mask
from tests.support.images import random_rgba, uniform_rgba

NAME = "retro8bit"
PLAIN = {"preserve_edges": False}


def in_palette(rgb: np.ndarray) -> np.ndarray:
    """Boolean (H, W): pixel colour is one of the 32 palette colours."""
    pal = np.array(PALETTE)
    return (rgb[..., None, :] == pal).all(-1).any(-1)


def nearest_brute_force(colours: np.ndarray) -> np.ndarray:
    """Index of the nearest palette colour (weighted squared distance, first on ties), small inputs only."""
    pal = np.array(PALETTE, dtype=np.float64)
    d = colours[:, None, :].astype(np.float64) - pal[None]
    dist = WEIGHTS[0] * d[..., 0] ** 2 + WEIGHTS[1] * d[..., 1] ** 2 + WEIGHTS[2] * d[..., 2] ** 2
    return dist.argmin(axis=1)  # argmin returns the first minimum


def test_palette_is_the_spec_palette():
    assert len(PALETTE) == 32 and len(set(PALETTE)) == 32
    assert PALETTE[:10] == tuple((v, v, v) for v in (0, 25, 50, 75, 100, 130, 160, 190, 220, 255))
    assert PALETTE[10] == (45, 30, 15) and PALETTE[-1] == (50, 100, 50)


@pytest.mark.parametrize(
    "params", [{}, PLAIN, {"error_diffusion": True}, {"pixelation_factor": 1}, {"pixelation_factor": 13}]
)
def test_output_in_palette_and_transparent_black(params):
    rgba = random_rgba(60, 50, seed=40)
    out = effects.apply(NAME, rgba, params)
    visible = rgba[..., 3] > 0
    assert in_palette(out[..., :3])[visible].all()
    assert np.all(out[~visible, :3] == 0)


def test_lookup_table_is_the_nearest_colour():
    rng = np.random.default_rng(41)
    colours = rng.integers(0, 256, (20000, 3))
    lut = nearest_lut(PALETTE, WEIGHTS)
    assert lut.shape == (256**3,)
    assert np.array_equal(lut[rgb_code(colours.astype(np.uint8))], nearest_brute_force(colours))


def test_tie_goes_to_the_first_index():
    # (115, 115, 115) is 15 away from grey 100 (index 4) and grey 130 (index 5) on every channel
    pal = np.array(PALETTE)
    d = WEIGHTS @ ((pal - 115.0) ** 2).T
    assert d[4] == d[5] == d.min()
    out = effects.apply(NAME, uniform_rgba(6, 6, (115, 115, 115)), {"pixelation_factor": 1, **PLAIN})
    assert np.all(out[..., :3] == (100, 100, 100))


def test_blocks_are_constant():
    rgba = random_rgba(48, 36, seed=42)
    rgba[..., 3] = 255
    out = effects.apply(NAME, rgba, {"pixelation_factor": 6, **PLAIN})[..., :3]
    blocks = out.reshape(8, 6, 6, 6, 3)
    assert np.all(blocks == blocks[:, :1, :, :1])
    # each block is the nearest colour of its block mean (area downscale, rounded)
    means = np.round(rgba[..., :3].reshape(8, 6, 6, 6, 3).mean(axis=(1, 3)) + 1e-9).astype(int)
    expected = np.array(PALETTE)[nearest_brute_force(means.reshape(-1, 3))].reshape(8, 6, 3)
    assert np.array_equal(blocks[:, 0, :, 0], expected)


def test_block_of_a_mix_is_the_mean():
    rgba = uniform_rgba(12, 12, (200, 200, 200))
    rgba[::2, :, :3] = 0  # every other row black: each 6×6 block averages to grey 100
    out = effects.apply(NAME, rgba, {"pixelation_factor": 6, **PLAIN})
    assert np.all(out[..., :3] == (100, 100, 100))


def test_edges_use_half_size_blocks():
    # black for x < 10, white from x = 10; f = 6, so edge pixels use f // 2 = 3
    rgba = uniform_rgba(24, 24, (255, 255, 255))
    rgba[:, :10, :3] = 0
    mask = edge_mask(rgba[..., :3].copy(), 40.0)
    assert np.array_equal(np.flatnonzero(mask[12]), [8, 9, 10, 11])  # Sobel at x = 9, 10, dilated by one
    row = effects.apply(NAME, rgba, {"pixelation_factor": 6})[12, :, 0]
    # x 6-7: 6-block [6, 12) has mean 2 * 255 / 6 = 85 → grey 75; x 8: 3-block [6, 9) black;
    # x 9-11: 3-block [9, 12) mean 170 → grey 160; from x 12 white
    expected = [0] * 6 + [75, 75] + [0] + [160] * 3 + [255] * 12
    assert row.tolist() == expected
    without = effects.apply(NAME, rgba, {"pixelation_factor": 6, **PLAIN})[12, :, 0]
    assert without.tolist() == [0] * 6 + [75] * 6 + [255] * 12


def test_image_smaller_than_a_block_is_quantised_per_pixel():
    rgba = random_rgba(5, 4, seed=43)
    rgba[..., 3] = 255
    out = effects.apply(NAME, rgba, {"pixelation_factor": 12})  # 12 and 12 // 2 both exceed 5 × 4
    expected = np.array(PALETTE)[nearest_brute_force(rgba[..., :3].reshape(-1, 3))].reshape(5, 4, 3)
    assert np.array_equal(out[..., :3], expected)


def test_error_diffusion_mixes_neighbouring_colours():
    rgba = uniform_rgba(64, 64, (115, 115, 115))
    out = effects.apply(NAME, rgba, {"pixelation_factor": 1, "error_diffusion": True})[..., :3]
    colours = {tuple(px) for px in out.reshape(-1, 3).tolist()}
    assert {(100, 100, 100), (130, 130, 130)} <= colours
    assert abs(out.astype(float).mean() - 115) < 1.5  # the error is carried, the mean kept


def test_error_diffusion_skips_transparent_pixels():
    rgba = uniform_rgba(16, 16, (115, 115, 115))
    rgba[:, :8, 3] = 0
    out = effects.apply(NAME, rgba, {"pixelation_factor": 1, "error_diffusion": True})
    assert np.all(out[:, :8, :3] == 0)
    assert in_palette(out[:, 8:, :3]).all()
    # the first visible pixel of the first row gets no error from the transparent ones: nearest of 115
    assert tuple(out[0, 8, :3]) == (100, 100, 100)
