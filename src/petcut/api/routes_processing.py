"""Processing routes: the shop front-end's ``process-with-effects``, ``remove-background`` for servers and
scripts, and the effect catalogue. Parameters are validated here (400); the work is the pipeline's. Errors
from any layer propagate to the one handler (:mod:`petcut.api.errors`, docs/api.md)."""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from petcut import effects
from petcut.api.bodies import CacheInfo, EffectCatalogue, EffectImages, EffectInfo
from petcut.api.deps import PipelineDep, SettingsDep, unless_disconnected
from petcut.api.errors import ApiError, EffectsFailed
from petcut.api.openapi import ERROR_RESPONSES, IMAGE_RESPONSE, error_responses, upload_body, with_headers
from petcut.api.params import (
    MARGIN_PATTERN,
    MAX_MARGIN_PERCENT,
    MAX_MARGIN_PX,
    parse_effect_params,
    parse_image_json,
    parse_margin,
)
from petcut.api.policy import policy
from petcut.api.uploads import MULTIPART_SLACK, SMALL_FIELD, is_form, read_form, single_file, text_field
from petcut.errors import InvalidParameter, PayloadTooLarge
from petcut.imaging import expand_box, media_type, normalize_format, parse_hex_color
from petcut.pipeline import EffectsResult, RemoveOptions
from petcut.storage.ids import ID_PATTERN, validate_id

router = APIRouter(tags=["processing"])

DEFAULT_EFFECT = "enhancedblackwhite"
Format = Literal["png", "webp", "jpeg", "jpg"]


# --- parameter parsing ------------------------------------------------------------------------------
def parse_format(value: str, param: str) -> str:
    try:
        return normalize_format(value)
    except ValueError as exc:
        raise InvalidParameter(param, str(exc)) from None


def colour(value: str | None, param: str = "bg_color") -> tuple[int, int, int] | None:
    if value is None or value == "":
        return None
    try:
        return parse_hex_color(value)
    except ValueError as exc:
        raise InvalidParameter(param, str(exc)) from None


def margin(value: str) -> str:
    parsed = parse_margin(value)
    try:
        expand_box((0, 0, 1, 1), str(parsed), 1, 1)
    except ValueError as exc:
        raise InvalidParameter("crop_margin", str(exc)) from None
    return value.strip()


def is_effect(name: str) -> bool:
    """A registry name or one of the old services' aliases."""
    return name in effects.names() or name in effects.ALIASES


def effect_names(*candidates: str | None) -> list[str]:
    """The first non-empty comma list among ``candidates``, validated, duplicates dropped. Aliases are kept
    as asked (the JSON answer uses the client's names); the pipeline resolves them."""
    raw = next((c for c in candidates if c and c.strip()), DEFAULT_EFFECT)
    names = list(dict.fromkeys(part.strip().lower() for part in raw.split(",") if part.strip()))
    unknown = [name for name in names if not is_effect(name)]
    if unknown or not names:
        raise effects.UnknownEffectError(", ".join(unknown) or raw, effects.names(), aliases=effects.aliases())
    return names


def effect_parameters(raw: str | None, names: list[str]) -> dict[str, dict[str, Any]]:
    """``effect_params`` JSON ``{effect: {param: value}}`` → full validated parameters per effect."""
    given = parse_effect_params(raw) if raw else {}
    for name in given:
        if not is_effect(name):
            problem = f"unknown effect {name!r}; valid effects: {', '.join(effects.names())}"
            raise InvalidParameter("effect_params", problem)
    # parameters given under the asked name, else under the registry name (EffectParamError: a 400)
    return {name: effects.validate_params(name, given.get(name, given.get(effects.canonical(name)))) for name in names}


def session(value: str | None) -> str:
    """The client's session id (400 ``invalid_identifier`` when unsafe), or a new one."""
    return validate_id("session_id", value) if value else uuid.uuid4().hex


