"""The shop front-end's request, exactly as its browser code sends and reads it, plus remove-background."""

from __future__ import annotations

import base64
import json
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error
from tests.support.images import jpeg_bytes
from tests.support.service import ORIGIN, Service, run
from tests.support.shared_data import pet_photo, pet_photos

SHOP_QUERY = "?return_all_effects=true&effects=enhancedblackwhite,color"


def image_from_effect(value: str) -> Image.Image:
    """What the shop does with effects[name]: a data: URL or plain base64 → an image."""
    if value.startswith("data:"):
        value = value.partition(",")[2]
    image = Image.open(BytesIO(base64.b64decode(value)))
    image.load()
    return image


async def shop_request(svc: Service, data: bytes, name: str = "pet.jpg"):
    return await svc.client.post(
        "/api/v2/process-with-effects" + SHOP_QUERY,
        files={"file": (name, data, "image/jpeg")},
        data={"effects": "enhancedblackwhite,color"},
    )


def oriented_size(data: bytes) -> tuple[int, int]:
    with Image.open(BytesIO(data)) as image:
        return ImageOps.exif_transpose(image).size


def rotated_copy(path: Path) -> bytes:
    """The photo re-saved with EXIF orientation 6 (the pixels stored sideways, as phones do)."""
    with Image.open(path) as image:
        exif = image.getexif()
        exif[0x0112] = 6
        buf = BytesIO()
        image.convert("RGB").save(buf, "JPEG", quality=90, exif=exif.tobytes())
        return buf.getvalue()


def shop_photos() -> list[tuple[str, bytes]]:
    photos = [(p.name, p.read_bytes()) for p in pet_photos()]
    return [*photos, ("Rosie-rotated.jpg", rotated_copy(pet_photo("Rosie.jpg")))]


def test_shop_request_on_every_pet_photo_then_cache_hits() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            warmup_calls = svc.segmenter.calls
            for name, data in shop_photos():
                first = await shop_request(svc, data, name)
                assert first.is_success, first.text  # response.ok
                check_edge(first)
                body = first.json()
                assert body["success"] is True
                assert set(body["effects"]) == {"enhancedblackwhite", "color"}
                for value in body["effects"].values():
                    image = image_from_effect(value)
                    assert image.format == "PNG" and image.mode == "RGBA"
                    assert image.size == oriented_size(data), name
                assert body["failed_effects"] is None and body["total_effects"] == 2
                assert body["cache_info"]["background_removal_hit"] is False
                assert body["cache_info"]["total_operations"] == 3
                assert first.headers["X-Session-ID"] == body["session_id"]
                assert float(first.headers["X-Processing-Time"]) >= 0

                model_calls = svc.segmenter.calls
                again = await shop_request(svc, data, name)
                cached = again.json()
                assert cached["cache_info"]["total_cache_hits"] == 3
                assert cached["cache_info"]["effect_cache_hits"] == {"enhancedblackwhite": True, "color": True}
                assert again.headers["X-Cache-Hits"] == "3"
                assert cached["effects"] == body["effects"]
                assert svc.segmenter.calls == model_calls, name  # from the cache: the model did not run again
            assert svc.segmenter.calls - warmup_calls == len(shop_photos())  # the model ran once per photo

    run(scenario(), timeout=600)


def test_rotated_photo_keeps_its_orientation() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            data = rotated_copy(pet_photo("Rosie.jpg"))
            response = await shop_request(svc, data)
            for value in response.json()["effects"].values():
                assert image_from_effect(value).size == (640, 480)  # 480×640 stored, turned a quarter

    run(scenario(), timeout=120)


def test_single_effect_bytes_in_each_format() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            files = {"file": ("pet.jpg", jpeg_bytes(80, 60), "image/jpeg")}
            for fmt, pil_format, media in (("png", "PNG", "image/png"), ("webp", "WEBP", "image/webp"),
                                           ("jpeg", "JPEG", "image/jpeg")):  # fmt: skip
                response = await svc.client.post(
                    "/api/v2/process-with-effects", params={"effect": "popart", "output_format": fmt}, files=files
                )
                assert response.status_code == 200, response.text
                check_edge(response)
                assert response.headers["content-type"] == media
                image = Image.open(BytesIO(response.content))
                assert image.format == pil_format and image.size == (80, 60)
            default = await svc.client.post("/api/v2/process-with-effects", files=files)
            assert Image.open(BytesIO(default.content)).mode == "RGBA"  # enhancedblackwhite as PNG

    run(scenario())


