"""Every request the shop's front-end can send, as the old service accepted it, one test per case.

The shop's ``assets/api-client.js`` in its InSPyReNet mode sends the form field
``effects=color,enhancedblackwhite,optimized_popart,dithering`` with ``?return_all_effects=true``;
in its other mode the query ``effects``; ``pet-processor.js`` stores results with ``/store-image``. The
old services' effect names are aliases and the JSON answer is keyed by the names asked for.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from petcut import effects
from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error
from tests.support.images import jpeg_bytes
from tests.support.service import Service, make_settings, run

PROCESS = "/api/v2/process-with-effects"
API_CLIENT_EFFECTS = "color,enhancedblackwhite,optimized_popart,dithering"


@asynccontextmanager
async def serving(tmp_path: Path, **overrides: Any) -> AsyncIterator[Service]:
    settings = make_settings(storage_url=(tmp_path / "images").as_uri(), rate_limit_per_minute=0, **overrides)
    async with Service(settings) as svc:
        await svc.wait_state(State.READY)
        yield svc


def scenario(tmp_path: Path, body: Callable[[Service], Awaitable[None]], **overrides: Any) -> None:
    async def go() -> None:
        async with serving(tmp_path, **overrides) as svc:
            await body(svc)

    run(go())


def photo() -> bytes:
    return jpeg_bytes(96, 72)


def upload(data: bytes | None = None) -> dict[str, tuple[str, bytes, str]]:
    return {"file": ("pet.jpg", data or photo(), "image/jpeg")}


def image_of(value: str | bytes) -> Image.Image:
    if isinstance(value, str):
        value = base64.b64decode(value.partition(",")[2] if value.startswith("data:") else value)
    image = Image.open(BytesIO(value))
    image.load()
    return image


def pixels(value: str | bytes) -> bytes:
    return image_of(value).convert("RGBA").tobytes()


async def all_effects(svc: Service, query: str = "", form: dict[str, str] | None = None) -> httpx.Response:
    return await svc.client.post(f"{PROCESS}?return_all_effects=true{query}", files=upload(), data=form or {})


# --- process-with-effects: which effects --------------------------------------------------------------
def test_api_client_inspyrenet_mode_form_field_with_old_names(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await all_effects(svc, form={"effects": API_CLIENT_EFFECTS})
        assert response.status_code == 200, response.text
        check_edge(response)
        answer = response.json()
        asked = API_CLIENT_EFFECTS.split(",")
        assert answer["success"] is True and list(answer["effects"]) == asked
        assert list(answer["cache_info"]["effect_cache_hits"]) == asked
        assert answer["total_effects"] == 4 and answer["failed_effects"] is None
        assert answer["cache_info"]["total_operations"] == 5
        for value in answer["effects"].values():
            assert image_of(value).format == "PNG" and image_of(value).size == (96, 72)
        # optimized_popart is pop art: the same image as asking for popart
        popart = (await all_effects(svc, form={"effects": "popart"})).json()["effects"]["popart"]
        assert pixels(answer["effects"]["optimized_popart"]) == pixels(popart)

    scenario(tmp_path, body)


def test_api_client_other_mode_query_effects(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await all_effects(svc, "&effects=enhancedblackwhite,popart")
        assert response.status_code == 200, response.text
        assert list(response.json()["effects"]) == ["enhancedblackwhite", "popart"]

    scenario(tmp_path, body)


def test_blackwhite_is_enhancedblackwhite(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        old = (await all_effects(svc, "&effects=blackwhite")).json()["effects"]
        new = (await all_effects(svc, "&effects=enhancedblackwhite")).json()["effects"]
        assert list(old) == ["blackwhite"]
        assert pixels(old["blackwhite"]) == pixels(new["enhancedblackwhite"])

    scenario(tmp_path, body)


def test_form_effects_field(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await all_effects(svc, form={"form_effects": "dithering,optimized_popart"})
        assert response.status_code == 200, response.text
        assert list(response.json()["effects"]) == ["dithering", "optimized_popart"]

    scenario(tmp_path, body)


def test_query_effects_win_over_the_form_field(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await all_effects(svc, "&effects=retro8bit", form={"effects": API_CLIENT_EFFECTS})
        assert list(response.json()["effects"]) == ["retro8bit"]

    scenario(tmp_path, body)


def test_names_are_trimmed_case_folded_and_deduplicated(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await all_effects(svc, form={"effects": " Color , OPTIMIZED_POPART,color,, "})
        assert response.status_code == 200, response.text
        assert list(response.json()["effects"]) == ["color", "optimized_popart"]

    scenario(tmp_path, body)


def test_unknown_effect_is_400_with_the_valid_names(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await all_effects(svc, form={"effects": "color,optimised_popart"})
        answer = check_error(response, 400, "unknown_effect")
        message = answer["error"]["message"]
        assert "optimised_popart" in message and "optimized_popart" in message
        for name in effects.names():
            assert name in message
        assert effects.names() in (answer.get("valid_effects"), answer["error"].get("valid_effects"))

    scenario(tmp_path, body)


def test_effects_catalogue_lists_the_aliases(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await svc.client.get("/api/v2/effects")
        check_edge(response)
        catalogue = response.json()
        assert catalogue["aliases"] == {"optimized_popart": "popart", "blackwhite": "enhancedblackwhite"}
        assert set(catalogue["aliases"].values()) <= {effect["name"] for effect in catalogue["effects"]}

    scenario(tmp_path, body)


# --- process-with-effects: single effect, defaults and options ------------------------------------------
def test_single_effect_query_returns_its_bytes(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        old = await svc.client.post(f"{PROCESS}?effect=optimized_popart", files=upload())
        new = await svc.client.post(f"{PROCESS}?effect=popart", files=upload())
        assert old.status_code == 200 and old.headers["content-type"] == "image/png"
        assert pixels(old.content) == pixels(new.content)

    scenario(tmp_path, body)


def test_no_effect_named_means_enhancedblackwhite(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        default = await svc.client.post(PROCESS, files=upload())
        named = await svc.client.post(f"{PROCESS}?effect=enhancedblackwhite", files=upload())
        assert default.status_code == 200 and pixels(default.content) == pixels(named.content)

    scenario(tmp_path, body)


def test_without_return_all_effects_the_first_named_effect_is_returned(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        first = await svc.client.post(PROCESS, files=upload(), data={"effects": API_CLIENT_EFFECTS})
        color = await svc.client.post(f"{PROCESS}?effect=color", files=upload())
        assert first.headers["content-type"] == "image/png"
        assert pixels(first.content) == pixels(color.content)

    scenario(tmp_path, body)


@pytest.mark.parametrize("where", ["query", "form"])
def test_effect_params_in_the_query_or_the_form_under_an_old_name(tmp_path: Path, where: str) -> None:
    params = json.dumps({"blackwhite": {"grain_strength": 0.0, "contrast_boost": 1.5}})

    async def body(svc: Service) -> None:
        query = f"&effect_params={params}" if where == "query" else ""
        form = {"effects": "blackwhite", **({"effect_params": params} if where == "form" else {})}
        tuned = await all_effects(svc, query, form)
        plain = await all_effects(svc, form={"effects": "blackwhite"})
        assert tuned.status_code == 200, tuned.text
        assert pixels(tuned.json()["effects"]["blackwhite"]) != pixels(plain.json()["effects"]["blackwhite"])
        bad = await all_effects(svc, query, {"effects": "blackwhite", "effect_params": "{not json"})
        if where == "form":
            check_error(bad, 400, "invalid_parameter")

    scenario(tmp_path, body)


def test_use_cache_false_recomputes(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        await all_effects(svc, form={"effects": "color"})
        cached = await all_effects(svc, form={"effects": "color"})
        fresh = await all_effects(svc, "&use_cache=false", {"effects": "color"})
        assert cached.json()["cache_info"]["total_cache_hits"] == 2
        assert fresh.json()["cache_info"]["total_cache_hits"] == 0 and fresh.headers["X-Cache-Hits"] == "0"

    scenario(tmp_path, body)


def test_session_id_is_echoed_or_generated_and_checked(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        given = await all_effects(svc, "&session_id=sess-42", {"effects": "color"})
        assert given.json()["session_id"] == "sess-42" == given.headers["X-Session-ID"]
        generated = await all_effects(svc, form={"effects": "color"})
        assert generated.json()["session_id"] == generated.headers["X-Session-ID"] != "sess-42"
        bad = await all_effects(svc, "&session_id=../etc", {"effects": "color"})
        assert 400 <= bad.status_code < 500

    scenario(tmp_path, body)


@pytest.mark.parametrize(("fmt", "media"), [("webp", "image/webp"), ("jpeg", "image/jpeg"), ("jpg", "image/jpeg")])
def test_output_format_bg_color_and_max_side(tmp_path: Path, fmt: str, media: str) -> None:
    async def body(svc: Service) -> None:
        response = await svc.client.post(
            f"{PROCESS}?effect=optimized_popart&output_format={fmt}&bg_color=%23ff0000&max_side=48", files=upload()
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media
        image = image_of(response.content)
        assert image.size == (48, 36)
        if fmt != "webp":  # JPEG composites the transparent corners on bg_color
            r, g, b = image.convert("RGB").getpixel((0, 0))
            assert r > 200 and g < 60 and b < 60

    scenario(tmp_path, body)


@pytest.mark.parametrize("value", ["true", "True", "1"])
def test_return_all_effects_spellings(tmp_path: Path, value: str) -> None:
    async def body(svc: Service) -> None:
        response = await svc.client.post(
            f"{PROCESS}?return_all_effects={value}", files=upload(), data={"effects": "color"}
        )
        assert response.json()["success"] is True

    scenario(tmp_path, body)


# --- warmup ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "content", "content_type"),
    [
        ("POST", b"not json at all", "application/json"),
        ("POST", b"{}", "application/json"),
        ("POST", b"", "application/json"),
        ("POST", b"", None),
        ("GET", b"", None),
    ],
    ids=["json-type-non-json-body", "json-object", "json-type-empty", "no-body", "get"],
)
def test_warmup_whatever_the_body(tmp_path: Path, method: str, content: bytes, content_type: str | None) -> None:
    async def body(svc: Service) -> None:
        headers = {"Content-Type": content_type} if content_type else {}
        response = await svc.client.request(method, "/warmup", content=content, headers=headers)
        assert response.status_code == 200, response.text
        check_edge(response)
        answer = response.json()
        assert answer["status"] == "success" and answer["model_ready"] is True
        assert response.headers["X-Warmup-Status"] == "success" and response.headers["X-Model-Ready"] == "true"

    scenario(tmp_path, body)


# --- store-image ------------------------------------------------------------------------------------------
def test_store_image_with_every_field_then_list_and_fetch(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        processed = await all_effects(svc, form={"effects": API_CLIENT_EFFECTS})
        png = base64.b64decode(processed.json()["effects"]["optimized_popart"])
        fields = {
            "session_id": "sess-9",
            "image_type": "processed",
            "pet_name": "Polly the Parrot",
            "pet_id": "pet-3",
            "effect_applied": "optimized_popart",
            "tier": "order_pending",
        }
        stored = await svc.client.post("/store-image", data=fields, files={"file": ("blob", png, "image/png")})
        assert stored.status_code == 200, stored.text
        check_edge(stored)
        answer = stored.json()
        assert answer["success"] is True
        assert (answer["session_id"], answer["image_type"], answer["tier"]) == ("sess-9", "processed", "order_pending")
        assert answer["filename"].endswith(".png")
        fetched = await svc.client.get(answer["url"])
        assert fetched.status_code == 200 and fetched.content == png
        listed = await svc.client.get("/session/sess-9/images")
        assert listed.status_code == 200 and answer["filename"] in json.dumps(listed.json())

    scenario(tmp_path, body)


def test_store_image_with_the_required_fields_only(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        data = photo()
        stored = await svc.client.post(
            "/store-image", data={"session_id": "s1", "image_type": "original"}, files={"file": ("pet.jpg", data)}
        )
        assert stored.status_code == 200, stored.text
        assert stored.json()["tier"] == "temporary" and stored.json()["filename"].endswith(".jpg")
        assert (await svc.client.get(stored.json()["url"])).content == data

    scenario(tmp_path, body)


def test_store_image_without_session_is_400(tmp_path: Path) -> None:
    async def body(svc: Service) -> None:
        response = await svc.client.post("/store-image", data={"image_type": "original"}, files=upload())
        check_error(response, 400)
        assert response.json()["error"]["field"] == "session_id"

    scenario(tmp_path, body)
