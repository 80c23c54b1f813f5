"""Typed storage errors; each knows its HTTP status and stable error code (docs/storage.md)."""

from __future__ import annotations


class StorageError(Exception):
    """Base of every error this package raises on purpose."""

    http_status = 500
    code = "storage_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParameter(StorageError, ValueError):
    """A request parameter is invalid (400); ``field`` names it."""

    http_status = 400
    code = "invalid_parameter"

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field


class InvalidIdentifier(InvalidParameter):
    """An identifier that would become part of a storage path is unsafe or malformed (400)."""

    code = "invalid_identifier"


class UnsupportedMediaType(StorageError, ValueError):
    """The bytes are not an image format we accept (415)."""

    http_status = 415
    code = "unsupported_media_type"


class PayloadTooLarge(StorageError, ValueError):
    """The image is larger than the upload limit (413)."""

    http_status = 413
    code = "payload_too_large"


class ImageNotFound(StorageError, LookupError):
    """No stored image under that key, or nothing to act on (404)."""

    http_status = 404
    code = "not_found"


class StorageUnavailable(StorageError):
    """The backend failed (disk, network, GCS): 503 with ``Retry-After``. The cause is logged, not shown."""

    http_status = 503
    code = "storage_unavailable"

    def __init__(self, message: str = "Image storage is unavailable; retry shortly.", *, retry_after: int = 5):
        super().__init__(message)
        self.retry_after = retry_after


class SessionQuotaExceeded(StorageError):
    """A session already holds as many images (429) or bytes (413) as it may."""

    http_status = 429
    code = "session_quota_exceeded"
    retry_after: int | None = None

    def __init__(self, message: str, *, http_status: int = 429) -> None:
        super().__init__(message)
        self.http_status = http_status