def test_effect_params_change_the_result_and_bad_ones_are_400() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            files = {"file": ("pet.jpg", jpeg_bytes(80, 60), "image/jpeg")}
            url = "/api/v2/process-with-effects"
            plain = await svc.client.post(url, params={"effect": "retro8bit"}, files=files)
            coarser = json.dumps({"retro8bit": {"pixelation_factor": 12}})
            coarse = await svc.client.post(url, params={"effect": "retro8bit", "effect_params": coarser}, files=files)
            assert plain.status_code == coarse.status_code == 200
            assert plain.content != coarse.content
            for bad in ("{not json", json.dumps({"retro8bit": {"nope": 1}}), json.dumps({"sparkle": {}}),
                        json.dumps({"retro8bit": {"pixelation_factor": -3}}), json.dumps([1])):  # fmt: skip
                response = await svc.client.post(url, params={"effect": "retro8bit", "effect_params": bad}, files=files)
                check_error(response, 400, "invalid_parameter")
            unknown = await svc.client.post(url, params={"effects": "color,sparkle"}, files=files)
            error = check_error(unknown, 400, "unknown_effect")
            assert "enhancedblackwhite" in error["error"]["message"]
            traversal = await svc.client.post(url, params={"session_id": "../etc"}, files=files)
            check_error(traversal, 400)

    run(scenario())


def test_effects_catalogue_comes_from_the_registry() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            response = await svc.client.get("/api/v2/effects")
            check_edge(response)
            listed = {effect["name"]: effect for effect in response.json()["effects"]}
            assert set(listed) == {"color", "enhancedblackwhite", "dithering", "popart", "retro8bit"}
            assert listed["retro8bit"]["params"]["pixelation_factor"]["default"] == 6

    run(scenario())


def remove(svc: Service, params: dict | None = None, data: bytes | None = None):
    files = {"file": ("pet.jpg", data or jpeg_bytes(100, 80), "image/jpeg")}
    return svc.client.post("/api/v2/remove-background", params=params or {}, files=files)


def test_remove_background_options() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            cutout = await remove(svc)
            assert cutout.status_code == 200 and cutout.headers["X-Foreground-Found"] == "true"
            box = [int(cutout.headers[f"X-Foreground-{k}"]) for k in ("Left", "Top", "Width", "Height")]
            assert 0 < box[2] < 100 and 0 < box[3] < 80
            mask = Image.open(BytesIO((await remove(svc, {"output": "mask"})).content))
            assert mask.mode == "L" and mask.size == (100, 80)
            cropped = Image.open(BytesIO((await remove(svc, {"crop": "true"})).content))
            assert cropped.size == (box[2], box[3])
            margin = Image.open(BytesIO((await remove(svc, {"crop": "true", "crop_margin": "4px"})).content))
            assert margin.size[0] == min(100, box[2] + 8)
            small = Image.open(BytesIO((await remove(svc, {"max_side": "50"})).content))
            assert small.size == (50, 40)
            on_red = Image.open(BytesIO((await remove(svc, {"bg_color": "#ff0000", "format": "jpeg"})).content))
            assert on_red.format == "JPEG"
            corner = np.asarray(on_red)[0, 0]
            assert corner[0] > 200 and corner[1] < 80
            webp = await remove(svc, {"format": "webp"})
            assert webp.headers["content-type"] == "image/webp"
            for params in ({"format": "gif"}, {"bg_color": "red"}, {"crop_margin": "-3"}, {"max_side": "0"},
                           {"output": "outline"}):  # fmt: skip
                check_error(await remove(svc, params), 400)
            as_json = await svc.client.post(
                "/api/v2/remove-background", json={"image_b64": base64.b64encode(jpeg_bytes(100, 80)).decode()}
            )
            assert as_json.status_code == 200 and as_json.content == cutout.content
            check_error(await svc.client.post("/api/v2/remove-background", json={"image_b64": "%%%"}), 400)

    run(scenario())


class EmptySegmenter:
    description = "finds nothing"

    def predict_alpha(self, rgb):
        return np.zeros(rgb.shape[:2], np.float32)


def test_no_subject_is_said_not_hidden() -> None:
    async def scenario() -> None:
        async with Service(loader=lambda settings: EmptySegmenter()) as svc:
            await svc.wait_state(State.READY, State.DEGRADED)
            response = await remove(svc)
            assert response.status_code == 200 and response.headers["X-Foreground-Found"] == "false"
            assert "X-Foreground-Left" not in response.headers
            check_error(await remove(svc, {"crop": "true"}), 422, "no_subject_found")

    run(scenario())


@pytest.mark.parametrize("case", ["no_file", "two_files", "empty_body", "zero_bytes", "text_as_png"])
def test_bad_uploads_to_the_shop_route(case: str) -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            url = "/api/v2/process-with-effects" + SHOP_QUERY
            image = ("a.jpg", jpeg_bytes(), "image/jpeg")
            if case == "no_file":
                response = await svc.client.post(url, data={"effects": "color"}, files={"other": image})
                expected = (400, "missing_file")
            elif case == "two_files":
                response = await svc.client.post(url, files=[("file", image), ("file", image)])
                expected = (400, "too_many_files")
            elif case == "empty_body":
                response = await svc.client.post(url, content=b"", headers={"Content-Type": "multipart/form-data"})
                expected = (400, None)
            elif case == "zero_bytes":
                response = await svc.client.post(url, files={"file": ("a.jpg", b"", "image/jpeg")})
                expected = (400, "empty_file")
            else:
                response = await svc.client.post(url, files={"file": ("a.png", b"hello, not a png", "image/png")})
                expected = (415, "unsupported_media_type")
            check_error(response, *expected)
            assert response.headers["access-control-allow-origin"] == ORIGIN

    run(scenario())
