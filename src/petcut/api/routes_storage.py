"""Customer image storage routes (docs/api.md, docs/storage.md).

``POST /store-image``, ``GET /session/{session_id}/images``, ``POST /session/{session_id}/complete-order``
and, for the local backend, ``GET /images/{key}`` serving the stored bytes. The store comes from
``request.app.state.image_store`` (``petcut.storage.open_store(settings)``). Errors use the service's
envelope ``{"success": false, "error": {"code", "message", "request_id"}}``: 400 ``invalid_identifier`` /
``invalid_parameter``, 404 ``not_found``, 413 ``payload_too_large``, 415 ``unsupported_media_type``,
422 ``invalid_image`` (and the decoder's other codes), 429/413 ``session_quota_exceeded``,
503 ``storage_unavailable`` with ``Retry-After``.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request, Response
from starlette.concurrency import run_in_threadpool

from petcut.api.bodies import CompletedOrder, SessionImages, StoredImageAnswer, StoredImageInfo
from petcut.api.deps import CpuDep, SettingsDep, unless_disconnected
from petcut.api.openapi import error_responses, with_headers
from petcut.api.policy import policy
from petcut.api.uploads import MULTIPART_SLACK, SMALL_FIELD, read_form, single_file, text_field
from petcut.config import Settings
from petcut.storage import (
    ImageNotFound,
    ImageStore,
    StorageUnavailable,
    StoredImage,
    Tier,
    parse_key,
)
from petcut.storage.admission import check_quota, verify_image
from petcut.storage.ids import ID_PATTERN, TEXT_LIMITS, validate_id, validate_tier

log = logging.getLogger("petcut.api.storage")

IMAGE_ROUTE = "petcut_storage_image"
_TEXT_FIELDS = ("session_id", "image_type", "tier", "pet_name", "pet_id", "effect_applied")


router = APIRouter(tags=["customer images"])


async def get_image_store(request: Request) -> ImageStore:
    store: ImageStore | None = getattr(request.app.state, "image_store", None)
    if store is None:
        raise StorageUnavailable("Image storage is not configured.")
    return store


StoreDep = Annotated[ImageStore, Depends(get_image_store)]


class _SessionLocks:
    """A lock per session with an upload being counted and stored (threads: the store calls block)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, int]] = {}

    @contextlib.contextmanager
    def hold(self, session_id: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.get(session_id, (threading.Lock(), 0))
            self._locks[session_id] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._locks[session_id]
                if users <= 1:
                    del self._locks[session_id]
                else:
                    self._locks[session_id] = (lock, users - 1)


def _session_locks(request: Request) -> _SessionLocks:
    locks = getattr(request.app.state, "store_session_locks", None)
    if locks is None:
        locks = request.app.state.store_session_locks = _SessionLocks()
    return locks


def _put_within_quota(
    locks: _SessionLocks, store: ImageStore, session_id: str, data: bytes, settings: Settings, **put: Any
) -> StoredImage:
    """Count the session's images and bytes and store the new one, one upload of a session at a time."""
    with locks.hold(session_id):
        check_quota(
            store,
            session_id,
            len(data),
            max_images=settings.store_max_images_per_session,
            max_bytes=int(settings.store_max_mb_per_session * 1024 * 1024),
        )
        return store.put(session_id, put.pop("image_type"), data, **put)


def _absolute(request: Request, image: StoredImage) -> StoredImage:
    """Local stores return ``/images/<key>`` unless PETCUT_PUBLIC_BASE_URL is set: make it absolute."""
    if image.url.startswith(("http://", "https://")):
        return image
    return replace(image, url=str(request.url_for(IMAGE_ROUTE, key=image.key)))


def _described(request: Request, images: list[StoredImage]) -> list[StoredImageInfo]:
    return [StoredImageInfo.model_validate(_absolute(request, image).to_dict()) for image in images]


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
                        "pet_id": {"type": "string", "pattern": f"^(|{ID_PATTERN})$"},  # empty: not given
                        "effect_applied": {"type": "string", "maxLength": TEXT_LIMITS["effect_applied"]},
                    },
                }
            }
        },
    }
}


