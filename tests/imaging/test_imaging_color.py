"""Colour management: embedded ICC profiles converted to sRGB on decode, outputs tagged, DPI carried.

Inputs are made with ``ImageCms`` from the real Display P3 profile of ``Squid.jpg`` and from Adobe RGB and
CMYK profiles written in ``tests/imaging/icc.py``; the RGB reference conversion is computed in float64
without LittleCMS.
"""

from __future__ import annotations

import logging
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from petcut.imaging import decode_image, encode_image
from petcut.imaging.color import OutputTags, save_options, srgb_profile, to_working_space
from tests.support import icc

LIMITS = {"max_bytes": 64 << 20, "max_pixels": 40_000_000}


def decode(data: bytes, color: str = "srgb"):
    return decode_image(data, **LIMITS, color=color)


def in_profile(rgb_srgb: np.ndarray, profile: bytes) -> np.ndarray:
    """An sRGB image converted into ``profile`` with ImageCms: what a camera or phone would store."""
    image = ImageCms.profileToProfile(Image.fromarray(rgb_srgb), icc.srgb_profile(), icc.profile_of(profile))
    return np.asarray(image)


def within_one_level(actual: np.ndarray, reference: np.ndarray) -> None:
    """Each 8-bit value within 1 level of the reference rounded to 8 bits."""
    diff = np.abs(actual.astype(np.float64) - np.rint(reference))
    assert diff.max() <= 1.0, f"max difference {diff.max():.2f} levels"


def embedded_profile(data: bytes) -> bytes | None:
    with Image.open(BytesIO(data)) as image:
        return image.info.get("icc_profile")


# --- RGB profiles → sRGB --------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_display_p3_input_is_converted_to_srgb(pets_dir: Path, fmt: str) -> None:
    p3 = icc.display_p3_profile(pets_dir)
    stored = in_profile(icc.pattern(), p3)
    params = {"quality": 100} if fmt != "PNG" else {}
    if fmt == "WEBP":
        params["lossless"] = True
    data = icc.embed(Image.fromarray(stored), fmt, p3, **params)
    with Image.open(BytesIO(data)) as image:
        pixels = np.asarray(image.convert("RGB"))  # what the file holds (JPEG: after its own loss)
    decoded = decode(data)
    within_one_level(decoded.rgb, icc.reference_to_srgb(pixels, p3, icc.srgb_decode))
    assert np.abs(decoded.rgb.astype(int) - pixels).max() > 20  # the profile really changed the numbers
    assert decoded.output_tags.icc_profile is None


def test_adobe_rgb_input_is_converted_to_srgb() -> None:
    adobe = icc.adobe_rgb_profile()
    stored = in_profile(icc.pattern(), adobe)
    data = icc.embed(Image.fromarray(stored), "PNG", adobe)
    decoded = decode(data)
    within_one_level(decoded.rgb, icc.reference_to_srgb(stored, adobe, icc.adobe_decode))
    assert np.abs(decoded.rgb.astype(int) - stored).max() > 20
    assert decoded.output_tags.icc_profile is None


def test_squid_photo_converts_like_the_reference(pets_dir: Path) -> None:
    data = (pets_dir / "Squid.jpg").read_bytes()
    with Image.open(BytesIO(data)) as image:
        stored = np.asarray(image.convert("RGB"))
    decoded = decode(data)
    within_one_level(decoded.rgb, icc.reference_to_srgb(stored, icc.display_p3_profile(pets_dir), icc.srgb_decode))
    diff = np.abs(decoded.rgb.astype(int) - stored)
    assert diff.max() >= 25 and np.percentile(diff, 99) >= 10  # the 32 / 15 levels


def test_rgba_with_profile_keeps_its_alpha(pets_dir: Path) -> None:
    p3 = icc.display_p3_profile(pets_dir)
    rgb = in_profile(icc.pattern(), p3)
    alpha = np.tile(np.arange(rgb.shape[1], dtype=np.uint8) * 2, (rgb.shape[0], 1))
    data = icc.embed(Image.fromarray(np.dstack([rgb, alpha])), "PNG", p3)
    decoded = decode(data)
    np.testing.assert_array_equal(decoded.alpha, alpha)
    within_one_level(decoded.rgb, icc.reference_to_srgb(rgb, p3, icc.srgb_decode))


def test_rgb_without_profile_or_with_srgb_profile_is_untouched() -> None:
    rgb = icc.pattern()
    for profile in (None, srgb_profile()):
        decoded = decode(icc.embed(Image.fromarray(rgb), "PNG", profile))
        np.testing.assert_array_equal(decoded.rgb, rgb)
        assert decoded.output_tags.icc_profile is None


