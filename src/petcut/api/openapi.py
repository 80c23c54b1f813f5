"""What the OpenAPI schema says about bodies and errors, shared by the routes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_parameter"], description="stable snake_case code")
    message: str = Field(examples=["max_side: must be at least 1"], description="for a person")
    request_id: str = Field(examples=["3f2b9c0e5d7a4e1f9b8c7d6e5f4a3b2c"])


class ErrorEnvelope(BaseModel):
    success: bool = Field(False, examples=[False])
    error: ErrorDetail
    retry_after: int | None = Field(None, description="seconds; on 503 and 429")
    status: str | None = Field(None, description="the model runtime's state; on 503")

    model_config = {"extra": "allow"}


def _error(
    description: str,
    example_code: str,
    retry: bool = False,
    *,
    status: str | None = None,
    headers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    example: dict[str, Any] = {
        "success": False,
        "error": {"code": example_code, "message": description, "request_id": "3f2b9c0e5d7a4e1f"},
    }
    documented: dict[str, Any] = {"X-Request-ID": {"schema": {"type": "string"}}, **(headers or {})}
    if retry:
        example["retry_after"] = 5
        documented["Retry-After"] = {"schema": {"type": "integer"}, "description": "seconds", "required": True}
    if status is not None:
        example["status"] = status
    return {
        "model": ErrorEnvelope,
        "description": description,
        "headers": documented,
        "content": {"application/json": {"example": example}},
    }


_RATE_LIMIT_HEADERS = {
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
}

#: Every error petcut answers, by status; routes pick theirs with :func:`error_responses`.
ERROR_CATALOGUE: dict[int, dict[str, Any]] = {
    400: _error("A parameter or the body is invalid.", "invalid_parameter"),
    401: _error(
        "This route needs an API key (PETCUT_REQUIRE_API_KEY), or the key sent is not valid.",
        "unauthorized",
        headers={"WWW-Authenticate": {"schema": {"type": "string"}, "example": 'Bearer realm="petcut"'}},
    ),
    404: _error("No such resource.", "not_found"),
    413: _error("The body or the image's pixel count is over the limit.", "payload_too_large"),
    415: _error("Not an image format petcut accepts.", "unsupported_media_type"),
    422: _error("Image data that cannot be decoded, or no subject to crop to.", "invalid_image"),
    429: _error("Too many requests from this client (or API key).", "rate_limited", True, headers=_RATE_LIMIT_HEADERS),
    500: _error("A bug; the request id finds it in the logs.", "internal_error"),
    503: _error(
        "The model is not ready, the queue is full, or the instance is draining.",
        "model_loading",
        True,
        status="loading",
    ),
    504: _error("The inference deadline passed.", "deadline_exceeded"),
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {status: ERROR_CATALOGUE[status] for status in statuses}


#: The processing routes' errors (401 only when API keys are required; 429 per client, see docs/security.md).
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = error_responses(400, 401, 413, 415, 422, 429, 500, 503, 504)


def json_example(description: str, example: dict[str, Any], **headers: str) -> dict[str, Any]:
    """A JSON 2xx answer documented by example (the routes build their bodies by hand)."""
    response: dict[str, Any] = {"description": description, "content": {"application/json": {"example": example}}}
    if headers:
        response["headers"] = {
            name: {"schema": {"type": "string"}, "description": text} for name, text in headers.items()
        }
    return response


_WARMUP_FIELDS: dict[str, Any] = {
    "total_time": 2.41,
    "model_load_time": 1.9,
    "warmup_time": 0.48,
    "device": "cuda",
    "mode": "base",
    "resize": "static",
    "state": "ready",
}
_WARMUP_HEADERS = {
    "X-Warmup-Status": "success, partial, error, loading, draining or poisoned",
    "X-Model-Ready": "true or false",
    "X-Warmup-Time": "seconds",
}

HEALTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: json_example(
        "The process can serve (whatever the model is doing).",
        {
            "status": "healthy",
            "container_ready": True,
            "model_ready": True,
            "model_status": "ready",
            "uptime_s": 12.5,
            "version": "0.1.0",
        },
    ),
    503: _error("A device fault poisoned this instance: the platform should replace it.", "device_fault", True),
}

READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: json_example(
        "The model is loaded and its warmup passed.",
        {"success": True, "ready": True, "status": "ready", "reason": "", "since": 1700000000.0},
    ),
    503: _error(
        "Not ready: loading, warming, degraded, failed, draining or poisoned.", "not_ready", True, status="loading"
    ),
}

WARMUP_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: json_example(
        "The model is loaded and the warmup inferences passed.",
        {"success": True, "status": "success", "model_ready": True, "message": "", **_WARMUP_FIELDS},
        **_WARMUP_HEADERS,
    ),
    206: json_example(
        "The model is loaded but a warmup inference failed (the message says why).",
        {
            "success": False,
            "status": "partial",
            "model_ready": True,
            "message": "warmup inference failed",
            **_WARMUP_FIELDS,
        },
        **_WARMUP_HEADERS,
    ),
    **error_responses(429),
    500: _error("The model could not be loaded.", "model_load_failed"),
    503: _error(
        "The load did not finish within the wait, or the instance is draining.", "model_loading", True, status="loading"
    ),
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
            "X-Model": {"schema": {"type": "string"}, "description": "the model that cut the image out: "
                        "inspyrenet-<mode> or isnet-<variant>"},
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
