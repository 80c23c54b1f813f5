"""What an image's first bytes (its magic number) say it is, never what the client claims (docs/security.md).

:func:`sniff_image` is the one format sniffer: the decoder uses it to refuse known but unaccepted formats
(415) and to tell corrupt data of an accepted format (422) from anything else; the image store uses it
for the content type and file extension it stores an upload under (docs/storage.md).

HEIF-family files (an ISO-BMFF ``ftyp`` box) are told apart by their brands: the major brand decides
when it is specific (``avif``/``avis`` → AVIF, ``heic``/``heix``/... → HEIC); a generic major brand
(``mif1``, ...) defers to the compatible brands, AVIF first, then HEIC, then plain HEIF. HEIC and HEIF
are both the decoder's ``heif``; they differ in content type and extension.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["ACCEPTED_KINDS", "ImageKind", "sniff_format", "sniff_image"]


class ImageKind(NamedTuple):
    """A recognised image format."""

    format: str  # decode_image's name (ACCEPTED_FORMATS), or a refused format's ("bmp", "pdf", ...)
    content_type: str
    ext: str  # the file extension it is stored under

    @property
    def accepted(self) -> bool:
        return self in ACCEPTED_KINDS


PNG = ImageKind("png", "image/png", "png")
JPEG = ImageKind("jpeg", "image/jpeg", "jpg")
WEBP = ImageKind("webp", "image/webp", "webp")
GIF = ImageKind("gif", "image/gif", "gif")
TIFF = ImageKind("tiff", "image/tiff", "tiff")
HEIC = ImageKind("heif", "image/heic", "heic")
HEIF = ImageKind("heif", "image/heif", "heif")
AVIF = ImageKind("avif", "image/avif", "avif")
#: every kind the decoder accepts (its ``ACCEPTED_FORMATS``, HEIF split into HEIC and HEIF)
ACCEPTED_KINDS: tuple[ImageKind, ...] = (PNG, JPEG, WEBP, GIF, TIFF, HEIC, HEIF, AVIF)

# recognised only to be refused by name (415)
_JXL = ImageKind("jxl", "image/jxl", "jxl")
_BMP = ImageKind("bmp", "image/bmp", "bmp")
_PDF = ImageKind("pdf", "application/pdf", "pdf")
_ICO = ImageKind("ico", "image/vnd.microsoft.icon", "ico")
_PSD = ImageKind("psd", "image/vnd.adobe.photoshop", "psd")

_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_GENERIC_HEIF_BRANDS = frozenset({b"mif1", b"msf1", b"mif2", b"miaf"})
#: the ``ftyp`` box is read up to this many bytes
_FTYP_WINDOW = 4096


def sniff_image(data: bytes) -> ImageKind | None:
    """The format ``data`` starts like, accepted or not (test ``.accepted``), or ``None`` when its first
    bytes are not an image format this service knows."""
    head = bytes(data[:64])
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return TIFF
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(bytes(data[:_FTYP_WINDOW]))
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL \r\n\x87\n"):
        return _JXL
    if head.startswith(b"BM"):
        return _BMP
    if head.startswith(b"%PDF"):
        return _PDF
    if head.startswith(b"\x00\x00\x01\x00"):
        return _ICO
    if head.startswith(b"8BPS"):
        return _PSD
    return None


def sniff_format(data: bytes) -> str | None:
    """:func:`sniff_image`'s format name only: a name from ``ACCEPTED_FORMATS``, a refused format's name
    ("bmp", "pdf", "ico", "psd", "jxl"), or None. Not None does not mean accepted."""
    kind = sniff_image(data)
    return kind.format if kind is not None else None


def _sniff_ftyp(head: bytes) -> ImageKind | None:
    """An ISO-BMFF ``ftyp`` box at offset 0: the major brand, then the compatible brands."""
    if len(head) < 12:
        return None
    end = min(len(head), int.from_bytes(head[0:4], "big"))
    major = head[8:12]
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS:
        return AVIF
    if major in _HEIC_BRANDS:
        return HEIC
    for family, kind in ((_AVIF_BRANDS, AVIF), (_HEIC_BRANDS, HEIC), (_GENERIC_HEIF_BRANDS, HEIF)):
        if brands & family:
            return kind
    return None  # MP4, MOV, ...
