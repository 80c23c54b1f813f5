"""What the OpenAPI schema says about bodies and errors, shared by the routes.

The error responses are generated from the :class:`~petcut.errors.PetcutError` classes (docs/api.md,
"Errors"): :func:`error_catalogue` groups every class imported so far by status, and each documented
error response lists the codes of its status with each class's description, an example
:class:`~petcut.api.errors.ErrorEnvelope` per code, and the headers the classes send. A route names its
statuses with :func:`error_responses`; the text is built again whenever the schema is written, so classes
defined in modules imported after the routes (middleware, rate limiting) are included.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from petcut.api.bodies import (
    Health,
    HealthRefusal,
    Ready,
    ReadyRefusal,
    WarmupRefusal,
    WarmupReport,
)
from petcut.api.errors import CODE_BY_STATUS, ErrorEnvelope, envelope
from petcut.errors import PetcutError, error_classes

EXAMPLE_REQUEST_ID = "3f2b9c0e5d7a4e1f9b8c7d6e5f4a3b2c"

#: how each header an error may send is documented
HEADER_DOCS: dict[str, dict[str, Any]] = {
    "X-Request-ID": {"schema": {"type": "string"}, "description": "the request id, also in the body"},
    "Retry-After": {"schema": {"type": "integer"}, "description": "seconds"},
    "WWW-Authenticate": {"schema": {"type": "string"}, "example": 'Bearer realm="petcut"'},
    "RateLimit-Policy": {
        "schema": {"type": "string"},
        "description": 'draft-ietf-httpapi-ratelimit-headers: "<route>";q=<burst>;w=<seconds to refill it>',
        "example": '"remove-background";q=30;w=60',
    },
    "RateLimit": {
        "schema": {"type": "string"},
        "description": '"<route>";r=<requests left>;t=<seconds until one more is allowed>',
        "example": '"remove-background";r=0;t=2',
    },
    "Connection": {"schema": {"type": "string"}, "example": "close"},
}


def error_catalogue() -> dict[int, list[type[PetcutError]]]:
    """Every :class:`PetcutError` class imported so far, by each status it may answer, by status."""
    catalogue: dict[int, list[type[PetcutError]]] = {}
    for cls in error_classes():
        for status in dict.fromkeys((cls.status, *cls.other_statuses)):
            catalogue.setdefault(status, []).append(cls)
    return dict(sorted(catalogue.items()))


def _headers_sent(cls: type[PetcutError], status: int) -> set[str]:
    return {*cls.response_headers, *(("Retry-After",) if status == 503 else ())}


def error_document(status: int, classes: list[type[PetcutError]] | None = None) -> dict[str, Any]:
    """The OpenAPI response for ``status``: its codes (the most general class of each describes it), an
    example envelope per code, and the headers (required when every class sends them)."""
    if classes is None:
        classes = error_catalogue().get(status, [])
    by_code: dict[str, type[PetcutError]] = {}
    for cls in sorted(classes, key=lambda c: len(c.__mro__)):
        by_code.setdefault(cls.code, cls)
    if not by_code:
        code = CODE_BY_STATUS.get(status, "error")
        try:
            described = {code: HTTPStatus(status).phrase + "."}
        except ValueError:  # 499 and other statuses outside the standard
            described = {code: code}
    else:
        described = {code: cls.documented_as() for code, cls in by_code.items()}
    state = "loading" if status == 503 else None
    retry_after = 5 if status == 503 else None
    examples = {
        code: {
            "summary": text,
            "value": envelope(code, text, EXAMPLE_REQUEST_ID, retry_after=retry_after, status=state),
        }
        for code, text in described.items()
    }
    headers: dict[str, Any] = {"X-Request-ID": HEADER_DOCS["X-Request-ID"]}
    sent = [_headers_sent(cls, status) for cls in classes]
    for name in sorted(set().union(*sent)):
        doc = dict(HEADER_DOCS.get(name, {"schema": {"type": "string"}}))
        if all(name in each for each in sent):
            doc["required"] = True
        headers[name] = doc
    return {
        "model": ErrorEnvelope,
        "description": "\n".join(f"- `{code}`: {text}" for code, text in described.items()),
        "headers": headers,
        "content": {"application/json": {"examples": examples}},
    }


class _ErrorDocument(dict[str, Any]):
    """:func:`error_document` for one status, written again when FastAPI copies it into the schema
    (it deep-copies every documented response), so it holds the classes imported by then."""

    def __init__(self, status: int) -> None:
        super().__init__(error_document(status))
        self.status = status

    def __deepcopy__(self, memo: dict[int, Any]) -> dict[str, Any]:
        return copy.deepcopy(error_document(self.status), memo)

    def __getitem__(self, key: str) -> Any:  # readers of the route (the exposed headers) see it current too
        return error_document(self.status)[key]

    def get(self, key: str, default: Any = None) -> Any:
        return error_document(self.status).get(key, default)


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: _ErrorDocument(status) for status in statuses}


#: The processing routes' errors (401 only when API keys are required; 429 per client, see docs/security.md).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = error_responses(400, 401, 413, 415, 422, 429, 500, 503, 504)


def _retry_after() -> dict[str, Any]:
    return {"Retry-After": {**HEADER_DOCS["Retry-After"], "required": True}}


def text_headers(headers: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Response headers documented as strings: name → description."""
    return {name: {"schema": {"type": "string"}, "description": text} for name, text in headers.items()}


