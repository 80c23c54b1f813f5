"""The service's request path with a fake model: caching, options, effects in parallel."""

from __future__ import annotations

import asyncio
from io import BytesIO

import numpy as np
import pytest
from PIL import Image

from petcut import effects
from petcut.cache import MemoryCache, pack, unpack
from petcut.config import Settings
from petcut.imaging import encode_image
from petcut.pipeline import ModelOutputError, NoSubjectError, Pipeline, RemoveOptions, remove_image
from tests.support.fakes import EllipseModel, ThreadExecutor


def photo(width: int = 120, height: int = 80) -> bytes:
    rng = np.random.default_rng(3)
    return encode_image(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "png")


def make(empty: bool = False) -> tuple[Pipeline, EllipseModel]:
    model = EllipseModel(empty)
    return Pipeline(Settings(mode="fast"), model, ThreadExecutor(), MemoryCache(64 << 20)), model


def open_image(data: bytes) -> Image.Image:
    image = Image.open(BytesIO(data))
    image.load()
    return image


def test_pack_round_trip() -> None:
    assert unpack(pack({"box": [1, 2, 3, 4]}, b"\x89PNG")) == ({"box": [1, 2, 3, 4]}, b"\x89PNG")


def test_cutout_then_cache_hit_skips_the_model() -> None:
    pipeline, model = make()
    first = asyncio.run(pipeline.remove_background(photo(), RemoveOptions()))
    second = asyncio.run(pipeline.remove_background(photo(), RemoveOptions()))
    assert model.calls == 1
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.data == first.data
    image = open_image(first.data)
    assert image.mode == "RGBA" and image.size == (120, 80)
    assert first.box == (30, 20, 61, 41) == second.box


def test_use_cache_false_runs_the_model_every_time() -> None:
    pipeline, model = make()
    for _ in range(2):
        asyncio.run(pipeline.remove_background(photo(), RemoveOptions(), use_cache=False))
    assert model.calls == 2


def test_another_option_reuses_the_cached_cutout() -> None:
    pipeline, model = make()
    asyncio.run(pipeline.remove_background(photo(), RemoveOptions()))
    mask = asyncio.run(pipeline.remove_background(photo(), RemoveOptions(output="mask")))
    assert model.calls == 1 and mask.cache_hit  # the segmentation came from the cache
    image = open_image(mask.data)
    assert image.mode == "L"
    values = np.asarray(image)
    assert values[40, 60] == 255 and values[0, 0] == 0


def test_crop_with_margin_and_max_side_and_formats() -> None:
    pipeline, _ = make()
    cropped = asyncio.run(pipeline.remove_background(photo(), RemoveOptions(crop=True, crop_margin="5")))
    assert open_image(cropped.data).size == (71, 51)
    percent = asyncio.run(pipeline.remove_background(photo(), RemoveOptions(crop=True, crop_margin="10%")))
    assert open_image(percent.data).size == (61 + 2 * 6, 41 + 2 * 6)
    small = asyncio.run(pipeline.remove_background(photo(), RemoveOptions(max_side=60)))
    assert open_image(small.data).size == (60, 40)
    jpeg = asyncio.run(pipeline.remove_background(photo(), RemoveOptions(fmt="jpeg", bg_color=(255, 0, 0))))
    image = open_image(jpeg.data)
    assert image.format == "JPEG"
    red = np.asarray(image)[0, 0]
    assert red[0] > 200 and red[1] < 60 and red[2] < 60  # background composited on the colour
    webp = asyncio.run(pipeline.remove_background(photo(), RemoveOptions(fmt="webp")))
    assert open_image(webp.data).format == "WEBP" and open_image(webp.data).mode == "RGBA"


def test_no_subject() -> None:
    pipeline, _ = make(empty=True)
    result = asyncio.run(pipeline.remove_background(photo(), RemoveOptions()))
    assert result.box is None
    with pytest.raises(NoSubjectError):
        asyncio.run(pipeline.remove_background(photo(), RemoveOptions(crop=True)))


def test_effects_are_rendered_cached_and_reported() -> None:
    pipeline, model = make()
    names = ["enhancedblackwhite", "color"]
    params = {name: effects.validate_params(name, None) for name in names}
    first = asyncio.run(pipeline.render_effects(photo(), names, params))
    assert list(first.images) == names and first.failed == []
    assert first.background_hit is False and first.effect_hits == {"enhancedblackwhite": False, "color": False}
    for data in first.images.values():
        assert open_image(data).size == (120, 80)
    second = asyncio.run(pipeline.render_effects(photo(), names, params))
    assert second.images == first.images
    assert second.background_hit and all(second.effect_hits.values())
    assert second.total_cache_hits == 3 and model.calls == 1
    # a new effect on the same photo: the cut-out comes from the cache, only the effect is new
    popart = {"popart": effects.validate_params("popart", None)}
    third = asyncio.run(pipeline.render_effects(photo(), ["popart"], popart))
    assert third.background_hit and third.effect_hits == {"popart": False} and model.calls == 1


def test_a_failing_effect_is_reported_not_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    pipeline, _ = make()
    original = effects.apply

    def broken(name, rgba, params=None):
        if name == "popart":
            raise RuntimeError("boom")
        return original(name, rgba, params)

    monkeypatch.setattr(effects, "apply", broken)
    names = ["popart", "color"]
    params = {name: effects.validate_params(name, None) for name in names}
    result = asyncio.run(pipeline.render_effects(photo(), names, params))
    assert result.failed == ["popart"] and list(result.images) == ["color"]


class SyncEllipse:
    """EllipseModel as a plain segmenter (what the CLI loads)."""

    description = "ellipse"

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        return asyncio.run(EllipseModel().predict_alpha(rgb))


@pytest.mark.parametrize("options", [RemoveOptions(), RemoveOptions(output="mask"), RemoveOptions(fmt="jpeg")])
def test_remove_image_is_the_service_path_without_cache_or_queue(options: RemoveOptions) -> None:
    pipeline, _ = make()
    served = asyncio.run(pipeline.remove_background(photo(), options, use_cache=False))
    assert remove_image(SyncEllipse(), photo(), pipeline.settings, options) == served.data


def test_remove_image_checks_the_model_output() -> None:
    class Broken:
        description = "broken"

        def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
            return np.zeros((2, 2), np.float32)

    with pytest.raises(ModelOutputError):
        remove_image(Broken(), photo(), Settings(mode="fast"), RemoveOptions())
