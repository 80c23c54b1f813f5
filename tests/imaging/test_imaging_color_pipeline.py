"""Colour management through the service's pipeline: converted pixels, tagged outputs (cut-out, mask,
every effect, every format), DPI scaled with ``max_side``, the colour setting in the cache keys."""

from __future__ import annotations

import asyncio
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from petcut import effects
from petcut.cache import MemoryCache, cache_key
from petcut.config import Settings
from petcut.imaging.color import srgb_profile
from petcut.pipeline import Pipeline, RemoveOptions
from tests.support import icc
from tests.support.fakes import EllipseModel, ThreadExecutor

WIDTH, HEIGHT = 160, 120


def p3_photo(pets_dir: Path, dpi: tuple[int, int] | None = (300, 300)) -> tuple[bytes, np.ndarray, bytes]:
    """A Display P3 JPEG made with ImageCms (the real iPhone profile): bytes, stored pixels, profile."""
    p3 = icc.display_p3_profile(pets_dir)
    srgb = np.asarray(Image.fromarray(icc.pattern(WIDTH)).resize((WIDTH, HEIGHT)))
    stored = ImageCms.profileToProfile(Image.fromarray(srgb), icc.srgb_profile(), icc.profile_of(p3))
    data = icc.embed(stored, "JPEG", p3, quality=100, **({"dpi": dpi} if dpi else {}))
    with Image.open(BytesIO(data)) as image:
        return data, np.asarray(image.convert("RGB")), p3


def make(cache: MemoryCache | None = None, **settings: object) -> Pipeline:
    values = {"mode": "fast", "foreground": "none", **settings}
    return Pipeline(Settings(**values), EllipseModel(), ThreadExecutor(), cache or MemoryCache(64 << 20))


