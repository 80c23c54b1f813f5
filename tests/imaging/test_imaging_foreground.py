"""Foreground colour estimation on a synthetic image whose true foreground colour is known."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from petcut.imaging import estimate_foreground

RED = np.array([220, 30, 30], np.float32)
BLUE = np.array([20, 40, 230], np.float32)


def red_disk_on_blue(size: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """I = α·red + (1 − α)·blue: α = 1 inside a disk, a soft 20 px ramp, 0 outside."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    radius = np.hypot(yy - size / 2, xx - size / 2)
    alpha = np.clip((size * 0.35 - radius) / 20.0, 0.0, 1.0).astype(np.float32)
    image = alpha[:, :, None] * RED + (1.0 - alpha[:, :, None]) * BLUE
    return (image + 0.5).astype(np.uint8), alpha


def distance_to_red(rgb: np.ndarray, where: np.ndarray) -> float:
    return float(np.linalg.norm(rgb[where].astype(np.float32) - RED, axis=1).mean())


def naive_blur_fusion(image: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A direct transcription of Forte & Pitié's reference code, float32, all channels at once."""

    def step(f, b, a, r):
        blurred_a = cv2.blur(a, (r, r))[:, :, None]
        f_hat = cv2.blur(f * a[:, :, None], (r, r)) / (blurred_a + 1e-5)
        b_hat = cv2.blur(b * (1 - a[:, :, None]), (r, r)) / ((1 - blurred_a) + 1e-5)
        a3 = a[:, :, None]
        f_new = f_hat + a3 * (image - a3 * f_hat - (1 - a3) * b_hat)
        return np.clip(f_new, 0, 1), b_hat

    f, b_hat = step(image, image, alpha, 90)
    return step(f, b_hat, alpha, 6)[0]


def test_blur_fusion_recovers_foreground_colour_in_soft_edge() -> None:
    rgb, alpha = red_disk_on_blue()
    out = estimate_foreground(rgb, alpha)
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    edge = (alpha > 0.1) & (alpha < 0.9)
    assert edge.sum() > 500
    before, after = distance_to_red(rgb, edge), distance_to_red(out, edge)
    assert after < 0.25 * before, (before, after)
    # fully opaque pixels keep their colour
    inside = alpha == 1.0
    assert np.abs(out[inside].astype(int) - rgb[inside]).max() <= 1


def test_blur_fusion_matches_reference_formulation() -> None:
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (120, 150, 3), dtype=np.uint8)
    alpha = cv2.GaussianBlur((rng.random((120, 150)) > 0.5).astype(np.float32), (0, 0), 5)
    expected = (naive_blur_fusion(rgb.astype(np.float32) / 255, alpha) * 255 + 0.5).astype(np.uint8)
    out = estimate_foreground(rgb, alpha)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_blur_fusion_accepts_uint8_alpha() -> None:
    rgb, alpha = red_disk_on_blue(80)
    from_float = estimate_foreground(rgb, alpha)
    from_uint8 = estimate_foreground(rgb, (alpha * 255 + 0.5).astype(np.uint8))
    visible = alpha > 0  # colours under alpha 0 are invisible and may differ
    assert np.abs(from_float[visible].astype(int) - from_uint8[visible]).max() <= 2


def test_blur_fusion_is_a_fixed_number_of_float32_box_blurs(monkeypatch: pytest.MonkeyPatch) -> None:
    """What makes it fast (bench/foreground.py times it): box filters, whose cost does not grow with the
    radius, on one float32 plane at a time, two passes of seven blurs whatever the image."""
    blurs: list[tuple[np.dtype, tuple[int, ...], tuple[int, int]]] = []
    real_blur = cv2.blur

    def spy(src: np.ndarray, ksize: tuple[int, int], *args, **kwargs) -> np.ndarray:
        blurs.append((src.dtype, src.shape, ksize))
        return real_blur(src, ksize, *args, **kwargs)

    monkeypatch.setattr(cv2, "blur", spy)
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (115, 100, 3), dtype=np.uint8)
    alpha = rng.random((115, 100), dtype=np.float32)  # soft everywhere: the whole image is computed
    estimate_foreground(rgb, alpha)
    assert len(blurs) == 14
    assert {(dtype, shape) for dtype, shape, _ in blurs} == {(np.dtype(np.float32), (115, 100))}
    assert sorted({ksize for _, _, ksize in blurs}) == [(6, 6), (90, 90)]


def test_none_returns_input_unchanged() -> None:
    rgb, alpha = red_disk_on_blue(40)
    assert estimate_foreground(rgb, alpha, method="none") is rgb


def test_pymatting_improves_soft_edge_too() -> None:
    pytest.importorskip("pymatting")
    rgb, alpha = red_disk_on_blue(64)
    out = estimate_foreground(rgb, alpha, method="pymatting")
    assert out.dtype == np.uint8 and out.shape == rgb.shape
    edge = (alpha > 0.1) & (alpha < 0.9)
    assert distance_to_red(out, edge) < 0.5 * distance_to_red(rgb, edge)


def test_unknown_method() -> None:
    rgb, alpha = red_disk_on_blue(16)
    with pytest.raises(ValueError, match="blur_fusion"):
        estimate_foreground(rgb, alpha, method="magic")


@pytest.mark.parametrize(
    ("rgb", "alpha"),
    [
        (np.zeros((8, 8, 3), np.uint8), np.zeros((8, 9), np.float32)),
        (np.zeros((8, 8, 3), np.float32), np.zeros((8, 8), np.float32)),
        (np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.float32)),
    ],
)
def test_bad_inputs(rgb: np.ndarray, alpha: np.ndarray) -> None:
    with pytest.raises(ValueError):
        estimate_foreground(rgb, alpha)


@pytest.mark.parametrize(("centre", "radii"), [((60, 70), (20, 30)), ((150, 200), (140, 190)), ((290, 10), (15, 15))])
def test_blur_fusion_on_the_soft_region_equals_the_whole_image(centre, radii) -> None:
    """Only the soft pixels' bounding box (plus the blurs' reach) is computed; visible pixels are unchanged."""
    from petcut.imaging.foreground import _blur_fusion_region

    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    yy, xx = np.mgrid[0:300, 0:400]
    ellipse = ((yy - centre[0]) / radii[0]) ** 2 + ((xx - centre[1]) / radii[1]) ** 2
    alpha = np.clip((1.1 - ellipse) * 6, 0, 1).astype(np.float32)
    visible = alpha > 0
    assert ((alpha > 0) & (alpha < 1)).sum() > 50
    np.testing.assert_array_equal(estimate_foreground(rgb, alpha)[visible], _blur_fusion_region(rgb, alpha)[visible])


def test_blur_fusion_without_soft_pixels_keeps_the_input() -> None:
    rgb, alpha = red_disk_on_blue(50)
    hard = (alpha >= 0.5).astype(np.float32)
    np.testing.assert_array_equal(estimate_foreground(rgb, hard), rgb)
