"""decode_image: one test per accepted format, per colour mode, EXIF orientation, extreme sizes."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
import pillow_heif
import pytest
from PIL import Image

from petcut.imaging import ACCEPTED_FORMATS, DecodedImage, decode_image

LIMITS = {"max_bytes": 50 << 20, "max_pixels": 24_000_000}


def decode(data: bytes) -> DecodedImage:
    return decode_image(data, **LIMITS)


def save(im: Image.Image, fmt: str, **params) -> bytes:
    buf = BytesIO()
    im.save(buf, format=fmt, **params)
    return buf.getvalue()


def quadrants(width: int = 64, height: int = 48) -> np.ndarray:
    """Four flat colour quadrants: red, green / blue, white (easy to check after lossy codecs)."""
    arr = np.empty((height, width, 3), dtype=np.uint8)
    h2, w2 = height // 2, width // 2
    arr[:h2, :w2] = (255, 0, 0)
    arr[:h2, w2:] = (0, 255, 0)
    arr[h2:, :w2] = (0, 0, 255)
    arr[h2:, w2:] = (255, 255, 255)
    return arr


def assert_quadrants(rgb: np.ndarray, tol: int) -> None:
    h, w = rgb.shape[:2]
    centres = {
        (h // 4, w // 4): (255, 0, 0),
        (h // 4, 3 * w // 4): (0, 255, 0),
        (3 * h // 4, w // 4): (0, 0, 255),
        (3 * h // 4, 3 * w // 4): (255, 255, 255),
    }
    for (y, x), colour in centres.items():
        assert np.abs(rgb[y, x].astype(int) - colour).max() <= tol, ((y, x), rgb[y, x], colour)


def assert_well_formed(img: DecodedImage) -> None:
    assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3 and img.rgb.shape[2] == 3
    assert img.rgb.flags.c_contiguous and img.rgb.flags.writeable
    if img.alpha is not None:
        assert img.alpha.dtype == np.uint8 and img.alpha.shape == img.rgb.shape[:2]
        assert img.alpha.flags.c_contiguous
    assert img.format in ACCEPTED_FORMATS


# --- formats -----------------------------------------------------------------------------------------


def test_jpeg_real_photo(pets_dir: Path) -> None:
    data = (pets_dir / "Squid.jpg").read_bytes()
    img = decode_image(data, **LIMITS, color="preserve")  # its Display P3 pixels as stored (test_color.py: → sRGB)
    assert_well_formed(img)
    assert (img.format, img.width, img.height, img.frames, img.orientation) == ("jpeg", 480, 640, 1, 1)
    assert img.alpha is None
    with Image.open(BytesIO(data)) as ref:
        np.testing.assert_array_equal(img.rgb, np.asarray(ref.convert("RGB")))


def test_mpo_reported_as_jpeg_first_frame(mpo_pet: Path) -> None:
    data = mpo_pet.read_bytes()
    with Image.open(BytesIO(data)) as ref:
        assert ref.format == "MPO"
        n_frames = ref.n_frames
        ref.seek(0)
        first = np.asarray(ref.convert("RGB"))
    img = decode(data)
    assert_well_formed(img)
    assert img.format == "jpeg"
    assert img.frames == n_frames >= 2
    np.testing.assert_array_equal(img.rgb, first)


def test_png_rgb_exact() -> None:
    arr = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    img = decode(save(Image.fromarray(arr), "PNG"))
    assert_well_formed(img)
    assert img.format == "png" and img.alpha is None
    np.testing.assert_array_equal(img.rgb, arr)


def test_png_rgba_keeps_alpha() -> None:
    arr = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    img = decode(save(Image.fromarray(arr), "PNG"))
    assert_well_formed(img)
    np.testing.assert_array_equal(img.rgb, arr[:, :, :3])
    np.testing.assert_array_equal(img.alpha, arr[:, :, 3])


def test_webp_lossy() -> None:
    img = decode(save(Image.fromarray(quadrants()), "WEBP", quality=95))
    assert_well_formed(img)
    assert img.format == "webp" and img.alpha is None and img.frames == 1
    assert_quadrants(img.rgb, tol=12)


def test_webp_lossless_with_alpha() -> None:
    arr = np.random.default_rng(2).integers(0, 256, (16, 24, 4), dtype=np.uint8)
    arr[:, :, 3] = 255
    arr[:8, :12, 3] = 0
    arr[8:, 12:, 3] = 77
    img = decode(save(Image.fromarray(arr), "WEBP", lossless=True, exact=True))
    np.testing.assert_array_equal(img.alpha, arr[:, :, 3])
    np.testing.assert_array_equal(img.rgb, arr[:, :, :3])


def solid_frames(colours: list[tuple[int, int, int]], size: tuple[int, int] = (24, 16)) -> list[Image.Image]:
    return [Image.new("RGB", size, colour) for colour in colours]


def test_webp_animated_first_frame() -> None:
    frames = solid_frames([(255, 0, 0), (0, 255, 0), (0, 0, 255)])
    data = save(frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    img = decode(data)
    assert img.format == "webp" and img.frames == 3
    assert (img.rgb == (255, 0, 0)).all()


def test_gif_animated_first_frame() -> None:
    frames = solid_frames([(200, 10, 30), (10, 200, 30), (10, 30, 200)])
    frames[0].paste((250, 250, 0), (2, 3, 8, 7))  # a marker so the first frame is not just one colour
    data = save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    img = decode(data)
    assert_well_formed(img)
    assert img.format == "gif" and img.frames == 3
    expected = np.asarray(frames[0])
    np.testing.assert_array_equal(img.rgb, expected)


def test_gif_transparency_becomes_alpha() -> None:
    im = Image.new("P", (10, 10), 1)
    im.putpalette([0, 0, 0, 255, 0, 0] + [0, 0, 0] * 254)
    im.paste(0, (0, 0, 5, 10))
    img = decode(save(im, "GIF", transparency=0))
    assert img.alpha is not None
    assert (img.alpha[:, :5] == 0).all() and (img.alpha[:, 5:] == 255).all()
    assert (img.rgb[:, 5:] == (255, 0, 0)).all()


def test_heic() -> None:
    buf = BytesIO()
    pillow_heif.from_pillow(Image.fromarray(quadrants())).save(buf, quality=95)
    img = decode(buf.getvalue())
    assert_well_formed(img)
    assert (img.format, img.width, img.height, img.alpha) == ("heif", 64, 48, None)
    assert_quadrants(img.rgb, tol=16)


def test_heic_with_alpha() -> None:
    rgba = np.dstack([quadrants(), np.full((48, 64), 255, np.uint8)])
    rgba[24:, 32:, 3] = 0
    buf = BytesIO()
    pillow_heif.from_pillow(Image.fromarray(rgba)).save(buf, quality=95)
    img = decode(buf.getvalue())
    assert img.alpha is not None
    assert img.alpha[36, 48] <= 8 and img.alpha[12, 16] >= 247


def test_heic_orientation_applied_once() -> None:
    """libheif rotates HEIC itself; decode must report the orientation and not rotate a second time."""
    arr = np.full((32, 64, 3), 128, np.uint8)
    arr[:16, :16] = (255, 0, 0)  # top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    buf = BytesIO()
    pillow_heif.from_pillow(Image.fromarray(arr)).save(buf, quality=95, exif=exif.tobytes())
    img = decode(buf.getvalue())
    assert (img.width, img.height, img.orientation) == (32, 64, 6)
    assert img.rgb[4, 27, 0] > 200 and img.rgb[4, 27, 1] < 60  # marker now top-right
    assert abs(int(img.rgb[60, 4, 0]) - 128) < 20


def test_avif() -> None:
    img = decode(save(Image.fromarray(quadrants()), "AVIF", quality=95))
    assert_well_formed(img)
    assert img.format == "avif"
    assert_quadrants(img.rgb, tol=16)


def test_tiff_rgb_exact() -> None:
    arr = np.random.default_rng(3).integers(0, 256, (12, 9, 3), dtype=np.uint8)
    img = decode(save(Image.fromarray(arr), "TIFF", compression="tiff_lzw"))
    assert_well_formed(img)
    assert img.format == "tiff" and img.alpha is None
    np.testing.assert_array_equal(img.rgb, arr)


def test_tiff_multipage_first_page() -> None:
    pages = solid_frames([(1, 2, 3), (100, 100, 100)])
    img = decode(save(pages[0], "TIFF", save_all=True, append_images=pages[1:]))
    assert img.frames == 2
    assert (img.rgb == (1, 2, 3)).all()


# --- colour modes ------------------------------------------------------------------------------------

CMYK_PATCHES = [
    # (C, M, Y, K) and the RGB expected from (255 − C)(255 − K)/255 per channel
    ((0, 0, 0, 0), (255, 255, 255)),
    ((0, 255, 255, 0), (255, 0, 0)),
    ((255, 0, 255, 0), (0, 255, 0)),
    ((55, 155, 205, 0), (200, 100, 50)),
    ((0, 0, 0, 128), (127, 127, 127)),
    ((50, 100, 150, 100), (125, 94, 64)),
]


def test_cmyk_jpeg_adobe_inverted() -> None:
    """Pillow writes CMYK JPEGs the way Photoshop does (Adobe APP14, inverted samples)."""
    im = Image.new("CMYK", (16 * len(CMYK_PATCHES), 16))
    for i, (cmyk, _) in enumerate(CMYK_PATCHES):
        im.paste(cmyk, (16 * i, 0, 16 * i + 16, 16))
    data = save(im, "JPEG", quality=98)
    with Image.open(BytesIO(data)) as check:
        assert check.mode == "CMYK" and "adobe" in check.info
    img = decode(data)
    assert_well_formed(img)
    assert img.format == "jpeg"
    for i, (_, rgb) in enumerate(CMYK_PATCHES):
        got = img.rgb[8, 16 * i + 8].astype(int)
        assert np.abs(got - rgb).max() <= 6, (i, got, rgb)


def test_16bit_greyscale_png_is_scaled_not_clipped() -> None:
    values = np.array([[0, 255, 256, 32768, 40000, 65535]], dtype=np.uint16)
    data = save(Image.fromarray(values), "PNG")
    with Image.open(BytesIO(data)) as check:
        assert check.mode.startswith("I")
    img = decode(data)
    assert_well_formed(img)
    expected = np.array([0, 0, 1, 128, 156, 255], dtype=np.uint8)
    for c in range(3):
        np.testing.assert_array_equal(img.rgb[0, :, c], expected)


def test_48bit_rgb_png_is_scaled() -> None:
    bgr = np.array([[[0, 32768, 65535], [65535, 256, 0]]], dtype=np.uint16)  # cv2 writes BGR order
    ok, buf = cv2.imencode(".png", bgr)
    assert ok
    img = decode(buf.tobytes())
    np.testing.assert_array_equal(img.rgb[0], [[255, 128, 0], [0, 1, 255]])


def test_16bit_rgb_tiff_is_scaled() -> None:
    bgr = np.array([[[0, 32768, 65535]]], dtype=np.uint16)
    ok, buf = cv2.imencode(".tiff", bgr)
    assert ok
    img = decode(buf.tobytes())
    assert img.format == "tiff"
    np.testing.assert_array_equal(img.rgb[0, 0], [255, 128, 0])


def test_float_tiff_is_scaled() -> None:
    values = np.array([[0.0, 0.5, 1.0]], dtype=np.float32)
    img = decode(save(Image.fromarray(values, mode="F"), "TIFF"))
    np.testing.assert_array_equal(img.rgb[0, :, 0], [0, 128, 255])


def test_palette_png_with_transparency() -> None:
    im = Image.new("P", (8, 4), 0)
    im.putpalette([10, 20, 30, 200, 100, 50, 0, 255, 0] + [0, 0, 0] * 253)
    im.paste(1, (4, 0, 8, 4))
    im.paste(2, (0, 2, 2, 4))
    data = save(im, "PNG", transparency=bytes([255, 0, 128]))  # per-entry alpha (tRNS)
    img = decode(data)
    assert_well_formed(img)
    assert img.alpha is not None
    assert (img.alpha[:2, :4] == 255).all()
    assert (img.alpha[:, 4:] == 0).all()
    assert (img.alpha[2:, :2] == 128).all()
    assert (img.rgb[0, 0] == (10, 20, 30)).all()
    assert (img.rgb[3, 0] == (0, 255, 0)).all()


def test_palette_png_without_transparency_has_no_alpha() -> None:
    im = Image.new("P", (4, 4), 1)
    im.putpalette([0, 0, 0, 9, 99, 199] + [0, 0, 0] * 254)
    img = decode(save(im, "PNG"))
    assert img.alpha is None
    assert (img.rgb == (9, 99, 199)).all()


def test_la_png() -> None:
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    alpha = np.flipud(grey)
    im = Image.merge("LA", [Image.fromarray(grey), Image.fromarray(alpha)])
    img = decode(save(im, "PNG"))
    assert_well_formed(img)
    for c in range(3):
        np.testing.assert_array_equal(img.rgb[:, :, c], grey)
    np.testing.assert_array_equal(img.alpha, alpha)


def test_greyscale_png() -> None:
    grey = np.random.default_rng(4).integers(0, 256, (9, 11), dtype=np.uint8)
    img = decode(save(Image.fromarray(grey), "PNG"))
    assert_well_formed(img)
    assert img.alpha is None
    for c in range(3):
        np.testing.assert_array_equal(img.rgb[:, :, c], grey)


def test_greyscale_png_with_colour_key_transparency() -> None:
    grey = np.full((4, 4), 50, np.uint8)
    grey[0, 0] = 7
    img = decode(save(Image.fromarray(grey), "PNG", transparency=7))
    assert img.alpha is not None
    assert img.alpha[0, 0] == 0 and (img.alpha.ravel()[1:] == 255).all()


def test_bilevel_png() -> None:
    bits = np.zeros((6, 6), dtype=bool)
    bits[:, 3:] = True
    img = decode(save(Image.fromarray(bits), "PNG"))
    assert (img.rgb[:, :3] == 0).all() and (img.rgb[:, 3:] == 255).all()


# --- EXIF orientation --------------------------------------------------------------------------------

# What a viewer does to the stored pixels for each EXIF orientation value (independent of Pillow).
ORIENT = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.transpose(1, 0, 2),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: np.rot90(a, 2).transpose(1, 0, 2),
    8: lambda a: np.rot90(a, 1),
}


@pytest.mark.parametrize("orientation", sorted(ORIENT))
def test_exif_orientation_applied(orientation: int) -> None:
    stored = np.full((32, 64, 3), 128, np.uint8)  # landscape as stored
    stored[:16, :16] = (255, 0, 0)  # marker block, top-left as stored
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = save(Image.fromarray(stored), "JPEG", quality=95, exif=exif.tobytes())

    img = decode(data)
    expected = ORIENT[orientation](stored)
    assert img.orientation == orientation
    assert (img.height, img.width) == expected.shape[:2]
    assert np.abs(img.rgb.astype(int) - expected).mean() < 3
    marker = np.argwhere((img.rgb[:, :, 0] > 200) & (img.rgb[:, :, 1] < 60))
    exp_marker = np.argwhere(expected[:, :, 1] == 0)
    assert np.abs(marker.mean(axis=0) - exp_marker.mean(axis=0)).max() < 1.5


# --- sizes -------------------------------------------------------------------------------------------


def test_one_pixel() -> None:
    img = decode(save(Image.new("RGB", (1, 1), (3, 4, 5)), "PNG"))
    assert (img.width, img.height) == (1, 1)
    assert img.rgb.tolist() == [[[3, 4, 5]]]


def test_20000_by_10() -> None:
    arr = np.zeros((10, 20000, 3), np.uint8)
    arr[:, -1] = (9, 8, 7)
    img = decode(save(Image.fromarray(arr), "PNG", compress_level=1))
    assert (img.width, img.height) == (20000, 10)
    assert img.rgb[5, -1].tolist() == [9, 8, 7] and img.rgb[5, 0].tolist() == [0, 0, 0]
