"""Errors raised for images a client sent that cannot be used.

Each class is a :class:`petcut.errors.PetcutError` with a stable snake_case ``code`` and the HTTP
``status`` that tells the truth about it (docs/api.md); the API layer turns them into JSON error bodies.
Messages are for a person and never contain file paths or library internals (the original exception is
chained as ``__cause__``).
"""

from __future__ import annotations

from petcut import errors


class ImageError(errors.PetcutError):
    """Base class: the client's image cannot be used (a 4xx, never a 500)."""

    status = 400
    code = "invalid_image"
    default_message = "The image cannot be used."

    @property
    def http_status(self) -> int:
        """The same as ``status`` (the name this package used before the shared error model)."""
        return self.status


class EmptyImage(ImageError):
    code = "empty_file"
    default_message = "The uploaded file is empty."


class ImageTooLarge(ImageError):
    """Over a size limit: bytes (``PayloadTooLarge``) or pixels (``TooManyPixels``)."""

    code = "payload_too_large"
    status = 413
    default_message = "The image is too large."


class PayloadTooLarge(ImageTooLarge, errors.PayloadTooLarge):
    """The file is larger than the upload limit: the shared 413 (:class:`petcut.errors.PayloadTooLarge`)."""

    code = "payload_too_large"
    default_message = "The file is larger than the upload limit."


class TooManyPixels(ImageTooLarge):
    code = "too_many_pixels"
    default_message = "The image has more pixels than the limit."
    description = "The image's pixel count (from its header) is over the limit."


class DecompressionBomb(TooManyPixels):
    """A small file that would expand to a huge image (Pillow's DecompressionBombError/Warning)."""

    default_message = "The image declares far more pixels than allowed (possible decompression bomb)."


class UnsupportedImageFormat(ImageError):
    code = "unsupported_media_type"
    status = 415
    default_message = (
        "This file is not an image format we accept. Accepted: JPEG, PNG, WebP, HEIC/HEIF, AVIF, GIF, TIFF."
    )


class ImageDecodeError(ImageError):
    code = "invalid_image"
    status = 422
    default_message = "The image data is truncated or corrupt and cannot be decoded."
