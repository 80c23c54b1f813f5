"""Customer image storage routes (api.md, "Customer image storage").

``POST /store-image``, ``GET /session/{session_id}/images``, ``POST /session/{session_id}/complete-order``
and, for the local backend, ``GET /images/{key}`` serving the stored bytes. The store comes from
``request.app.state.image_store`` (``petcut.storage.open_store(settings)``). Errors use the service's
envelope ``{"success": false, "error": {"code", "message", "request_id"}}``: 400 ``invalid_identifier`` /
``invalid_parameter``, 404 ``not_found``, 413 ``payload_too_large``, 415 ``unsupported_media_type``,
503 ``storage_unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from petcut.storage import (
    ImageNotFound,
    ImageStore,
    InvalidParameter,
    PayloadTooLarge,
    StorageError,
    StorageUnavailable,
    StoredImage,
    Tier,
    parse_key,
)
from petcut.storage.ids import ID_PATTERN, TEXT_LIMITS

log = logging.getLogger("petcut.api.storage")

IMAGE_ROUTE = "petcut_storage_image"
#: multipart framing on top of the image (boundaries, part headers, the small text fields)
MULTIPART_SLACK = 256 * 1024
_SMALL_FORM = 64 * 1024
_TEXT_FIELDS = ("session_id", "image_type", "tier", "pet_name", "pet_id", "effect_applied")


class _RequestError(StorageError):
    """A malformed request (not multipart, no file part)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = status
        self.code = code


class _BodyTooLarge(Exception):
    pass


def request_id(request: Request) -> str:
    rid = request.scope.get("petcut.request_id") or getattr(request.state, "request_id", None)
    return str(rid or request.headers.get("x-request-id") or uuid.uuid4().hex)


def storage_error_response(request: Request, exc: StorageError) -> JSONResponse:
    error: dict[str, Any] = {"code": exc.code, "message": exc.message, "request_id": request_id(request)}
    if isinstance(exc, InvalidParameter):
        error["field"] = exc.field
    body: dict[str, Any] = {"success": False, "error": error}
    headers = {}
    if isinstance(exc, StorageUnavailable):
        headers["Retry-After"] = str(exc.retry_after)
        body.update(retry_after=exc.retry_after, status="unavailable")
    log.info("storage request refused: %s", exc.code, extra={"code": exc.code, "status": exc.http_status})
    return JSONResponse(body, status_code=exc.http_status, headers=headers)