def test_grey_with_an_rgb_profile_ignores_it() -> None:
    grey = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    # a grey image whose profile is an RGB one does not match: ignored, pixels as Pillow converts them
    decoded = decode(icc.embed(Image.fromarray(grey, "L"), "PNG", icc.adobe_rgb_profile()))
    np.testing.assert_array_equal(decoded.rgb[..., 0], grey)


@pytest.mark.parametrize("mode", ["L", "LA"])
def test_grey_with_a_gamma_22_profile_converts_to_srgb_grey(mode: str) -> None:
    grey = np.tile(np.arange(256, dtype=np.uint8), (8, 1))
    image = Image.fromarray(grey, "L")
    if mode == "LA":
        image = Image.merge("LA", (image, Image.fromarray(255 - grey, "L")))
    decoded = decode(icc.embed(image, "PNG", icc.grey_profile(2.2)))  # "Gray Gamma 2.2", as editors embed
    expected = icc.srgb_encode((grey / 255.0) ** (563 / 256)) * 255.0  # the curve as stored (u8.8) → sRGB
    for channel in range(3):
        within_one_level(decoded.rgb[..., channel], expected)
    if mode == "LA":
        np.testing.assert_array_equal(decoded.alpha, 255 - grey)


def test_palette_image_with_a_profile_is_converted(pets_dir: Path) -> None:
    p3 = icc.display_p3_profile(pets_dir)
    palette = Image.fromarray(in_profile(icc.pattern(), p3)).quantize(64)
    data = icc.embed(palette, "PNG", p3)
    rgb = np.asarray(palette.convert("RGB"))
    within_one_level(decode(data).rgb, icc.reference_to_srgb(rgb, p3, icc.srgb_decode))


# --- CMYK ---------------------------------------------------------------------------------------------
def cmyk_jpeg(profile: bytes | None) -> tuple[bytes, Image.Image]:
    rng = np.random.default_rng(5)
    cmyk = rng.integers(0, 256, (48, 64, 4), dtype=np.uint8)
    data = icc.embed(Image.fromarray(cmyk, "CMYK"), "JPEG", profile, quality=100)
    image = Image.open(BytesIO(data))
    image.load()
    return data, image


def test_cmyk_jpeg_with_profile_converts_through_it() -> None:
    profile = icc.cmyk_profile()
    data, image = cmyk_jpeg(profile)
    reference = ImageCms.profileToProfile(image, icc.profile_of(profile), icc.srgb_profile(), outputMode="RGB")
    for color in ("srgb", "preserve"):  # outputs are RGB: a CMYK profile cannot be kept, both convert
        decoded = decode(data, color)
        within_one_level(decoded.rgb, np.asarray(reference).astype(np.float64))
        assert decoded.output_tags.icc_profile is None
    naive = np.asarray(image.convert("RGB")).astype(int)
    assert np.abs(decode(data).rgb.astype(int) - naive).max() > 40


def test_cmyk_jpeg_without_profile_uses_the_naive_conversion() -> None:
    data, image = cmyk_jpeg(None)
    np.testing.assert_array_equal(decode(data).rgb, np.asarray(image.convert("RGB")))


# --- unusable profiles: a warning, never a failure -------------------------------------------------------
@pytest.mark.parametrize(
    "profile",
    [
        b"this is not an ICC profile at all" * 20,
        b"\x00\x00\x02\x00lcms\x02\x10\x00\x00mntrRGB XYZ " + b"\xff" * 600,  # a header, then garbage
    ],
    ids=["garbage", "truncated"],
)
def test_garbage_profile_is_ignored_with_a_warning(profile: bytes, caplog: pytest.LogCaptureFixture) -> None:
    rgb = icc.pattern()
    data = icc.embed(Image.fromarray(rgb), "PNG", profile)
    with caplog.at_level(logging.WARNING, logger="petcut.imaging.color"):
        decoded = decode(data)
    np.testing.assert_array_equal(decoded.rgb, rgb)
    assert decoded.output_tags.icc_profile is None
    assert any("ICC profile" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_profile_of_another_colour_space_is_ignored(caplog: pytest.LogCaptureFixture) -> None:
    rgb = icc.pattern()
    data = icc.embed(Image.fromarray(rgb), "JPEG", icc.cmyk_profile(), quality=95)
    with Image.open(BytesIO(data)) as image:
        stored = np.asarray(image.convert("RGB"))
    with caplog.at_level(logging.WARNING, logger="petcut.imaging.color"):
        decoded = decode(data)
    np.testing.assert_array_equal(decoded.rgb, stored)
    assert any("CMYK" in r.getMessage() for r in caplog.records)


# --- preserve ------------------------------------------------------------------------------------------
def test_preserve_keeps_pixels_and_the_source_profile(pets_dir: Path) -> None:
    p3 = icc.display_p3_profile(pets_dir)
    rgb = in_profile(icc.pattern(), p3)
    data = icc.embed(Image.fromarray(rgb), "PNG", p3)
    decoded = decode(data, "preserve")
    np.testing.assert_array_equal(decoded.rgb, rgb)
    assert decoded.output_tags.icc_profile == p3
    for fmt in ("png", "webp", "jpeg"):
        assert embedded_profile(encode_image(decoded.rgb, fmt, tags=decoded.output_tags)) == p3, fmt


def test_unknown_color_mode_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="srgb"):
        to_working_space(Image.new("RGB", (2, 2)), "displayp3")


