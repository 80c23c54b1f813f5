"""The service serving the trained IS-Net: the shop's pets are found and cut out, an image with
no pet says so, and every place that names the model (``X-Model``, ``/``, ``/ready``, the metrics) names it.
The fallback tagging (``make run`` serving IS-Net because InSPyReNet could not be downloaded) is checked
with a fake segmenter: it is about what the service says, not what the model does."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageOps

from petcut.api.app import default_loader
from petcut.model.runtime import State
from tests.support.service import Service, make_settings, run
from tests.support.shared_data import pets_dir

#: for each shop photo, a point on the dog and a point of the background, as fractions of (width, height)
LANDMARKS = {
    "Rosie.jpg": ((0.53, 0.43), (0.05, 0.05)),
    "Squid.jpg": ((0.45, 0.50), (0.09, 0.10)),
    "Tex.jpeg": ((0.52, 0.40), (0.08, 0.17)),
    "polly.jpg": ((0.62, 0.33), (0.13, 0.17)),
}


def png_array(data: bytes) -> np.ndarray:
    with Image.open(BytesIO(data)) as image:
        return np.asarray(image)


def oriented_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


def jpeg(array: np.ndarray) -> bytes:
    buffer = BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def landscape(width: int = 800, height: int = 500) -> np.ndarray:
    """A synthetic landscape with no subject: a sky gradient, rolling hills, a textured meadow."""
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    sky = np.stack([120 + 80 * yy / height, 170 + 50 * yy / height, np.full_like(yy, 235)], axis=-1)
    horizon = height * 0.55 + 25 * np.sin(xx / 90.0) + 12 * np.sin(xx / 37.0 + 1.0)
    meadow = np.stack([60 + 30 * np.sin(xx / 13.0), 130 + 40 * (yy / height), np.full_like(yy, 50)], axis=-1)
    image = np.where((yy > horizon)[..., None], meadow, sky)
    image += rng.normal(0, 6, image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


@pytest.mark.slow
def test_isnet_finds_and_cuts_out_each_shop_pet_and_nothing_in_a_petless_image(
    isnet_weights_dir: Path, pet_photos: list[Path]
) -> None:
    async def scenario() -> None:
        settings = make_settings(model="isnet", weights_dir=isnet_weights_dir, inference_timeout_s=120,
                                 queue_timeout_s=120, warmup_wait_s=120)  # fmt: skip
        async with Service(settings, default_loader) as svc:
            await svc.wait_state(State.READY, State.DEGRADED, State.FAILED, timeout=240)
            assert svc.runtime.state is State.READY, svc.runtime.status()
            root = (await svc.client.get("/")).json()
            assert root["model_id"] == "isnet-medium" and root["model_choice"] == "configured"
            assert root["model"].startswith("IS-Net medium") and "openvino" in root["model"]
            ready = (await svc.client.get("/ready")).json()
            assert ready["ready"] and ready["model_id"] == "isnet-medium"
            metrics = (await svc.client.get("/metrics")).text
            assert 'model="isnet-medium"' in metrics and 'model_choice="configured"' in metrics

            for photo in pet_photos:
                width, height = oriented_size(photo)
                (dog_x, dog_y), (bg_x, bg_y) = LANDMARKS[photo.name]
                dog, background = (int(dog_x * width), int(dog_y * height)), (int(bg_x * width), int(bg_y * height))
                response = await svc.process(photo.read_bytes(), params={"output": "mask"})
                assert response.status_code == 200, response.text
                assert response.headers["X-Model"] == "isnet-medium"
                assert response.headers["X-Foreground-Found"] == "true", photo.name
                mask = png_array(response.content)
                assert mask.shape == (height, width)
                assert mask[dog[1], dog[0]] >= 200, f"{photo.name}: the dog is not opaque"
                assert mask[background[1], background[0]] <= 55, f"{photo.name}: the background is not clear"
                left, top = int(response.headers["X-Foreground-Left"]), int(response.headers["X-Foreground-Top"])
                box_w, box_h = int(response.headers["X-Foreground-Width"]), int(response.headers["X-Foreground-Height"])
                assert left <= dog[0] < left + box_w and top <= dog[1] < top + box_h, photo.name
                assert box_w * box_h < 0.95 * width * height, f"{photo.name}: the box is the whole frame"

                cropped = await svc.process(photo.read_bytes(), params={"crop": "true"})
                assert cropped.status_code == 200 and cropped.headers["X-Cache-Hits"] == "1"
                rgba = png_array(cropped.content)
                assert rgba.shape == (box_h, box_w, 4), photo.name
                assert rgba[dog[1] - top, dog[0] - left, 3] >= 200, f"{photo.name}: the crop lost the dog"

            for name, image in {"flat colour": np.full((400, 600, 3), (90, 140, 200), np.uint8),
                                "landscape": landscape()}.items():  # fmt: skip
                response = await svc.process(jpeg(image))
                assert response.status_code == 200, response.text
                assert response.headers["X-Foreground-Found"] == "false", name
                assert png_array(response.content)[..., 3].max() < 128, name
                refused = await svc.process(jpeg(image), params={"crop": "true"})
                assert refused.status_code == 422 and refused.json()["error"]["code"] == "no_subject_found"

    assert sorted(p.name for p in pet_photos) == sorted(LANDMARKS), f"new shop photos in {pets_dir()}"
    run(scenario(), timeout=900)


def test_the_fallback_is_said_in_root_ready_metrics_and_headers() -> None:
    async def scenario() -> None:
        async with Service(make_settings(model="isnet", model_fallback=True)) as svc:
            await svc.wait_state(State.READY)
            root = (await svc.client.get("/")).json()
            assert root["model_id"] == "isnet-medium" and root["model_choice"] == "fallback"
            assert "InSPyReNet weights could not be downloaded" in root["model_note"]
            ready = (await svc.client.get("/ready")).json()
            assert ready["model_choice"] == "fallback" and "AGPL" in ready["model_note"]
            metrics = (await svc.client.get("/metrics")).text
            assert 'model="isnet-medium"' in metrics and 'model_choice="fallback"' in metrics
            response = await svc.process()
            assert response.status_code == 200 and response.headers["X-Model"] == "isnet-medium"
            assert "X-Model" in response.headers["Access-Control-Expose-Headers"]

        async with Service(make_settings()) as svc:  # InSPyReNet, configured: no note
            await svc.wait_state(State.READY)
            root = (await svc.client.get("/")).json()
            assert root["model_id"] == "inspyrenet-fast" and root["model_choice"] == "configured"
            assert "model_note" not in root
            assert (await svc.process()).headers["X-Model"] == "inspyrenet-fast"

    run(scenario())


@pytest.mark.parametrize(
    ("content", "reason"),
    [(None, "weights are missing"), (b"not an onnx file", "checksum")],
)
def test_isnet_missing_or_corrupt_weights_fail_the_load_and_ready_says_why(
    tmp_path: Path, content: bytes | None, reason: str
) -> None:
    """The runtime's fault handling is the same for IS-Net: no weights or a corrupt file is a failed load
    (no retry loop for a permanent error), /ready 503 with the reason, processing 503 — never a 2xx."""
    if content is not None:
        (tmp_path / "isnet-medium.onnx").write_bytes(content)

    async def scenario() -> None:
        async with Service(make_settings(model="isnet", weights_dir=tmp_path), default_loader) as svc:
            await svc.wait_state(State.FAILED)
            ready = await svc.client.get("/ready")
            assert ready.status_code == 503 and reason in ready.json()["reason"]
            assert ready.json()["model_id"] == "isnet-medium"
            response = await svc.process()
            assert response.status_code == 503 and response.headers["Retry-After"], response.text

    run(scenario())
