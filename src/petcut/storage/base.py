"""The :class:`ImageStore` interface, :class:`StoredImage`, and the logic both backends share.

A backend implements a handful of primitives on opaque keys (create-if-absent, list, move, read, delete,
URL); validation, content sniffing, naming, the tier rules and retention live here, once.
"""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, NamedTuple

from petcut.storage.errors import ImageNotFound, PayloadTooLarge, StorageError, StorageUnavailable
from petcut.storage.ids import (
    OPEN_TIERS,
    RETENTION,
    Tier,
    build_key,
    new_token,
    parse_key,
    rekey,
    validate_id,
    validate_optional_id,
    validate_text,
    validate_tier,
)
from petcut.storage.media import require_image

log = logging.getLogger("petcut.storage")

_PUT_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class StoredImage:
    url: str
    session_id: str
    image_type: str
    tier: Tier
    filename: str
    content_type: str
    size: int
    created_at: datetime
    key: str
    pet_name: str | None = None
    pet_id: str | None = None
    effect_applied: str | None = None
    order_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "key": self.key,
            "session_id": self.session_id,
            "image_type": self.image_type,
            "tier": self.tier.value,
            "filename": self.filename,
            "content_type": self.content_type,
            "size": self.size,
            "created_at": self.created_at.isoformat(),
            "pet_name": self.pet_name,
            "pet_id": self.pet_id,
            "effect_applied": self.effect_applied,
            "order_id": self.order_id,
        }


class StoredObject(NamedTuple):
    """What a backend reports for one stored image."""

    key: str
    size: int
    content_type: str
    metadata: dict[str, str]


class KeyExists(Exception):
    """A backend's create-if-absent found the key taken (the caller picks another name)."""


@contextlib.contextmanager
def backend_guard(backend: str, op: str, is_backend_error: Callable[[Exception], bool]) -> Iterator[None]:
    """A backend failure (``is_backend_error``: disk, network, auth) becomes :class:`StorageUnavailable`,
    its cause logged; petcut's own errors and anything else pass through."""
    try:
        yield
    except (StorageError, KeyExists):
        raise
    except Exception as exc:
        if not is_backend_error(exc):
            raise
        log.error("%s %s failed: %s: %s", backend, op, type(exc).__name__, exc)
        raise StorageUnavailable() from exc


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def tier_since(obj: StoredObject) -> datetime:
    """When the image entered its tier (retention counts from there); falls back to its upload time."""
    value = obj.metadata.get("tier_since")
    if value:
        try:
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        except ValueError:
            pass
    parts = parse_key(obj.key)
    assert parts is not None
    return parts.created_at