# --- outputs tagged sRGB ---------------------------------------------------------------------------------
@pytest.mark.parametrize("channels", [3, 4])
def test_every_output_format_is_tagged_srgb(channels: int) -> None:
    image = np.dstack([icc.pattern()] + ([np.full((96, 96), 200, np.uint8)] if channels == 4 else []))
    png = encode_image(image, "png")
    with Image.open(BytesIO(png)) as decoded:
        assert decoded.info.get("srgb") == 0  # the sRGB chunk, perceptual intent
        assert "icc_profile" not in decoded.info  # iCCP and sRGB must not both be present
        assert decoded.info.get("gamma") == pytest.approx(0.45455)
    for fmt in ("webp", "jpeg"):
        profile = embedded_profile(encode_image(image, fmt))
        assert profile == srgb_profile(), fmt
        assert "sRGB" in ImageCms.getProfileDescription(icc.profile_of(profile))


def test_png_chunks_come_before_the_pixels() -> None:
    png = encode_image(icc.pattern(), "png")
    assert png.index(b"sRGB") < png.index(b"IDAT") and png.index(b"gAMA") < png.index(b"IDAT")


def test_masks_carry_no_colour_profile() -> None:
    mask = np.tile(np.arange(64, dtype=np.uint8) * 4, (32, 1))
    for fmt in ("png", "webp", "jpeg"):
        data = encode_image(mask, fmt, tags=OutputTags(b"ignored", (300.0, 300.0)))
        with Image.open(BytesIO(data)) as image:
            assert "icc_profile" not in image.info and "srgb" not in image.info, fmt


# --- resolution and orientation ------------------------------------------------------------------------
def test_dpi_is_carried_to_every_format() -> None:
    data = icc.embed(Image.fromarray(icc.pattern()), "JPEG", None, dpi=(300, 300), quality=95)
    tags = decode(data).output_tags
    assert tags.dpi == (300.0, 300.0)
    for fmt in ("png", "jpeg"):
        with Image.open(BytesIO(encode_image(icc.pattern(), fmt, tags=tags))) as image:
            assert image.info["dpi"] == pytest.approx((300, 300), abs=0.05), fmt
    with Image.open(BytesIO(encode_image(icc.pattern(), "webp", tags=tags))) as image:
        exif = image.getexif()
        assert (float(exif[0x011A]), float(exif[0x011B]), exif[0x0128]) == (300.0, 300.0, 2)
    assert tags.scaled(0.5).dpi == (150.0, 150.0)


def test_no_dpi_in_the_source_means_none_in_the_outputs() -> None:
    data = icc.embed(Image.fromarray(icc.pattern()), "PNG", None)
    assert decode(data).output_tags.dpi is None
    assert "dpi" not in save_options("png", "RGB", decode(data).output_tags)


def test_orientation_is_applied_once_and_the_dpi_follows_the_rotation() -> None:
    rgb = icc.pattern()[:, :64]  # 96 tall, 64 wide as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90° clockwise to view
    data = icc.embed(Image.fromarray(rgb), "JPEG", None, exif=exif.tobytes(), dpi=(300, 150), quality=95)
    decoded = decode(data)
    assert (decoded.width, decoded.height, decoded.orientation) == (96, 64, 6)
    assert decoded.output_tags.dpi == (150.0, 300.0)
    for fmt in ("png", "webp", "jpeg"):
        out = encode_image(decoded.rgb, fmt, tags=decoded.output_tags)
        with Image.open(BytesIO(out)) as image:
            assert image.size == (96, 64), fmt
            assert image.getexif().get(0x0112, 1) == 1, fmt  # no orientation for a viewer to apply again
        assert (decode(out).width, decode(out).height) == (96, 64)