def processing_headers(total: float, hits: int, session_id: str | None = None, *, model: str) -> dict[str, str]:
    headers = {"X-Processing-Time": f"{total:.3f}", "X-Cache-Hits": str(hits), "X-Model": model}
    if session_id:
        headers["X-Session-ID"] = session_id
    return headers


FOREGROUND_HEADERS = {
    "X-Foreground-Found": "true or false: whether a subject was found",
    **{f"X-Foreground-{side}": "the subject's box, pixels (when found)" for side in ("Left", "Top", "Width", "Height")},
}


# --- routes --------------------------------------------------------------------------------------------
@router.get("/api/v2/effects", responses=error_responses(500))
async def list_effects() -> EffectCatalogue:
    """Every effect with its parameters (type, default, range), from the registry, and the old names
    accepted as aliases."""
    catalogue = [EffectInfo.model_validate(effect) for effect in effects.describe()]
    return EffectCatalogue(success=True, effects=catalogue, default=DEFAULT_EFFECT, aliases=effects.aliases())


@router.post(
    "/api/v2/process-with-effects",
    openapi_extra=upload_body(
        extra_fields={
            "effects": {"type": "string"},
            "form_effects": {"type": "string"},
            "effect_params": {"type": "string", "description": 'JSON {"effect": {"param": value}}'},
        }
    ),
    responses={
        **with_headers(
            {200: {**IMAGE_RESPONSE[200], "model": EffectImages}}, {"X-Session-ID": "the session, when one is given"}
        ),
        **ERROR_RESPONSES,
    },
    response_model=None,
    dependencies=[policy(limit=1.0, protected=True)],
)
async def process_with_effects(
    request: Request,
    effects_query: Annotated[
        str | None,
        Query(alias="effects", description="comma list of effects; old names accepted (optimized_popart, blackwhite)"),
    ] = None,
    effect: Annotated[str | None, Query(description=f"one effect (default {DEFAULT_EFFECT})")] = None,
    return_all_effects: Annotated[bool, Query(description="JSON with every effect as base64")] = False,
    effect_params: Annotated[
        str | None, Query(max_length=SMALL_FIELD, description='JSON {"effect": {"param": value}}')
    ] = None,
    use_cache: Annotated[bool, Query()] = True,
    session_id: Annotated[str | None, Query(pattern=f"^{ID_PATTERN}$")] = None,
    output_format: Annotated[Format, Query(description="png (default), webp or jpeg")] = "png",
    bg_color: Annotated[str | None, Query(description="JPEG background, hex (default white)")] = None,
    max_side: Annotated[int | None, Query(ge=1, le=65500, description="longest side of the output")] = None,
    *,
    pipeline: PipelineDep,
    settings: SettingsDep,
) -> Response:
    """The shop front-end's request: the cut-out in one or more print effects."""
    fmt = parse_format(output_format, "output_format")
    sid = session(session_id)
    limit = settings.max_upload_bytes
    async with read_form(request, limit=limit + MULTIPART_SLACK, max_files=2, required=True) as form:
        data = await single_file(form, limit=limit)
        names = effect_names(effects_query, text_field(form, "effects"), text_field(form, "form_effects"), effect)
        params = effect_parameters(effect_params or text_field(form, "effect_params"), names)
    if not return_all_effects:
        names = names[:1]
        params = {names[0]: params[names[0]]}
    background = colour(bg_color)
    result: EffectsResult = await unless_disconnected(
        request,
        pipeline.render_effects(
            data, names, params, fmt=fmt, max_side=max_side, use_cache=use_cache, bg_color=background
        ),
    )
    if not result.images:
        raise EffectsFailed(f"Every effect failed: {', '.join(result.failed)}.")
    headers = processing_headers(result.timings["total"], result.total_cache_hits, sid, model=settings.model_id)
    if not return_all_effects:
        name = names[0]
        return Response(result.images[name], media_type=media_type(fmt), headers=headers)
    body = EffectImages(
        success=True,
        effects={name: base64.b64encode(image).decode("ascii") for name, image in result.images.items()},
        format=fmt,
        processing_time={key: round(value, 4) for key, value in result.timings.items()},
        cache_info=CacheInfo(
            background_removal_hit=result.background_hit,
            effect_cache_hits=result.effect_hits,
            total_cache_hits=result.total_cache_hits,
            total_operations=1 + len(names),
        ),
        session_id=sid,
        total_effects=len(result.images),
        failed_effects=result.failed or None,
    )
    return JSONResponse(body.model_dump(), headers=headers)