class ImageStore(ABC):
    """Customer images, by session, in tiers. Thread-safe; every call may block on I/O."""

    backend: ClassVar[str]
    #: True when the app itself serves :meth:`get` at the URLs this store returns (``/images/<key>``).
    serves_own_urls: ClassVar[bool] = False

    def __init__(
        self,
        *,
        max_bytes: int,
        clock: Callable[[], datetime] | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        self.max_bytes = max_bytes
        self._clock = clock or (lambda: datetime.now(UTC))
        self._token = token or new_token

    # --- the public API -------------------------------------------------------------------------
    def put(
        self,
        session_id: str,
        image_type: str,
        data: bytes,
        *,
        tier: Tier | str = Tier.TEMPORARY,
        pet_name: str | None = None,
        pet_id: str | None = None,
        effect_applied: str | None = None,
    ) -> StoredImage:
        """Store ``data`` under a new, never-reused key; its content type comes from its bytes."""
        session_id = validate_id("session_id", session_id)
        image_type = validate_id("image_type", image_type)
        tier = validate_tier(tier)
        pet_id = validate_optional_id("pet_id", pet_id)
        pet_name = validate_text("pet_name", pet_name)
        effect_applied = validate_text("effect_applied", effect_applied)
        if len(data) > self.max_bytes:
            raise PayloadTooLarge(f"The image is larger than the upload limit ({self.max_bytes} bytes).")
        media = require_image(data)
        now = self._clock()
        metadata = {
            "session_id": session_id,
            "image_type": image_type,
            "tier": tier.value,
            "created_at": _iso(now),
            "tier_since": _iso(now),
        }
        optional = {"pet_name": pet_name, "pet_id": pet_id, "effect_applied": effect_applied}
        metadata.update({k: v for k, v in optional.items() if v is not None})
        for _ in range(_PUT_ATTEMPTS):
            key = build_key(tier, session_id, image_type, now, self._token(), media.ext)
            try:
                self._create(key, data, media.content_type, metadata)
            except KeyExists:
                log.warning("storage key collision, picking another name", extra={"key": key})
                continue
            return self._image(StoredObject(key, len(data), media.content_type, metadata))
        raise StorageUnavailable("Could not allocate a unique name for the image; retry.")

    def list_session(self, session_id: str) -> list[StoredImage]:
        """Every image of the session, in every tier, oldest first."""
        session_id = validate_id("session_id", session_id)
        return sorted((self._image(obj) for obj in self._list(session_id)), key=_order)

    def complete_order(self, session_id: str, order_id: str) -> list[StoredImage]:
        """Move the session's temporary and order_pending images to order_completed, recording
        ``order_id``. Idempotent: a retry also returns the images already completed for that order.
        :class:`ImageNotFound` when the session has nothing for the order."""
        session_id = validate_id("session_id", session_id)
        order_id = validate_id("order_id", order_id)
        now = _iso(self._clock())
        done: list[StoredImage] = []
        for obj in list(self._list(session_id)):
            parts = parse_key(obj.key)
            assert parts is not None
            if parts.tier in OPEN_TIERS:
                metadata = {
                    **obj.metadata,
                    "tier": Tier.ORDER_COMPLETED.value,
                    "tier_since": now,
                    "order_id": order_id,
                    "completed_at": now,
                }
                new_key = rekey(parts, Tier.ORDER_COMPLETED)
                self._move(obj.key, new_key, obj.content_type, metadata)
                done.append(self._image(StoredObject(new_key, obj.size, obj.content_type, metadata)))
            elif parts.tier is Tier.ORDER_COMPLETED and obj.metadata.get("order_id") == order_id:
                done.append(self._image(obj))
        if not done:
            raise ImageNotFound("No images stored for this session (or this order).")
        return sorted(done, key=_order)

    def get(self, key: str) -> tuple[bytes, str]:
        """The bytes and content type stored under ``key``; :class:`ImageNotFound` for any other key."""
        if parse_key(key) is None:
            raise ImageNotFound("No such image.")
        return self._read(key)

    def purge_expired(self, now: datetime | None = None) -> list[str]:
        """Delete the images whose tier retention has run out (see ``RETENTION``); returns their keys."""
        now = now or self._clock()
        deleted = []
        for tier, retention in RETENTION.items():
            if retention is None:
                continue
            for obj in list(self._list_tier(tier)):
                if tier_since(obj) + retention <= now:
                    self._delete(obj.key)
                    deleted.append(obj.key)
        return deleted

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections (optional)."""

    # --- what a backend implements --------------------------------------------------------------
    @abstractmethod
    def url_for(self, key: str) -> str:
        """Where a client fetches the image stored under ``key``."""

    @abstractmethod
    def _create(self, key: str, data: bytes, content_type: str, metadata: dict[str, str]) -> None:
        """Store a new object, atomically; raise :class:`KeyExists` if ``key`` is taken (never overwrite)."""

    @abstractmethod
    def _list(self, session_id: str) -> Iterable[StoredObject]:
        """The session's objects in every tier (keys that :func:`parse_key` accepts only)."""

    @abstractmethod
    def _list_tier(self, tier: Tier) -> Iterable[StoredObject]:
        """Every object of a tier."""

    @abstractmethod
    def _move(self, src: str, dst: str, content_type: str, metadata: dict[str, str]) -> None:
        """Move ``src`` to ``dst`` with new metadata; idempotent (a retry after a partial move completes it)."""

    @abstractmethod
    def _read(self, key: str) -> tuple[bytes, str]:
        """Bytes and content type; :class:`ImageNotFound` if absent."""

    @abstractmethod
    def _delete(self, key: str) -> None:
        """Delete an object (absent is fine)."""

    # --- helpers --------------------------------------------------------------------------------
    def _image(self, obj: StoredObject) -> StoredImage:
        parts = parse_key(obj.key)
        assert parts is not None
        meta = obj.metadata
        return StoredImage(
            url=self.url_for(obj.key),
            session_id=parts.session_id,
            image_type=parts.image_type,
            tier=parts.tier,
            filename=parts.filename,
            content_type=obj.content_type,
            size=obj.size,
            created_at=parts.created_at,
            key=obj.key,
            pet_name=meta.get("pet_name"),
            pet_id=meta.get("pet_id"),
            effect_applied=meta.get("effect_applied"),
            order_id=meta.get("order_id"),
        )


def _order(image: StoredImage) -> tuple[datetime, str]:
    return image.created_at, image.key
