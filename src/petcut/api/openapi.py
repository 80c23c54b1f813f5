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


def _error(description: str, example_code: str, retry: bool = False) -> dict[str, Any]:
    example: dict[str, Any] = {
        "success": False,
        "error": {"code": example_code, "message": description, "request_id": "3f2b9c0e5d7a4e1f"},
    }
    headers: dict[str, Any] = {"X-Request-ID": {"schema": {"type": "string"}}}
    if retry:
        example.update(retry_after=5, status="loading")
        headers["Retry-After"] = {"schema": {"type": "integer"}, "description": "seconds"}
    return {
        "model": ErrorEnvelope,
        "description": description,
        "headers": headers,
        "content": {"application/json": {"example": example}},
    }


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _error("A parameter or the body is invalid.", "invalid_parameter"),
    413: _error("The body or the image's pixel count is over the limit.", "payload_too_large"),
    415: _error("Not an image format petcut accepts.", "unsupported_media_type"),
    422: _error("Image data that cannot be decoded, or no subject to crop to.", "invalid_image"),
    429: _error("Too many requests from this client.", "rate_limited", retry=True),
    500: _error("A bug; the request id finds it in the logs.", "internal_error"),
    503: _error("The model is not ready, the queue is full, or the instance is draining.", "model_loading", True),
    504: _error("The inference deadline passed.", "deadline_exceeded"),
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
            "X-Request-ID": {"schema": {"type": "string"}},
        },
    }
}


def upload_body(
    *, extra_fields: dict[str, Any] | None = None, json_body: bool = False
) -> dict[str, Any]:
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
