"""docs/security.md: malformed parameters are a 400 naming the field, before any model work."""

from __future__ import annotations

import json

import pytest

from petcut.model.runtime import State
from tests.support.checks import check_error, check_png
from tests.support.images import jpeg_bytes
from tests.support.service import Service, make_settings, run

HUGE = "9" * 400
EFFECTS = "/api/v2/process-with-effects"
REMOVE = "/api/v2/remove-background"

BAD_EFFECT_PARAMS = [
    "[" * 5000,
    '{"a":' * 1500 + "1" + "}" * 1500,
    json.dumps({"retro8bit": {"pixelation_factor": 0}}).replace("0}", HUGE + "}"),
    json.dumps({"retro8bit": {"pixelation_factor": 0}}).replace("0}", HUGE + ".5}"),
    json.dumps({"retro8bit": {"pixelation_factor": 0}}).replace("0}", "1e400}"),
    json.dumps({"retro8bit": {"pixelation_factor": "NaN"}}),
    json.dumps({"enhancedblackwhite": {"gray_weights": [0.3, 0.3, 0]}}).replace("0]", HUGE + "]"),
    json.dumps({"retro8bit": {"pixelation_factor": [[[[1]]]]}}),
]


def _models_used(svc: Service) -> int:
    return svc.segmenter.calls


@pytest.mark.parametrize("where", ["query", "form"])
def test_bad_effect_params_are_400_naming_the_field_before_model_work(where: str) -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            await svc.wait_state(State.READY)
            calls = _models_used(svc)
            for index, raw in enumerate(BAD_EFFECT_PARAMS):
                image = jpeg_bytes(40 + index, 30)  # not cached: a model call would show
                files: dict = {"file": ("pet.jpg", image, "image/jpeg")}
                params = {"effects": "retro8bit,enhancedblackwhite", "return_all_effects": "true"}
                if where == "query":
                    params["effect_params"] = raw
                    response = await svc.client.post(EFFECTS, params=params, files=files)
                else:
                    files["effect_params"] = (None, raw)
                    response = await svc.client.post(EFFECTS, params=params, files=files)
                body = check_error(response, 400, "invalid_parameter")
                assert body["error"]["field"] == "effect_params", (raw[:40], body)
            assert _models_used(svc) == calls, "the model ran for a request with bad parameters"

    run(scenario())


def test_deeply_nested_json_body_is_400() -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            await svc.wait_state(State.READY)
            for body in ("[" * 20000, '{"image_b64": ' * 20000, "{" * 20000):
                response = await svc.client.post(REMOVE, content=body, headers={"Content-Type": "application/json"})
                check_error(response, 400, "bad_request")
            response = await svc.client.post(REMOVE, json={"image_b64": 1})
            check_error(response, 400, "missing_file")

    run(scenario())


@pytest.mark.parametrize(
    "value", ["179" + "0" * 306 + "%", "1" + "0" * 400 + "%", "1001%", "65501", "65501px", "1" * 40, "1e3", "inf%"]
)
def test_huge_or_odd_crop_margins_are_400_before_model_work(value: str) -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            await svc.wait_state(State.READY)
            calls = _models_used(svc)
            files = {"file": ("pet.jpg", jpeg_bytes(400, 300), "image/jpeg")}  # margin × subject side > 1.8e308
            response = await svc.client.post(REMOVE, params={"crop": "true", "crop_margin": value}, files=files)
            body = check_error(response, 400, "invalid_parameter")
            assert "crop_margin" in body["error"]["message"]
            assert _models_used(svc) == calls

    run(scenario())


def test_sane_crop_margins_and_effect_params_still_work() -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            await svc.wait_state(State.READY)
            files = {"file": ("pet.jpg", jpeg_bytes(), "image/jpeg")}
            for margin in ("0", "12", "12px", "10%", "1000%", "65500"):
                response = await svc.client.post(REMOVE, params={"crop": "true", "crop_margin": margin}, files=files)
                assert response.status_code == 200, (margin, response.text)
            params = {"effect": "enhancedblackwhite", "effect_params": json.dumps({"enhancedblackwhite": {}})}
            check_png(await svc.client.post(EFFECTS, params=params, files=files), (64, 48))

    run(scenario())