def with_headers(
    responses: Mapping[int | str, dict[str, Any]], headers: Mapping[str, str], status: int | str = 200
) -> dict[int | str, dict[str, Any]]:
    """A copy of ``responses`` whose ``status`` answer also documents ``headers`` (name → description); the
    headers routes document are the ones browsers may read (:func:`petcut.api.policy.exposed_headers`)."""
    merged = dict(responses)
    response = dict(merged.get(status, {"description": "Successful Response"}))
    response["headers"] = {**response.get("headers", {}), **text_headers(headers)}
    merged[status] = response
    return merged


_WARMUP_HEADERS = text_headers(
    {
        "X-Warmup-Status": "success, partial, error, loading, draining or poisoned",
        "X-Model-Ready": "true or false",
        "X-Warmup-Time": "seconds",
    }
)

HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Health, "description": "The process can serve (whatever the model is doing)."},
    503: {
        "model": HealthRefusal,
        "description": "A device fault poisoned this instance (`device_fault`): the platform should replace it.",
        "headers": _retry_after(),
    },
}

READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Ready, "description": "The model is loaded and its warmup passed."},
    503: {
        "model": ReadyRefusal,
        "description": "Not ready (`not_ready`): loading, warming, degraded, failed, draining or poisoned.",
        "headers": _retry_after(),
    },
}

WARMUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "model": WarmupReport,
        "description": "The model is loaded and the warmup inferences passed.",
        "headers": _WARMUP_HEADERS,
    },
    206: {
        "model": WarmupReport,
        "description": "The model is loaded but a warmup inference failed (the message says why).",
        "headers": _WARMUP_HEADERS,
    },
    **error_responses(429),
    500: {
        "model": WarmupRefusal,
        "description": "The model could not be loaded (`model_load_failed`).",
        "headers": _WARMUP_HEADERS,
    },
    503: {
        "model": WarmupRefusal,
        "description": "The load did not finish within the wait (`model_loading`), or the instance is draining "
        "(`unavailable`).",
        "headers": {**_WARMUP_HEADERS, **_retry_after()},
    },
}

IMAGE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Image bytes (png, webp or jpeg), or JSON with base64 images when asked for.",
        "content": {
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "image/webp": {"schema": {"type": "string", "format": "binary"}},
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
        },
        "headers": {
            "X-Processing-Time": {"schema": {"type": "string"}, "description": "seconds"},
            "X-Cache-Hits": {"schema": {"type": "string"}},
            "X-Model": {
                "schema": {"type": "string"},
                "description": "the model that cut the image out: inspyrenet-<mode> or isnet-<variant>",
            },
            "X-Request-ID": {"schema": {"type": "string"}},
        },
    }
}


def upload_body(*, extra_fields: dict[str, Any] | None = None, json_body: bool = False) -> dict[str, Any]:
    """``openapi_extra`` documenting a multipart body with the image in ``file`` (and JSON ``image_b64``)."""
    multipart = {
        "schema": {
            "type": "object",
            "required": ["file"],
            "properties": {"file": {"type": "string", "format": "binary"}, **(extra_fields or {})},
        }
    }
    content: dict[str, Any] = {"multipart/form-data": multipart}
    if json_body:
        content["application/json"] = {
            "schema": {
                "type": "object",
                "required": ["image_b64"],
                "properties": {"image_b64": {"type": "string", "description": "base64 or a data: URL"}},
            }
        }
    return {"requestBody": {"required": True, "content": content}}