@router.post(
    "/api/v2/remove-background",
    openapi_extra=upload_body(json_body=True),
    responses={**with_headers(IMAGE_RESPONSE, FOREGROUND_HEADERS), **ERROR_RESPONSES},
    response_model=None,
    dependencies=[policy(limit=1.0, protected=True)],
)
async def remove_background(
    request: Request,
    output: Annotated[Literal["cutout", "mask"], Query(description="cutout (RGBA) or mask (L)")] = "cutout",
    format: Annotated[Format, Query(description="png (default), webp or jpeg")] = "png",
    bg_color: Annotated[str | None, Query(description="composite on this hex colour instead of transparency")] = None,
    crop: Annotated[bool, Query(description="crop to the subject's bounding box")] = False,
    crop_margin: Annotated[
        str,
        Query(
            max_length=32,
            pattern=MARGIN_PATTERN,
            description=f"margin around the crop: pixels ('12', at most {MAX_MARGIN_PX}) or percent ('10%', "
            f"at most {MAX_MARGIN_PERCENT}%)",
        ),
    ] = "0",
    max_side: Annotated[int | None, Query(ge=1, le=65500, description="longest side of the output")] = None,
    use_cache: Annotated[bool, Query()] = True,
    *,
    pipeline: PipelineDep,
    settings: SettingsDep,
) -> Response:
    """The cut-out or mask as image bytes, with the subject's box in ``X-Foreground-*`` headers.

    No subject found: ``X-Foreground-Found: false`` (and 422 ``no_subject_found`` when ``crop`` asks
    for a crop to it).
    """
    options = RemoveOptions(
        output=output,
        fmt=parse_format(format, "format"),
        bg_color=colour(bg_color),
        crop=crop,
        crop_margin=margin(crop_margin),
        max_side=max_side,
    )
    data = await upload_or_json_image(request, settings.max_upload_bytes)
    result = await unless_disconnected(request, pipeline.remove_background(data, options, use_cache=use_cache))
    headers = processing_headers(result.timings["total"], int(result.cache_hit), model=settings.model_id)
    headers["X-Foreground-Found"] = "true" if result.box else "false"
    if result.box is not None:
        for name, value in zip(("Left", "Top", "Width", "Height"), result.box, strict=True):
            headers[f"X-Foreground-{name}"] = str(value)
    return Response(result.data, media_type=media_type(result.fmt), headers=headers)


async def upload_or_json_image(request: Request, limit: int) -> bytes:
    """The image from multipart ``file`` or from a JSON body's ``image_b64`` (base64 or a data: URL)."""
    if is_form(request):
        async with read_form(request, limit=limit + MULTIPART_SLACK, max_files=2, required=True) as form:
            return await single_file(form, limit=limit)
    if not request.headers.get("content-type", "").lower().startswith("application/json"):
        raise ApiError("Send the image as multipart 'file' or JSON {\"image_b64\": ...}.")
    encoded = parse_image_json(await request.body()).image_b64
    if encoded.startswith("data:"):
        encoded = encoded.partition(",")[2]
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidParameter("image_b64", "not valid base64") from None
    if len(data) > limit:
        raise PayloadTooLarge(f"The image is larger than the upload limit ({limit} bytes).")
    return data
