"""Typed storage errors: :class:`petcut.errors.PetcutError` subclasses, each with its HTTP status and
stable error code (docs/storage.md, docs/api.md)."""

from __future__ import annotations

from typing import Any

from petcut import errors


class StorageError(errors.PetcutError):
    """Base of every error this package raises on purpose."""

    status = 500
    code = "storage_error"
    default_message = "Image storage failed."


class InvalidParameter(StorageError, errors.InvalidParameter):
    """A request parameter is invalid (400); ``field`` names it (message: ``"<field> <problem>"``)."""

    status = 400
    code = "invalid_parameter"

    def __init__(self, field: str, problem: str, **kwargs: Any) -> None:
        errors.PetcutError.__init__(self, f"{field} {problem}", field=field, **kwargs)


class InvalidIdentifier(InvalidParameter):
    """An identifier that would become part of a storage path is unsafe or malformed (400)."""

    code = "invalid_identifier"
    description = "An identifier (session_id, image_type, order_id, ...) is unsafe or malformed."


class UnsupportedMediaType(StorageError, ValueError):
    """The bytes are not an image format we accept (415)."""

    status = 415
    code = "unsupported_media_type"
    default_message = "The file is not an image format we accept."


class PayloadTooLarge(StorageError, errors.PayloadTooLarge, ValueError):
    """The image is larger than the upload limit (413): the shared 413."""

    status = 413
    code = "payload_too_large"

    default_message = "The image is larger than the upload limit."


class ImageNotFound(StorageError, LookupError):
    """No stored image under that key, or nothing to act on (404)."""

    status = 404
    code = "not_found"
    default_message = "No such image."


class StorageUnavailable(StorageError):
    """The backend failed (disk, network, GCS): 503 with ``Retry-After``. The cause is logged, not shown."""

    status = 503
    code = "storage_unavailable"
    default_message = "Image storage is unavailable; retry shortly."

    def __init__(self, message: str | None = None, *, retry_after: int = 5) -> None:
        super().__init__(message, retry_after=retry_after)


class SessionQuotaExceeded(StorageError):
    """A session already holds as many images (429) or bytes (413) as it may."""

    status = 429
    other_statuses = (413,)
    code = "session_quota_exceeded"
    default_message = "This session already holds as many images as it may."
    description = "The session holds as many images (429) or bytes (413) as it may."

    def __init__(self, message: str, *, http_status: int = 429) -> None:
        super().__init__(message, status=http_status)
