"""Compositing, colour parsing, subject box, margins, crop and downscale."""

from __future__ import annotations

import numpy as np
import pytest

from petcut.imaging import (
    alpha_to_mask,
    composite,
    crop,
    expand_box,
    fit_max_side,
    parse_hex_color,
    subject_bbox,
    to_rgba,
)


def test_to_rgba_rounds_alpha() -> None:
    rgb = np.arange(5 * 3, dtype=np.uint8).reshape(1, 5, 3)
    alpha = np.array([[0.0, 0.499, 0.5, 1.0, 1.7]], dtype=np.float32)
    rgba = to_rgba(rgb, alpha)
    assert rgba.dtype == np.uint8 and rgba.shape == (1, 5, 4)
    np.testing.assert_array_equal(rgba[:, :, :3], rgb)
    assert rgba[0, :, 3].tolist() == [0, 127, 128, 255, 255]  # 127.245 → 127, 127.5 → 128, clipped


def test_to_rgba_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        to_rgba(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.float32))


def test_alpha_to_mask() -> None:
    mask = alpha_to_mask(np.array([[0.0, 0.2, 0.998, -1.0]], dtype=np.float32))
    assert mask.dtype == np.uint8 and mask.tolist() == [[0, 51, 254, 0]]


def test_composite() -> None:
    rgba = np.zeros((1, 4, 4), np.uint8)
    rgba[0, :, :3] = (200, 100, 0)
    rgba[0, :, 3] = [255, 0, 128, 1]
    out = composite(rgba, (0, 50, 255))
    assert out.dtype == np.uint8 and out.shape == (1, 4, 3)
    fg, bg = np.array([200, 100, 0]), np.array([0, 50, 255])
    expected = [np.floor((fg * a + bg * (255 - a)) / 255 + 0.5) for a in (255, 0, 128, 1)]
    np.testing.assert_array_equal(out[0], np.array(expected, dtype=np.uint8))
    assert out[0, 0].tolist() == [200, 100, 0] and out[0, 1].tolist() == [0, 50, 255]


def test_composite_extremes_do_not_overflow() -> None:
    rgba = np.full((2, 2, 4), 255, np.uint8)
    rgba[0, 0, 3] = 127
    out = composite(rgba, (255, 255, 255))
    assert (out == 255).all()


@pytest.mark.parametrize(
    ("text", "rgb"),
    [
        ("#ff8000", (255, 128, 0)),
        ("FF8000", (255, 128, 0)),
        ("#f80", (255, 136, 0)),
        ("abc", (170, 187, 204)),
        ("  #000000 ", (0, 0, 0)),
    ],
)
def test_parse_hex_color(text: str, rgb: tuple[int, int, int]) -> None:
    assert parse_hex_color(text) == rgb


@pytest.mark.parametrize("text", ["", "#", "#12", "#1234", "#12345", "#1234567", "#gggggg", "0xffffff", "red", None])
def test_parse_hex_color_rejects(text) -> None:
    with pytest.raises(ValueError):
        parse_hex_color(text)


def test_subject_bbox_float_and_uint8() -> None:
    alpha = np.zeros((50, 80), np.float32)
    alpha[10:20, 30:45] = 1.0
    alpha[25, 60] = 0.5  # exactly at the threshold: included
    alpha[40, 5] = 0.49  # just under: excluded
    assert subject_bbox(alpha) == (30, 10, 31, 16)
    mask = (alpha * 255 + 0.5).astype(np.uint8)  # 0.5 → 128, 0.49 → 125
    assert subject_bbox(mask) == (30, 10, 31, 16)
    mask[40, 5] = 127
    assert subject_bbox(mask) == (30, 10, 31, 16)
    assert subject_bbox(alpha, threshold=0.45) == (5, 10, 56, 31)


