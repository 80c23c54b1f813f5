"""What the image store accepts: only real images, and a bounded amount per session.

* :func:`verify_image`: the bytes must decode completely, with the same bounded decoder as the
  processing routes (byte and pixel limits, JPEG scan count, decode deadline), as the format their
  leading bytes claim; PNG and GIF must end where the image ends, and no HTML/script markup may sit in
  the first bytes a browser would sniff. Refusals: 415 (not an accepted image, or markup),
  422 (corrupt, truncated, too many scans, too slow), 413 (too many pixels).
* :func:`check_quota`: a session holds at most ``max_images`` images and ``max_bytes`` bytes, all tiers
  together (429 / 413 ``session_quota_exceeded``).
"""

from __future__ import annotations

import re

from petcut.imaging.decode import decode_image
from petcut.imaging.sniff import ImageKind
from petcut.storage.base import ImageStore
from petcut.storage.errors import SessionQuotaExceeded, UnsupportedMediaType
from petcut.storage.media import require_image

__all__ = ["check_quota", "verify_image"]

# decode_image's format name → the storage extensions it may be stored as
_EXTENSIONS = {
    "jpeg": {"jpg"},
    "png": {"png"},
    "webp": {"webp"},
    "gif": {"gif"},
    "tiff": {"tiff"},
    "heif": {"heic", "heif"},
    "avif": {"avif"},
}
#: browsers sniff about the first 1445 bytes; markup there makes a polyglot
SNIFF_WINDOW = 2048
_MARKUP = re.compile(rb"<\s*(html|script|body|svg|iframe|object|embed|!doctype)\b", re.IGNORECASE)


def verify_image(data: bytes, *, max_bytes: int, max_pixels: int, max_scans: int, timeout_s: float) -> ImageKind:
    """The media type to store ``data`` as, once it is known to be a real, fully decodable image."""
    media = require_image(data)
    if _MARKUP.search(data[:SNIFF_WINDOW]):
        raise UnsupportedMediaType("The file holds HTML or script markup; only plain images are stored.")
    decoded = decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels, max_scans=max_scans, timeout_s=timeout_s)
    if media.ext not in _EXTENSIONS.get(decoded.format, set()):
        raise UnsupportedMediaType(f"The file starts like {media.ext.upper()} but decodes as {decoded.format.upper()}.")
    if media.ext == "png" and not data.endswith(b"IEND\xaeB`\x82"):
        raise UnsupportedMediaType("The PNG has data after its end (IEND); only plain images are stored.")
    if media.ext == "gif" and not data.endswith(b";"):
        raise UnsupportedMediaType("The GIF has data after its end (trailer); only plain images are stored.")
    return media


def check_quota(store: ImageStore, session_id: str, size: int, *, max_images: int, max_bytes: int) -> None:
    """Refuse a new image of ``size`` bytes when the session is full."""
    images = store.list_session(session_id)
    if len(images) >= max_images:
        raise SessionQuotaExceeded(
            f"This session already holds {len(images)} images; at most {max_images} may be stored.", http_status=429
        )
    held = sum(image.size for image in images)
    if held + size > max_bytes:
        raise SessionQuotaExceeded(
            f"This session would hold {held + size} bytes; at most {max_bytes} may be stored.", http_status=413
        )
