"""The content type of an upload, from its leading bytes (magic numbers), never from the client."""

from __future__ import annotations

from typing import NamedTuple

from petcut.storage.errors import UnsupportedMediaType


class Media(NamedTuple):
    content_type: str
    ext: str


PNG = Media("image/png", "png")
JPEG = Media("image/jpeg", "jpg")
WEBP = Media("image/webp", "webp")
GIF = Media("image/gif", "gif")
TIFF = Media("image/tiff", "tiff")
HEIC = Media("image/heic", "heic")
HEIF = Media("image/heif", "heif")
AVIF = Media("image/avif", "avif")

CONTENT_TYPE_BY_EXT = {m.ext: m.content_type for m in (PNG, JPEG, WEBP, GIF, TIFF, HEIC, HEIF, AVIF)}

_AVIF_BRANDS = {b"avif", b"avis"}
_HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
_HEIF_BRANDS = {b"mif1", b"msf1"}


def _ftyp_brands(data: bytes) -> list[bytes]:
    """Major brand first, then the compatible brands of an ISO-BMFF ``ftyp`` box at offset 0."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return []
    size = int.from_bytes(data[0:4], "big")
    end = min(len(data), size if 16 <= size <= 4096 else 12)
    brands = [data[8:12]]
    brands += [data[i : i + 4] for i in range(16, end - 3, 4)]
    return brands


def _ftyp_media(data: bytes) -> Media | None:
    brands = _ftyp_brands(data)
    if not brands:
        return None
    major, every = brands[0], set(brands)
    # the major brand decides when it is specific; a generic one (mif1, or another) defers to the list
    for family, media in ((_AVIF_BRANDS, AVIF), (_HEIC_BRANDS, HEIC)):
        if major in family:
            return media
    for family, media in ((_AVIF_BRANDS, AVIF), (_HEIC_BRANDS, HEIC), (_HEIF_BRANDS, HEIF)):
        if every & family:
            return media
    return None


def sniff(data: bytes) -> Media | None:
    """The image format of ``data``, or ``None`` when it is not one we accept."""
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[0:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    return _ftyp_media(data[:4096])


def require_image(data: bytes) -> Media:
    media = sniff(data)
    if media is None:
        raise UnsupportedMediaType(
            "The file is not an image format we accept (JPEG, PNG, WebP, GIF, HEIC/HEIF, AVIF, TIFF)."
        )
    return media
