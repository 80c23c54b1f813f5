"""encode_image / media_type: round trips through decode_image, alpha kept or composited."""

from __future__ import annotations

import struct
import zlib
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from petcut.imaging import decode_image, encode_image, media_type


def decode(data: bytes):
    return decode_image(data, max_bytes=50 << 20, max_pixels=24_000_000)


def cutout(height: int = 48, width: int = 64) -> np.ndarray:
    """RGBA: flat colour blocks, transparent left third, half-transparent middle third."""
    rgba = np.empty((height, width, 4), np.uint8)
    rgba[:, :, :3] = (30, 160, 90)
    rgba[: height // 2, :, :3] = (250, 120, 10)
    third = width // 3
    rgba[:, :, 3] = 255
    rgba[:, :third, 3] = 0
    rgba[:, third : 2 * third, 3] = 128
    return rgba


def png_idat(data: bytes) -> bytes:
    pos, idat = 8, b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        if data[pos + 4 : pos + 8] == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return idat


def test_png_round_trip_rgba_exact() -> None:
    rgba = np.random.default_rng(0).integers(0, 256, (33, 47, 4), dtype=np.uint8)
    data = encode_image(rgba, "png")
    assert data.startswith(b"\x89PNG")
    img = decode(data)
    np.testing.assert_array_equal(img.rgb, rgba[:, :, :3])
    np.testing.assert_array_equal(img.alpha, rgba[:, :, 3])


def test_png_round_trip_rgb_and_mask() -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    img = decode(encode_image(rgb, "PNG"))
    assert img.alpha is None
    np.testing.assert_array_equal(img.rgb, rgb)
    with Image.open(BytesIO(encode_image(mask, "png"))) as im:
        assert im.mode == "L"
        np.testing.assert_array_equal(np.asarray(im), mask)


def test_png_uses_fast_compression() -> None:
    data = encode_image(cutout(), "png")
    idat = png_idat(data)
    cmf, flg = idat[0], idat[1]
    assert cmf & 0x0F == 8 and (cmf * 256 + flg) % 31 == 0  # a zlib stream
    assert flg >> 6 == 0  # FLEVEL 0: "fastest" (compress_level 1), not the default 6
    assert zlib.decompress(idat)


def test_webp_keeps_alpha() -> None:
    rgba = cutout()
    data = encode_image(rgba, "webp", quality=90)
    assert data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    img = decode(data)
    assert img.format == "webp" and img.alpha is not None
    assert np.abs(img.alpha.astype(int) - rgba[:, :, 3]).max() <= 2
    opaque = rgba[:, :, 3] == 255
    assert np.abs(img.rgb[opaque].astype(int) - rgba[:, :, :3][opaque]).mean() < 4


def test_webp_quality_changes_size() -> None:
    noisy = np.random.default_rng(2).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_image(noisy, "webp", quality=20)) < len(encode_image(noisy, "webp", quality=95))


def test_webp_mask() -> None:
    mask = np.zeros((16, 16), np.uint8)
    mask[4:12, 4:12] = 255
    img = decode(encode_image(mask, "webp", quality=100))
    assert img.rgb[8, 8].min() > 240 and img.rgb[0, 0].max() < 15


@pytest.mark.parametrize("fmt", ["jpeg", "jpg", "JPEG"])
def test_jpeg_composites_over_bg_color(fmt: str) -> None:
    rgba = cutout()
    bg = (0, 0, 255)
    data = encode_image(rgba, fmt, bg_color=bg, quality=95)
    assert data[:3] == b"\xff\xd8\xff"
    img = decode(data)
    assert img.format == "jpeg" and img.alpha is None
    h, w = rgba.shape[:2]
    y = 3 * h // 4  # lower half: colour (30, 160, 90)
    transparent, half, opaque = img.rgb[y, w // 6], img.rgb[y, w // 2], img.rgb[y, 5 * w // 6]
    assert np.abs(transparent.astype(int) - bg).max() <= 8
    assert np.abs(opaque.astype(int) - (30, 160, 90)).max() <= 8
    blended = (np.array([30, 160, 90]) * 128 + np.array(bg) * 127) / 255
    assert np.abs(half.astype(int) - blended).max() <= 8


def test_jpeg_default_background_is_white() -> None:
    img = decode(encode_image(cutout(), "jpeg"))
    assert img.rgb[40, 5].min() >= 247


def test_jpeg_quality_changes_size() -> None:
    noisy = np.random.default_rng(3).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    assert len(encode_image(noisy, "jpeg", quality=30)) < len(encode_image(noisy, "jpeg", quality=95))


def test_media_type() -> None:
    assert media_type("png") == "image/png"
    assert media_type("webp") == "image/webp"
    assert media_type("jpeg") == "image/jpeg"
    assert media_type("JPG") == "image/jpeg"
    with pytest.raises(ValueError):
        media_type("gif")


@pytest.mark.parametrize("fmt", ["gif", "bmp", "", "png2", "image/png"])
def test_invalid_format(fmt: str) -> None:
    with pytest.raises(ValueError):
        encode_image(cutout(), fmt)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((4, 4, 4), np.float32),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
    ],
)
def test_invalid_image(image: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_image(image, "png")


@pytest.mark.parametrize("quality", [0, 101, True, 50.5])
def test_invalid_quality(quality) -> None:
    with pytest.raises(ValueError):
        encode_image(cutout(), "jpeg", quality=quality)


def test_invalid_bg_color() -> None:
    with pytest.raises(ValueError):
        encode_image(cutout(), "jpeg", bg_color=(0, 0, 256))