def test_subject_bbox_no_subject() -> None:
    assert subject_bbox(np.zeros((10, 10), np.float32)) is None
    assert subject_bbox(np.full((10, 10), 0.3, np.float32)) is None
    assert subject_bbox(np.full((10, 10), 127, np.uint8)) is None


def test_subject_bbox_full_image() -> None:
    assert subject_bbox(np.ones((7, 9), np.float32)) == (0, 0, 9, 7)


@pytest.mark.parametrize(
    ("margin", "expected"),
    [
        (0, (40, 30, 20, 10)),
        (5, (35, 25, 30, 20)),
        ("5", (35, 25, 30, 20)),
        ("5px", (35, 25, 30, 20)),
        (4.6, (35, 25, 30, 20)),
        ("10%", (38, 28, 24, 14)),  # 10 % of the larger side (20) = 2 px
        ("25%", (35, 25, 30, 20)),
    ],
)
def test_expand_box(margin, expected) -> None:
    assert expand_box((40, 30, 20, 10), margin, 100, 100) == expected


def test_expand_box_clamps_to_image() -> None:
    assert expand_box((2, 3, 10, 10), 20, 30, 25) == (0, 0, 30, 25)
    assert expand_box((2, 3, 10, 10), "100%", 15, 50) == (0, 0, 15, 23)


@pytest.mark.parametrize("margin", ["abc", "-5", -5, "5 %%", "px", True, float("nan"), float("inf"), None])
def test_expand_box_rejects(margin) -> None:
    with pytest.raises(ValueError):
        expand_box((0, 0, 10, 10), margin, 100, 100)


def test_crop() -> None:
    arr = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)
    out = crop(arr, (2, 1, 3, 4))
    assert out.shape == (4, 3, 3) and out.flags.c_contiguous
    np.testing.assert_array_equal(out, arr[1:5, 2:5])
    np.testing.assert_array_equal(crop(arr[:, :, 0], (0, 0, 8, 6)), arr[:, :, 0])
    for bad in [(0, 0, 9, 6), (-1, 0, 2, 2), (0, 0, 0, 3), (7, 5, 2, 2)]:
        with pytest.raises(ValueError):
            crop(arr, bad)


def test_bbox_margin_crop_pipeline() -> None:
    alpha = np.zeros((100, 200), np.float32)
    alpha[40:60, 90:130] = 1.0
    box = expand_box(subject_bbox(alpha), "10%", 200, 100)
    assert box == (86, 36, 48, 28)
    assert crop(alpha, box).sum() == 20 * 40


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_fit_max_side_downscales_keeping_aspect(channels) -> None:
    shape = (1000, 2000) if channels is None else (1000, 2000, channels)
    arr = np.zeros(shape, np.uint8)
    out = fit_max_side(arr, 500)
    assert out.shape == ((250, 500) if channels is None else (250, 500, channels))
    assert out.dtype == np.uint8


def test_fit_max_side_uses_area_averaging() -> None:
    checker = (np.indices((64, 64)).sum(axis=0) % 2 * 255).astype(np.uint8)
    out = fit_max_side(checker, 32)
    assert out.shape == (32, 32)
    assert np.abs(out.astype(int) - 128).max() <= 1  # each 2×2 block averages to mid grey


def test_fit_max_side_never_upscales() -> None:
    arr = np.zeros((30, 40, 3), np.uint8)
    assert fit_max_side(arr, 40) is arr
    assert fit_max_side(arr, 4000) is arr


def test_fit_max_side_extreme_aspect_and_float() -> None:
    out = fit_max_side(np.ones((10, 20000), np.float32), 1000)
    assert out.shape == (1, 1000) and out.dtype == np.float32
    assert np.allclose(out, 1.0)
    out = fit_max_side(np.zeros((3000, 7, 4), np.uint8), 300)
    assert out.shape == (300, 1, 4)


def test_fit_max_side_rejects_zero() -> None:
    with pytest.raises(ValueError):
        fit_max_side(np.zeros((4, 4), np.uint8), 0)