class StorageRoute(APIRoute):
    """Turns the storage errors raised by a handler or its dependencies into the JSON envelope."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except StorageError as exc:
                return storage_error_response(request, exc)

        return handle


router = APIRouter(route_class=StorageRoute, tags=["customer images"])


def get_image_store(request: Request) -> ImageStore:
    store = getattr(request.app.state, "image_store", None)
    if store is None:
        raise StorageUnavailable("Image storage is not configured.")
    return store


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise _BodyTooLarge()
        return message

    return limited_receive


@asynccontextmanager
async def _form(request: Request, *, limit: int, max_files: int, required: bool) -> AsyncIterator[FormData]:
    """The form body, read with a byte limit enforced while it streams in (413 before it is all read)."""
    content_type = request.headers.get("content-type", "").lower()
    if not content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        if required:
            raise _RequestError(400, "bad_request", "Expected a multipart/form-data body.")
        yield FormData()
        return
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise PayloadTooLarge("The request body is larger than the upload limit.")
    limited = Request(request.scope, _limited(request.receive, limit))
    try:
        form = await limited.form(max_files=max_files, max_fields=16, max_part_size=_SMALL_FORM)
    except _BodyTooLarge:
        raise PayloadTooLarge("The request body is larger than the upload limit.") from None
    except StarletteHTTPException as exc:  # malformed multipart
        raise _RequestError(400, "bad_request", str(exc.detail)) from None
    try:
        yield form
    finally:
        await form.close()


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidParameter(name, "must be a text field, not a file")


def _absolute(request: Request, image: StoredImage) -> StoredImage:
    """Local stores return ``/images/<key>`` unless PETCUT_PUBLIC_BASE_URL is set: make it absolute."""
    if image.url.startswith(("http://", "https://")):
        return image
    return replace(image, url=str(request.url_for(IMAGE_ROUTE, key=image.key)))


_ID_SCHEMA = f"^{ID_PATTERN}$"
_STORE_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file", "session_id", "image_type"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "session_id": {"type": "string", "pattern": _ID_SCHEMA},
                        "image_type": {"type": "string", "pattern": _ID_SCHEMA},
                        "tier": {"type": "string", "enum": [t.value for t in Tier], "default": "temporary"},
                        "pet_name": {"type": "string", "maxLength": TEXT_LIMITS["pet_name"]},
                        "pet_id": {"type": "string", "pattern": _ID_SCHEMA},
                        "effect_applied": {"type": "string", "maxLength": TEXT_LIMITS["effect_applied"]},
                    },
                }
            }
        },
    }
}


@router.post("/store-image", openapi_extra=_STORE_IMAGE_BODY)
async def store_image(request: Request, store: ImageStore = Depends(get_image_store)) -> dict[str, Any]:
    """Store a customer image; the content type comes from its bytes. Answers its URL."""
    async with _form(request, limit=store.max_bytes + MULTIPART_SLACK, max_files=1, required=True) as form:
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise _RequestError(400, "missing_file", "The image is missing: send it in the multipart part 'file'.")
        data = await upload.read(store.max_bytes + 1)
        fields = {name: _text(form, name) for name in _TEXT_FIELDS}
    if len(data) > store.max_bytes:
        raise PayloadTooLarge(f"The image is larger than the upload limit ({store.max_bytes} bytes).")
    image = await run_in_threadpool(
        store.put,
        fields["session_id"],  # type: ignore[arg-type] - validated by put (None → invalid_identifier)
        fields["image_type"],  # type: ignore[arg-type]
        data,
        tier=fields["tier"] or Tier.TEMPORARY,
        pet_name=fields["pet_name"],
        pet_id=fields["pet_id"],
        effect_applied=fields["effect_applied"],
    )
    image = _absolute(request, image)
    return {
        "success": True,
        "url": image.url,
        "session_id": image.session_id,
        "image_type": image.image_type,
        "tier": image.tier.value,
        "filename": image.filename,
        "content_type": image.content_type,
        "size": image.size,
        "created_at": image.created_at.isoformat(),
    }


@router.get("/session/{session_id}/images")
async def list_session_images(
    session_id: str, request: Request, store: ImageStore = Depends(get_image_store)
) -> dict[str, Any]:
    """Every stored image of the session, in every tier, oldest first."""
    images = await run_in_threadpool(store.list_session, session_id)
    return {
        "success": True,
        "session_id": session_id,
        "images": [_absolute(request, image).to_dict() for image in images],
        "count": len(images),
    }


@router.post("/session/{session_id}/complete-order")
async def complete_order(
    session_id: str, request: Request, store: ImageStore = Depends(get_image_store)
) -> dict[str, Any]:
    """Move the session's images to ``order_completed`` under ``order_id`` (form field; query accepted)."""
    async with _form(request, limit=_SMALL_FORM, max_files=0, required=False) as form:
        order_id = _text(form, "order_id") or request.query_params.get("order_id")
    images = await run_in_threadpool(store.complete_order, session_id, order_id)  # type: ignore[arg-type]
    return {
        "success": True,
        "session_id": session_id,
        "order_id": order_id,
        "images": [_absolute(request, image).to_dict() for image in images],
        "count": len(images),
    }


@router.get("/images/{key:path}", name=IMAGE_ROUTE)
async def get_image(key: str, store: ImageStore = Depends(get_image_store)) -> Response:
    """The stored bytes, with the stored content type (local backend; GCS URLs point at GCS)."""
    if not store.serves_own_urls or parse_key(key) is None:
        raise ImageNotFound("No such image.")
    data, content_type = await run_in_threadpool(store.get, key)
    return Response(
        data,
        media_type=content_type,
        headers={
            "Cache-Control": "private, max-age=86400",
            "X-Content-Type-Options": "nosniff",
            "Content-Disposition": f'inline; filename="{key.rsplit("/", 1)[-1]}"',
        },
    )
