"""Bytes → oriented 8-bit RGB (+ alpha), with limits checked before any pixel is decoded.

Order of checks (docs/security.md):

1. zero bytes → ``EmptyImage`` (400); more than ``max_bytes`` → ``PayloadTooLarge`` (413);
2. a magic number (:mod:`petcut.imaging.sniff`) of a known but refused format (BMP, PDF, ...) →
   ``UnsupportedImageFormat`` (415);
3. ``Image.open`` restricted to the accepted Pillow plugins reads the header only; bytes no accepted
   plugin recognises → 415, unless their magic number says they are an accepted format, in which case
   the data is corrupt → ``ImageDecodeError`` (422);
4. width × height from the header against ``max_pixels`` and each side against ``MAX_SIDE`` →
   ``TooManyPixels`` (413), before decoding; Pillow's own check inside ``Image.open`` (error over
   2 × ``Image.MAX_IMAGE_PIXELS`` ≈ 179 MP, warning over 89 MP, which is left untouched) maps to
   ``DecompressionBomb`` (a ``TooManyPixels``), the warning too when warnings are errors;
5. count frames (bounded time), decode the first frame, apply EXIF orientation, convert the mode to
   8-bit RGB + optional alpha.

Any failure while decoding becomes an ``ImageError``; no other exception escapes for any input bytes.

Decisions: BMP, ICO, PSD, PDF, JPEG XL and everything else not listed in ``ACCEPTED_FORMATS`` are
refused with 415 (the spec's list, plus AVIF, which the pinned Pillow decodes natively). MPO is reported
as "jpeg". ``alpha`` is kept whenever the source carries transparency (an alpha channel or a
transparent palette/colour key), even if every pixel happens to be opaque. Embedded ICC profiles are
applied after EXIF orientation, before the mode conversion (``petcut.imaging.color``).
"""

from __future__ import annotations

import struct
import threading
from dataclasses import dataclass

import numpy as np
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from petcut.imaging import bounds
from petcut.imaging.color import SRGB_TAGS, OutputTags, to_working_space
from petcut.imaging.errors import (
    DecompressionBomb,
    EmptyImage,
    ImageDecodeError,
    ImageError,
    PayloadTooLarge,
    TooManyPixels,
    UnsupportedImageFormat,
)
from petcut.imaging.sniff import sniff_format

__all__ = ["ACCEPTED_FORMATS", "MAX_FRAMES_COUNTED", "MAX_SIDE", "DecodedImage", "decode_image"]

#: Formats decode_image accepts, by the name it reports in ``DecodedImage.format``.
ACCEPTED_FORMATS: tuple[str, ...] = ("jpeg", "png", "webp", "heif", "avif", "gif", "tiff")

#: ``DecodedImage.frames`` counts frames up to this many (counting is bounded in time).
MAX_FRAMES_COUNTED = 1000

#: Largest width or height accepted, whatever the pixel limit (JPEG's and WebP's own ceiling is 65535).
MAX_SIDE = 65500

# Pillow plugin id → reported name. AVIF must come before HEIF: pillow-heif's opener also claims AVIF
# files but cannot decode them.
_PIL_FORMATS: dict[str, str] = {
    "JPEG": "jpeg",
    "MPO": "jpeg",
    "PNG": "png",
    "WEBP": "webp",
    "AVIF": "avif",
    "HEIF": "heif",
    "GIF": "gif",
    "TIFF": "tiff",
}

_WIDE_GREY_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I", "F"})

# Exceptions Pillow and its plugins raise on corrupt or truncated data.
_DECODE_ERRORS = (
    OSError,
    ValueError,
    SyntaxError,
    struct.error,
    EOFError,
    IndexError,
    KeyError,
    TypeError,
    ZeroDivisionError,
    OverflowError,
    AttributeError,
    RuntimeError,
    AssertionError,
)


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded, oriented image. Arrays are C-contiguous, writable, owned by this object."""

    rgb: np.ndarray  # uint8 H×W×3
    alpha: np.ndarray | None  # uint8 H×W when the source had transparency
    format: str  # one of ACCEPTED_FORMATS ("jpeg" for MPO)
    orientation: int  # EXIF orientation that was applied (1 if none)
    frames: int  # frames in the source, up to MAX_FRAMES_COUNTED (GIF/WebP/PNG animation, MPO, TIFF pages);
    # only the first is decoded
    output_tags: OutputTags = SRGB_TAGS  # ICC profile (None: sRGB) and DPI the outputs carry

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])


_plugins_lock = threading.Lock()
_open_formats: list[str] | None = None


def _pillow_formats() -> list[str]:
    """Pillow plugin ids to try, in order; registers pillow-heif's opener once, on first use."""
    global _open_formats
    if _open_formats is None:
        with _plugins_lock:
            if _open_formats is None:
                from pillow_heif import register_heif_opener

                register_heif_opener()
                Image.init()
                # MPO has no opener of its own (the JPEG factory returns MPO files); AVIF only when
                # Pillow was built with libavif.
                _open_formats = [f for f in _PIL_FORMATS if f in Image.OPEN]
    return _open_formats