def opened(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def assert_srgb_tagged(data: bytes) -> None:
    image = opened(data)
    if image.format == "PNG":
        assert image.info.get("srgb") == 0 and "icc_profile" not in image.info
    else:
        assert image.info.get("icc_profile") == srgb_profile(), image.format


def centre(array: np.ndarray) -> np.ndarray:
    """The middle of the ellipse (alpha 1): the cut-out's colour is the photo's there."""
    h, w = array.shape[:2]
    return array[h // 2 - h // 8 : h // 2 + h // 8, w // 2 - w // 8 : w // 2 + w // 8, :3]


def test_cutout_pixels_are_srgb_and_every_format_is_tagged(pets_dir: Path) -> None:
    data, stored, p3 = p3_photo(pets_dir)
    pipeline = make()
    reference = icc.reference_to_srgb(stored, p3, icc.srgb_decode)
    for fmt in ("png", "webp", "jpeg"):
        for output in ("cutout", "mask"):
            result = asyncio.run(pipeline.remove_background(data, RemoveOptions(output=output, fmt=fmt)))
            image = opened(result.data)
            assert image.info.get("dpi", (300, 300)) == pytest.approx((300, 300), abs=0.05)
            if output == "mask":
                assert "icc_profile" not in image.info and "srgb" not in image.info
                continue
            assert_srgb_tagged(result.data)
            if fmt == "png":
                got = centre(np.asarray(image.convert("RGBA")))
                assert np.abs(got - centre(reference)).max() <= 1.0


def test_cached_cutout_keeps_its_tags(pets_dir: Path) -> None:
    data, _, p3 = p3_photo(pets_dir)
    for color, expected in (("srgb", None), ("preserve", p3)):
        pipeline = make(color=color)
        first = asyncio.run(pipeline.remove_background(data, RemoveOptions()))
        # another format: the cut-out comes from the cache (no model call), its profile and DPI too
        webp = asyncio.run(pipeline.remove_background(data, RemoveOptions(fmt="webp")))
        assert pipeline.model.calls == 1 and webp.cache_hit
        profile = opened(webp.data).info.get("icc_profile")
        assert profile == (expected or srgb_profile())
        exif = opened(webp.data).getexif()
        assert (float(exif[0x011A]), float(exif[0x011B])) == (300.0, 300.0)
        assert opened(first.data).info.get("icc_profile") == expected


def test_max_side_scales_the_dpi_so_the_print_size_stays(pets_dir: Path) -> None:
    data, _, _ = p3_photo(pets_dir)
    pipeline = make()
    result = asyncio.run(pipeline.remove_background(data, RemoveOptions(fmt="jpeg", max_side=WIDTH // 2)))
    image = opened(result.data)
    assert image.size == (WIDTH // 2, HEIGHT // 2)
    assert image.info["dpi"] == (150, 150)
    rendered = asyncio.run(pipeline.render_effects(data, ["popart"], {"popart": {}}, max_side=WIDTH // 4))
    assert opened(rendered.images["popart"]).info["dpi"] == pytest.approx((75, 75), abs=0.05)


def test_every_effect_is_tagged_srgb_in_every_format(pets_dir: Path) -> None:
    data, stored, p3 = p3_photo(pets_dir)
    pipeline = make()
    names = effects.names()
    params = {name: effects.validate_params(name) for name in names}
    for fmt in ("png", "webp", "jpeg"):
        result = asyncio.run(pipeline.render_effects(data, names, params, fmt=fmt))
        assert sorted(result.images) == sorted(names) and not result.failed
        for name, image in result.images.items():
            assert_srgb_tagged(image)
            assert opened(image).info.get("dpi", (300, 300)) == pytest.approx((300, 300), abs=0.05), name
    identity = opened(asyncio.run(pipeline.render_effects(data, ["color"], params)).images["color"])
    got = centre(np.asarray(identity.convert("RGBA")))
    assert np.abs(got - centre(icc.reference_to_srgb(stored, p3, icc.srgb_decode))).max() <= 1.0


def test_preserve_keeps_pixels_and_embeds_the_source_profile(pets_dir: Path) -> None:
    data, stored, p3 = p3_photo(pets_dir)
    pipeline = make(color="preserve")
    cutout = opened(asyncio.run(pipeline.remove_background(data, RemoveOptions())).data)
    assert cutout.info["icc_profile"] == p3 and "srgb" not in cutout.info
    np.testing.assert_array_equal(centre(np.asarray(cutout.convert("RGBA"))), centre(stored))
    result = asyncio.run(pipeline.render_effects(data, ["popart"], {"popart": {}}, fmt="webp"))
    assert opened(result.images["popart"]).info["icc_profile"] == p3


def test_the_colour_setting_is_part_of_every_cache_key(pets_dir: Path) -> None:
    srgb, preserve = Settings(mode="fast"), Settings(mode="fast", color="preserve")
    for kind in ("cutout", "remove", "effect"):
        assert cache_key(srgb, "d", kind) != cache_key(preserve, "d", kind)
    # one shared cache (as with Redis): changing the setting never serves the other setting's result
    data, stored, p3 = p3_photo(pets_dir)
    cache = MemoryCache(64 << 20)
    converted = asyncio.run(make(cache).remove_background(data, RemoveOptions()))
    kept_pipeline = make(cache, color="preserve")
    kept = asyncio.run(kept_pipeline.remove_background(data, RemoveOptions()))
    assert not kept.cache_hit and kept_pipeline.model.calls == 1
    assert opened(kept.data).info["icc_profile"] == p3
    assert "icc_profile" not in opened(converted.data).info
    effect = asyncio.run(kept_pipeline.render_effects(data, ["color"], {"color": {}}))
    np.testing.assert_array_equal(centre(np.asarray(opened(effect.images["color"]).convert("RGBA"))), centre(stored))


def test_an_alias_and_its_effect_share_one_rendering(pets_dir: Path) -> None:
    data, _, _ = p3_photo(pets_dir, dpi=None)
    pipeline = make()
    names = ["optimized_popart", "popart", "blackwhite"]
    params = {name: effects.validate_params(name) for name in names}
    result = asyncio.run(pipeline.render_effects(data, names, params))
    assert list(result.images) == names and not result.failed
    assert result.images["optimized_popart"] == result.images["popart"]
    plain = asyncio.run(
        make().render_effects(data, ["enhancedblackwhite"], {"enhancedblackwhite": params["blackwhite"]})
    )
    assert result.images["blackwhite"] == plain.images["enhancedblackwhite"]
