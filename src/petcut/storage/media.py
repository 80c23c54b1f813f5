"""The content type of an upload, from its leading bytes (magic numbers), never from the client.

The sniffing itself is imaging's (:func:`petcut.imaging.sniff.sniff_image`); the store accepts the
formats the decoder accepts and stores them under the kind's content type and extension (docs/storage.md).
"""

from __future__ import annotations

from petcut.imaging.sniff import ACCEPTED_KINDS, ImageKind, sniff_image
from petcut.storage.errors import UnsupportedMediaType

__all__ = ["CONTENT_TYPE_BY_EXT", "require_image", "sniff"]

CONTENT_TYPE_BY_EXT = {kind.ext: kind.content_type for kind in ACCEPTED_KINDS}


def sniff(data: bytes) -> ImageKind | None:
    """The image format of ``data``, or ``None`` when it is not one we accept."""
    kind = sniff_image(data)
    return kind if kind is not None and kind.accepted else None


def require_image(data: bytes) -> ImageKind:
    media = sniff(data)
    if media is None:
        raise UnsupportedMediaType(
            "The file is not an image format we accept (JPEG, PNG, WebP, GIF, HEIC/HEIF, AVIF, TIFF)."
        )
    return media
