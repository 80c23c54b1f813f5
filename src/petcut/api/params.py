"""Pydantic models for the request parameters that are more than a plain scalar.

Hand-written checks let a deeply nested JSON body (``RecursionError``), a 400-digit number
(``OverflowError``) or a huge ``crop_margin`` percentage reach code that raised a 500. These models
bound what can be said at all, before any model work: JSON is parsed by pydantic's parser (nesting
limited), numbers are finite and in range, containers are short. Each failure is a 400: an
:class:`~petcut.errors.InvalidParameter` naming the field, or for the JSON body of remove-background a
``missing_file`` / ``bad_request`` (docs/api.md).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from petcut.api.errors import ApiError, MissingFile
from petcut.errors import InvalidParameter

__all__ = [
    "MARGIN_PATTERN",
    "MAX_MARGIN_PERCENT",
    "MAX_MARGIN_PX",
    "ImageJson",
    "Margin",
    "parse_effect_params",
    "parse_image_json",
    "parse_margin",
]

#: crop_margin: at most this many pixels, or this percentage of the subject's larger side
MAX_MARGIN_PX = 65500
MAX_MARGIN_PERCENT = 1000
#: what the OpenAPI schema says crop_margin looks like (pixels "12", "12px", "1.5px" or a percentage "10%")
MARGIN_PATTERN = r"^\s*\d{1,6}(\.\d{1,6})?\s*(px|%)?\s*$"
_MARGIN = re.compile(MARGIN_PATTERN)

#: effect parameters: the largest magnitude any number may have (every declared range is far inside)
MAX_NUMBER = 1e9


_UNION_TAGS = re.compile(r"(constrained-)?(bool|int|float|str)|list\[.*")


def _describe(exc: ValidationError, limit: int = 3) -> str:
    """One message per location; of a union's alternatives, the most telling (a range, not a type)."""
    by_place: dict[str, ErrorDetails] = {}
    for error in exc.errors(include_url=False):
        place = ".".join(str(p) for p in error.get("loc", ()) if not _UNION_TAGS.fullmatch(str(p)))
        kept = by_place.get(place)
        if kept is None or (kept["type"].endswith(("_type", "_parsing")) and not error["type"].endswith("_type")):
            by_place[place] = error
    parts = [f"{place}: {error['msg']}" if place else str(error["msg"]) for place, error in by_place.items()]
    return "; ".join(parts[:limit])


# --- crop_margin ---------------------------------------------------------------------------------------
class Margin(BaseModel):
    """A crop margin: pixels or a percentage of the subject's larger side, finite and bounded."""

    model_config = ConfigDict(frozen=True)

    value: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    unit: Literal["px", "%"] = "px"

    def model_post_init(self, context: Any) -> None:
        top = MAX_MARGIN_PX if self.unit == "px" else MAX_MARGIN_PERCENT
        if self.value > top:
            raise ValueError(f"at most {top}{self.unit}")

    def __str__(self) -> str:
        return f"{self.value:g}{'%' if self.unit == '%' else ''}"


def parse_margin(text: str, field: str = "crop_margin") -> Margin:
    match = _MARGIN.fullmatch(text or "")
    if match is None:
        raise InvalidParameter(field, "expected pixels ('12', '12px') or a percentage ('10%')")
    number = text.strip().removesuffix("px").removesuffix("%").strip()
    try:
        return Margin(value=float(number), unit="%" if text.strip().endswith("%") else "px")
    except (ValidationError, ValueError) as exc:
        detail = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
        raise InvalidParameter(field, f"{detail} (at most {MAX_MARGIN_PX}px or {MAX_MARGIN_PERCENT}%)") from None


# --- effect_params JSON -------------------------------------------------------------------------------
Number = Annotated[float, Field(ge=-MAX_NUMBER, le=MAX_NUMBER, allow_inf_nan=False, strict=True)]
Integer = Annotated[StrictInt, Field(ge=-int(MAX_NUMBER), le=int(MAX_NUMBER))]
Name = Annotated[str, Field(max_length=64)]
Scalar = StrictBool | Integer | Number | Annotated[str, Field(max_length=256)]
Element = StrictBool | Integer | Number | Annotated[str, Field(max_length=64)]
Value = Scalar | Annotated[list[Element], Field(max_length=64)]
EffectParamsModel = Annotated[dict[Name, Annotated[dict[Name, Value], Field(max_length=32)]], Field(max_length=16)]
_EFFECT_PARAMS = TypeAdapter(EffectParamsModel)


def parse_effect_params(raw: str | bytes, field: str = "effect_params") -> dict[str, dict[str, Any]]:
    """``{"effect": {"param": value}}``: values are finite numbers within ±1e9, booleans, short strings
    or short lists of those; anything else (deep nesting, huge numbers, not JSON) → an
    :class:`~petcut.errors.InvalidParameter`."""
    try:
        return _EFFECT_PARAMS.validate_json(raw)
    except ValidationError as exc:
        expected = 'expected a JSON object {"effect": {"param": value}}'
        raise InvalidParameter(field, f"{expected}: {_describe(exc)}") from None


# --- the JSON body of remove-background ---------------------------------------------------------------
class ImageJson(BaseModel):
    """``{"image_b64": "<base64 or a data: URL>"}``; other keys are ignored."""

    image_b64: Annotated[str, Field(min_length=1)]


_IMAGE_JSON = TypeAdapter(ImageJson)


def parse_image_json(body: bytes) -> ImageJson:
    try:
        return _IMAGE_JSON.validate_json(body)
    except ValidationError as exc:
        kinds = {error["type"] for error in exc.errors()}
        if kinds & {"json_invalid", "recursion_loop"} or not body.strip():
            raise ApiError("The JSON body is not valid JSON (or is nested too deeply).", field="body") from None
        raise MissingFile("The JSON body needs a non-empty 'image_b64' string.") from None