# the store validates identifiers itself (400 invalid_identifier); the schema says what it accepts
SessionId = Annotated[str, Path(json_schema_extra={"pattern": _ID_SCHEMA})]
_ORDER_FORM = {
    "schema": {
        "type": "object",
        "required": ["order_id"],
        "properties": {"order_id": {"type": "string", "pattern": _ID_SCHEMA}},
    }
}
_COMPLETE_ORDER_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/x-www-form-urlencoded": _ORDER_FORM, "multipart/form-data": _ORDER_FORM},
    }
}
_IMAGE_BYTES = {
    "description": "The stored bytes, with the stored content type.",
    "content": {
        f"image/{kind}": {"schema": {"type": "string", "format": "binary"}}
        for kind in ("png", "jpeg", "webp", "gif", "heic", "heif", "avif", "tiff")
    },
}


@router.post(
    "/store-image",
    openapi_extra=_STORE_IMAGE_BODY,
    responses=error_responses(400, 401, 413, 415, 422, 429, 500, 503),
    dependencies=[policy(limit=2.0, protected=True)],  # twice processing's: several images per photo
)
async def store_image(request: Request, store: StoreDep, settings: SettingsDep, cpu: CpuDep) -> StoredImageAnswer:
    """Store a customer image; the content type comes from its bytes. Answers its URL.

    Only real images are kept: the file must decode completely as the format its bytes claim (415 not an
    accepted image or markup inside, 422 corrupt, 413 too many pixels); a session holds at most
    ``PETCUT_STORE_MAX_IMAGES_PER_SESSION`` images (429) and ``PETCUT_STORE_MAX_MB_PER_SESSION`` MB (413)."""
    async with read_form(request, limit=store.max_bytes + MULTIPART_SLACK, max_files=2, required=True) as form:
        data = await single_file(form, limit=store.max_bytes)
        fields = {name: text_field(form, name) for name in _TEXT_FIELDS}
    session_id = validate_id("session_id", fields["session_id"])  # None → 400
    validate_id("image_type", fields["image_type"])
    validate_tier(fields["tier"] or Tier.TEMPORARY)
    await unless_disconnected(  # a real, fully decodable image, by the processing routes' bounded decoder
        request,
        cpu.run(
            verify_image,
            data,
            max_bytes=store.max_bytes,
            max_pixels=settings.max_pixels,
            max_scans=settings.max_jpeg_scans,
            timeout_s=settings.decode_timeout_s,
        ),
    )
    image = await run_in_threadpool(
        _put_within_quota,
        _session_locks(request),
        store,
        session_id,
        data,
        settings,
        image_type=fields["image_type"],
        tier=fields["tier"] or Tier.TEMPORARY,
        pet_name=fields["pet_name"],
        pet_id=fields["pet_id"],
        effect_applied=fields["effect_applied"],
    )
    image = _absolute(request, image)
    return StoredImageAnswer(
        success=True,
        url=image.url,
        session_id=image.session_id,
        image_type=image.image_type,
        tier=image.tier.value,
        filename=image.filename,
        content_type=image.content_type,
        size=image.size,
        created_at=image.created_at.isoformat(),
    )


@router.get("/session/{session_id}/images", responses=error_responses(400, 500, 503))
async def list_session_images(session_id: SessionId, request: Request, store: StoreDep) -> SessionImages:
    """Every stored image of the session, in every tier, oldest first."""
    images = await run_in_threadpool(store.list_session, session_id)
    return SessionImages(success=True, session_id=session_id, images=_described(request, images), count=len(images))


@router.post(
    "/session/{session_id}/complete-order",
    openapi_extra=_COMPLETE_ORDER_BODY,
    responses=error_responses(400, 401, 404, 429, 500, 503),
    dependencies=[policy(limit=1.0, protected=True)],
)
async def complete_order(session_id: SessionId, request: Request, store: StoreDep) -> CompletedOrder:
    """Move the session's images to ``order_completed`` under ``order_id`` (form field; query accepted)."""
    async with read_form(request, limit=SMALL_FIELD, max_files=0, required=False) as form:
        order_id = text_field(form, "order_id") or request.query_params.get("order_id")
    images = await run_in_threadpool(store.complete_order, session_id, order_id)  # type: ignore[arg-type]
    return CompletedOrder(
        success=True, session_id=session_id, order_id=order_id, images=_described(request, images), count=len(images)
    )


@router.get(
    "/images/{key:path}",
    name=IMAGE_ROUTE,
    responses={**with_headers({200: _IMAGE_BYTES}, {"Content-Disposition": "inline, with the file name"}),
               **error_responses(404, 500, 503)},
)  # fmt: skip
async def get_image(key: str, store: StoreDep) -> Response:
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