def _unsupported_message(detected: str | None) -> str:
    accepted = ", ".join(name.upper() for name in ACCEPTED_FORMATS)
    what = f"{detected.upper()} images are not accepted." if detected else "This file is not an image we accept."
    return f"{what} Accepted formats: {accepted} (animated images: first frame)."


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    color: str = "srgb",
    max_scans: int | None = None,
    timeout_s: float | None = None,
) -> DecodedImage:
    """Decode an uploaded image; raise an ``ImageError`` subclass for anything unusable.

    ``color``: ``srgb`` converts an embedded ICC profile to sRGB, ``preserve`` keeps RGB pixels and the
    profile for the outputs (``petcut.imaging.color``). ``max_scans`` and ``timeout_s``: the bounds of
    :mod:`petcut.imaging.bounds` (None: unbounded)."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise TypeError(f"decode_image expects bytes, got {type(data).__name__}")
    if max_bytes < 1 or max_pixels < 1:
        raise ValueError("max_bytes and max_pixels must be positive")
    size = memoryview(data).nbytes
    if size == 0:
        raise EmptyImage()
    if size > max_bytes:
        raise PayloadTooLarge(
            f"The file is {_fmt_bytes(size)}; the limit is {_fmt_bytes(max_bytes)}.",
        )
    sniffed = sniff_format(data)
    if sniffed is not None and sniffed not in ACCEPTED_FORMATS:
        raise UnsupportedImageFormat(_unsupported_message(sniffed))
    if sniffed == "jpeg" and max_scans is not None:
        bounds.check_jpeg_scans(data, max_scans)

    try:
        with Image.open(bounds.BoundedStream.for_decode(data, timeout_s), formats=_pillow_formats()) as im:
            bounds.bound_chunks(im)
            return _decode_opened(im, data, max_pixels, color)
    except ImageError:
        raise
    except UnidentifiedImageError as exc:
        if sniffed in ACCEPTED_FORMATS:
            raise ImageDecodeError(f"The file looks like {sniffed.upper()} but its header is corrupt.") from exc
        raise UnsupportedImageFormat(_unsupported_message(None)) from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise DecompressionBomb() from exc
    except MemoryError as exc:
        raise TooManyPixels("The image needs too much memory to decode.") from exc
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError() from exc
    except Exception as exc:  # last resort: a plugin bug must still be a 4xx, never a 500
        raise ImageDecodeError() from exc


def _decode_opened(im: Image.Image, data: bytes, max_pixels: int, color: str = "srgb") -> DecodedImage:
    fmt = _PIL_FORMATS.get(im.format or "")
    if fmt is None:  # cannot happen with formats= restricted, but never trust a plugin
        raise UnsupportedImageFormat(_unsupported_message(None))
    _check_size(*im.size, max_pixels=max_pixels)
    frames = _frame_count(im, data, fmt)
    if im.tell() != 0:
        im.seek(0)
    _check_size(*im.size, max_pixels=max_pixels)

    orientation = _exif_orientation(im)
    im.load()
    if orientation != 1:
        ImageOps.exif_transpose(im, in_place=True)
    if fmt == "heif":
        # libheif applies the HEIF transforms itself and pillow-heif resets the EXIF tag to 1;
        # it keeps what it applied here.
        original = im.info.get("original_orientation")
        if isinstance(original, int) and 1 <= original <= 8:
            orientation = original

    im, tags = to_working_space(im, color, orientation)  # ICC profile → sRGB (imaging/color.py)
    rgb, alpha = _to_rgb_alpha(im)
    return DecodedImage(rgb=rgb, alpha=alpha, format=fmt, orientation=orientation, frames=frames, output_tags=tags)


def _check_size(width: int, height: int, *, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageDecodeError("The image has no pixels (zero width or height).")
    if width > MAX_SIDE or height > MAX_SIDE:
        raise TooManyPixels(f"The image is {width}×{height}; each side must be at most {MAX_SIDE} pixels.")
    if width * height > max_pixels:
        raise TooManyPixels(
            f"The image is {width}×{height} ({width * height / 1e6:.1f} MP); the limit is {max_pixels / 1e6:.1f} MP."
        )


def _frame_count(im: Image.Image, data: bytes, fmt: str) -> int:
    """Frames in the source, counted up to MAX_FRAMES_COUNTED, in bounded time.

    Pillow's ``n_frames`` walks every frame of a GIF (and every IFD of a TIFF): ~6 s for a 50 MB GIF of
    tiny frames. GIF is scanned here block by block instead, TIFF pages are visited up to the cap; the
    other formats read the count from a header.
    """
    try:
        if fmt == "gif":
            return _gif_frame_count(data)
        if fmt == "tiff":
            n = 1
            while n < MAX_FRAMES_COUNTED:
                try:
                    im.seek(n)
                except EOFError:
                    break
                n += 1
            return n
        return max(1, min(int(getattr(im, "n_frames", 1)), MAX_FRAMES_COUNTED))
    except _DECODE_ERRORS:
        return 1  # a corrupt later frame does not matter: only the first is used


def _gif_frame_count(data: bytes) -> int:
    """Count image descriptors by skipping GIF blocks (no decoding)."""
    view, n = memoryview(data), len(data)
    pos = 13
    if n > 10 and view[10] & 0x80:  # global colour table
        pos += 3 << ((view[10] & 7) + 1)
    frames = 0
    while pos < n and frames < MAX_FRAMES_COUNTED:
        block = view[pos]
        if block == 0x2C:  # image descriptor, optional local colour table, LZW minimum code size
            frames += 1
            if pos + 10 > n:
                break
            flags = view[pos + 9]
            pos += 11 + ((3 << ((flags & 7) + 1)) if flags & 0x80 else 0)
        elif block == 0x21:  # extension introducer + label
            pos += 2
        else:  # trailer (0x3B) or garbage
            break
        while pos < n:  # data sub-blocks, ended by a zero-length one
            size = view[pos]
            pos += 1 + size
            if size == 0:
                break
    return max(frames, 1)


def _exif_orientation(im: Image.Image) -> int:
    try:
        value = im.getexif().get(ExifTags.Base.Orientation, 1)
    except _DECODE_ERRORS:
        return 1  # corrupt EXIF: keep the pixels as stored rather than refuse the photo
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_rgb_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """Convert any Pillow mode to (uint8 H×W×3, uint8 H×W or None), scaling wide modes, not clipping."""
    if im.mode in _WIDE_GREY_MODES:
        wide = np.asarray(im)
        grey = _wide_to_uint8(wide, im.mode)
        rgb = np.repeat(grey[:, :, None], 3, axis=2)
        key = im.info.get("transparency")
        alpha = None
        if isinstance(key, int) and not isinstance(key, bool):
            alpha = np.where(wide == key, 0, 255).astype(np.uint8)
        return rgb, alpha

    # Pillow's own conversions are right for the 8-bit modes: palette (+tRNS) → RGBA, LA/PA → RGBA,
    # 1/L → RGB, CMYK (Adobe-inverted data is un-inverted by the JPEG decoder) → RGB, YCbCr → RGB.
    # 16-bit RGB(A) PNG/TIFF are already unpacked by Pillow taking the high byte (= >> 8).
    target = "RGBA" if im.has_transparency_data else "RGB"
    converted = im if im.mode == target else im.convert(target)
    arr = np.asarray(converted)
    if target == "RGBA":
        return np.ascontiguousarray(arr[:, :, :3]), np.ascontiguousarray(arr[:, :, 3])
    return np.array(arr, dtype=np.uint8, order="C", copy=True), None


def _wide_to_uint8(arr: np.ndarray, mode: str) -> np.ndarray:
    """16-bit → >> 8; 32-bit int within 0..65535 → >> 8, otherwise min-max; float in [0,1] → ×255."""
    if mode.startswith("I;16"):
        return (arr.astype(np.uint16, copy=False) >> 8).astype(np.uint8)
    if mode == "I":
        lo, hi = int(arr.min()), int(arr.max())
        if lo >= 0 and hi <= 0xFFFF:
            return (arr >> 8).astype(np.uint8)
        return _min_max(arr.astype(np.float64), lo, hi)
    values = np.nan_to_num(arr.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo_f, hi_f = float(values.min()), float(values.max())
    if lo_f >= 0.0 and hi_f <= 1.0:
        return (values * 255.0 + 0.5).astype(np.uint8)
    return _min_max(values, lo_f, hi_f)


def _min_max(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.uint8)
    return ((values - lo) * (255.0 / (hi - lo)) + 0.5).astype(np.uint8)


def _fmt_bytes(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} bytes"
