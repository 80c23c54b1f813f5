"""Errors raised for images a client sent that cannot be used.

Each class carries a stable snake_case ``code`` and the HTTP status that tells the truth about it
(docs/api.md); the API layer turns them into JSON error bodies. Messages are for a person and
never contain file paths or library internals (the original exception is chained as ``__cause__``).
"""

from __future__ import annotations


class ImageError(Exception):
    """Base class: the client's image cannot be used (a 4xx, never a 500)."""

    code: str = "invalid_image"
    http_status: int = 400
    default_message: str = "The image cannot be used."

    def __init__(self, message: str | None = None, *, code: str | None = None) -> None:
        self.message = message or self.default_message
        if code is not None:
            self.code = code  # instance override, e.g. "too_many_pixels" on an ImageTooLarge
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class EmptyImage(ImageError):
    code = "empty_file"
    http_status = 400
    default_message = "The uploaded file is empty."


class ImageTooLarge(ImageError):
    """Over a size limit: bytes (``PayloadTooLarge``) or pixels (``TooManyPixels``)."""

    code = "payload_too_large"
    http_status = 413
    default_message = "The image is too large."


class PayloadTooLarge(ImageTooLarge):
    code = "payload_too_large"
    default_message = "The file is larger than the upload limit."


class TooManyPixels(ImageTooLarge):
    code = "too_many_pixels"
    default_message = "The image has more pixels than the limit."


class DecompressionBomb(TooManyPixels):
    """A small file that would expand to a huge image (Pillow's DecompressionBombError/Warning)."""

    default_message = "The image declares far more pixels than allowed (possible decompression bomb)."


class UnsupportedImageFormat(ImageError):
    code = "unsupported_media_type"
    http_status = 415
    default_message = (
        "This file is not an image format we accept. Accepted: JPEG, PNG, WebP, HEIC/HEIF, AVIF, GIF, TIFF."
    )


class ImageDecodeError(ImageError):
    code = "invalid_image"
    http_status = 422
    default_message = "The image data is truncated or corrupt and cannot be decoded."
