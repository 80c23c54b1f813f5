"""Colour management: embedded ICC profiles → sRGB on decode, an sRGB tag (or the kept profile) on output.

Decode (:func:`to_working_space`) runs after EXIF orientation, before the model and the effects:

- ``srgb`` (default): an embedded RGB, CMYK or grey profile is converted to sRGB with LittleCMS
  (Pillow's ``ImageCms``), rendering intent :data:`RENDERING_INTENT` (perceptual). RGB without a profile
  (or with an sRGB one) is taken as sRGB and left untouched.
- ``preserve``: RGB pixels are left untouched and the source profile is embedded in every output, for
  print pipelines that are colour-managed end to end. CMYK and grey sources still convert to sRGB (the
  outputs are RGB, which a CMYK or grey profile cannot describe).

A corrupt or unusable profile (garbage bytes, a colour space that does not match the pixels, a profile
LittleCMS cannot build a transform from) is ignored with a warning in the log: the image is then treated
as sRGB; decoding never fails because of a profile.

Outputs (:func:`save_options`) carry :class:`OutputTags`: PNG gets the ``sRGB`` chunk (with ``gAMA`` and
``cHRM`` for older readers) or ``iCCP`` with the kept profile, WebP and JPEG an embedded ICC profile
(LittleCMS's built-in sRGB v4 profile, 588 bytes). Greyscale outputs (masks) are coverage, not colour:
they carry the resolution only. The resolution (DPI) of the source is carried over, swapped for EXIF
rotations by 90°, and scaled with any downscale so that the print size stays the same.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from PIL import Image, ImageCms, PngImagePlugin

__all__ = [
    "COLOR_MODES",
    "RENDERING_INTENT",
    "SRGB_TAGS",
    "OutputTags",
    "save_options",
    "srgb_profile",
    "to_working_space",
]

log = logging.getLogger(__name__)

#: ``PETCUT_COLOR`` values.
COLOR_MODES: tuple[str, ...] = ("srgb", "preserve")

#: ICC rendering intent of every conversion. For matrix/TRC profiles (Display P3, Adobe RGB) LittleCMS
#: computes it as relative colorimetric; LUT profiles (CMYK) use their perceptual table.
RENDERING_INTENT = ImageCms.Intent.PERCEPTUAL

# ICC colour-space signatures, as Pillow reports them (``xcolor_space``, padded to 4 characters).
_SPACE_OF_MODE = {"RGB": "RGB ", "RGBA": "RGB ", "CMYK": "CMYK", "L": "GRAY", "LA": "GRAY"}
_PROFILE_ERRORS = (OSError, ValueError, TypeError, AttributeError, ImageCms.PyCMSError)

# PNG sRGB chunk (intent 0 = perceptual) and the gAMA/cHRM values the PNG spec gives for sRGB.
_PNG_SRGB = b"\x00"
_PNG_GAMA = (45455).to_bytes(4, "big")
_PNG_CHRM = b"".join(
    v.to_bytes(4, "big") for v in (31270, 32900, 64000, 33000, 30000, 60000, 15000, 6000)
)  # white x,y; red; green; blue (× 100000)
_EXIF_RESOLUTION_UNIT_INCH = 2


@dataclass(frozen=True)
class OutputTags:
    """What an output carries besides its pixels: its ICC profile (None: sRGB) and resolution (DPI)."""

    icc_profile: bytes | None = None
    dpi: tuple[float, float] | None = None

    def scaled(self, factor: float) -> OutputTags:
        """The tags of the image resized by ``factor`` (same print size: the DPI scales too)."""
        if self.dpi is None or factor == 1:
            return self
        return OutputTags(self.icc_profile, (self.dpi[0] * factor, self.dpi[1] * factor))


#: An sRGB output with no resolution.
SRGB_TAGS = OutputTags()


@functools.cache
def srgb_profile() -> bytes:
    """The sRGB profile embedded in WebP and JPEG outputs (LittleCMS's built-in, ICC v4)."""
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()


@functools.cache
def _srgb_cms() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


# --- decode ---------------------------------------------------------------------------------------------
def to_working_space(im: Image.Image, color: str, orientation: int = 1) -> tuple[Image.Image, OutputTags]:
    """Apply ``im``'s embedded profile according to ``color`` (one of :data:`COLOR_MODES`).

    ``im`` must be loaded and already oriented (``orientation`` is the EXIF orientation that was applied,
    for the DPI). Returns the image to convert to 8-bit RGB(A), either ``im`` itself or an RGB/RGBA image
    in sRGB, and the tags its outputs must carry. Never raises because of the profile.
    """
    if color not in COLOR_MODES:
        raise ValueError(f"color must be one of {', '.join(COLOR_MODES)}, got {color!r}")
    dpi = _source_dpi(im, orientation)
    icc = im.info.get("icc_profile")
    if not icc or not isinstance(icc, bytes):
        return im, OutputTags(None, dpi)
    source = _mode_for_transform(im)
    if source is None:
        log.info("embedded ICC profile not applied to a %s image", im.mode)
        return im, OutputTags(None, dpi)
    profile = _profile(icc)
    if profile is None:
        log.warning("ignoring an embedded ICC profile that cannot be read; taking the image as sRGB")
        return im, OutputTags(None, dpi)
    space = profile.profile.xcolor_space
    if space != _SPACE_OF_MODE[source]:
        log.warning(
            "ignoring an embedded ICC profile for colour space %r on a %s image; taking the image as sRGB",
            space.strip(),
            im.mode,
        )
        return im, OutputTags(None, dpi)
    if space == "RGB " and _is_srgb(profile):
        return im, OutputTags(None, dpi)
    if color == "preserve" and space == "RGB ":
        return im, OutputTags(icc, dpi)
    converted = _convert(im if im.mode == source else im.convert(source), icc, source)
    if converted is None:
        return im, OutputTags(None, dpi)
    return converted, OutputTags(None, dpi)


def _mode_for_transform(im: Image.Image) -> str | None:
    """The 8-bit mode the transform reads (palette images are expanded first), None for wide modes."""
    if im.mode in _SPACE_OF_MODE:
        return im.mode
    if im.mode in ("P", "PA"):
        return "RGBA" if im.has_transparency_data else "RGB"
    if im.mode == "1":
        return "L"
    return None  # 16-bit/float grey, YCbCr, LAB, ...: left as Pillow converts them


def _profile(icc: bytes) -> ImageCms.ImageCmsProfile | None:
    try:
        return ImageCms.ImageCmsProfile(BytesIO(icc))
    except _PROFILE_ERRORS:
        return None


def _is_srgb(profile: ImageCms.ImageCmsProfile) -> bool:
    """An sRGB profile under another name (cameras and editors embed "sRGB IEC61966-2.1"): no transform."""
    description = (profile.profile.profile_description or "").lower()
    if "srgb" not in description:
        return False
    ours, theirs = _srgb_cms().profile, profile.profile
    try:
        pairs = zip(
            (ours.red_colorant, ours.green_colorant, ours.blue_colorant),
            (theirs.red_colorant, theirs.green_colorant, theirs.blue_colorant),
            strict=True,
        )
        return all(
            mine is not None
            and other is not None
            and all(abs(a - b) < 2e-3 for a, b in zip(mine[0], other[0], strict=True))
            for mine, other in pairs
        )
    except (TypeError, IndexError, AttributeError):
        return False


def _convert(im: Image.Image, icc: bytes, mode: str) -> Image.Image | None:
    out_mode = "RGBA" if mode in ("RGBA", "LA") else "RGB"
    if mode == "LA":  # LittleCMS has no grey+alpha → RGBA transform in Pillow: convert the grey, keep alpha
        rgb = _convert(im.getchannel("L"), icc, "L")
        if rgb is None:
            return None
        rgb.putalpha(im.getchannel("A"))
        return rgb
    transform = _transform(icc, mode, out_mode)
    if transform is None:
        return None
    try:
        return ImageCms.applyTransform(im, transform)
    except _PROFILE_ERRORS:
        log.warning("ignoring an embedded ICC profile whose transform failed; taking the image as sRGB")
        return None


_TRANSFORM_CACHE_SIZE = 16
_CACHED_PROFILE_BYTES = 1 << 20  # larger profiles (big CMYK tables) are rebuilt each time, not kept
_transforms: OrderedDict[tuple[bytes, str, str], ImageCms.ImageCmsTransform | None] = OrderedDict()
_transforms_lock = threading.Lock()


def _transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform | None:
    """The profile → sRGB transform, cached by the profile's digest (NOCACHE: safe from several threads)."""
    key = (hashlib.blake2b(icc, digest_size=16).digest(), in_mode, out_mode)
    with _transforms_lock:
        if key in _transforms:
            _transforms.move_to_end(key)
            return _transforms[key]
    transform = _build_transform(icc, in_mode, out_mode)
    if len(icc) <= _CACHED_PROFILE_BYTES:
        with _transforms_lock:
            _transforms[key] = transform
            while len(_transforms) > _TRANSFORM_CACHE_SIZE:
                _transforms.popitem(last=False)
    return transform


def _build_transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform | None:
    profile = _profile(icc)
    if profile is None:
        return None
    try:
        return ImageCms.buildTransform(
            profile, _srgb_cms(), in_mode, out_mode, renderingIntent=RENDERING_INTENT, flags=ImageCms.Flags.NOCACHE
        )
    except _PROFILE_ERRORS:
        log.warning("ignoring an embedded ICC profile LittleCMS cannot use; taking the image as sRGB")
        return None


def _source_dpi(im: Image.Image, orientation: int) -> tuple[float, float] | None:
    dpi = im.info.get("dpi")
    try:
        x, y = float(dpi[0]), float(dpi[1])  # type: ignore[index]
    except (TypeError, ValueError, IndexError):
        return None
    if not (0 < x < 1e6 and 0 < y < 1e6):
        return None
    return (y, x) if orientation in (5, 6, 7, 8) else (x, y)  # rotated by 90°: the axes swap


# --- encode ---------------------------------------------------------------------------------------------
def save_options(fmt: str, mode: str, tags: OutputTags) -> dict[str, Any]:
    """Pillow ``save`` keyword arguments that tag an output of ``fmt`` (png/webp/jpeg) in ``mode``."""
    colour = mode != "L"  # a mask is coverage, not colour
    options: dict[str, Any] = {}
    if fmt == "png":
        if colour and tags.icc_profile:
            options["icc_profile"] = tags.icc_profile
        elif colour:
            info = PngImagePlugin.PngInfo()
            info.add(b"sRGB", _PNG_SRGB)
            info.add(b"gAMA", _PNG_GAMA)
            info.add(b"cHRM", _PNG_CHRM)
            options["pnginfo"] = info
        if tags.dpi:
            options["dpi"] = tags.dpi
    elif fmt == "jpeg":
        if colour:
            options["icc_profile"] = tags.icc_profile or srgb_profile()
        if tags.dpi:
            options["dpi"] = tuple(round(v) for v in tags.dpi)  # JFIF stores whole numbers
    else:  # webp: no resolution field of its own, EXIF carries it
        if colour:
            options["icc_profile"] = tags.icc_profile or srgb_profile()
        if tags.dpi:
            exif = Image.Exif()
            exif[0x011A], exif[0x011B] = tags.dpi  # XResolution, YResolution
            exif[0x0128] = _EXIF_RESOLUTION_UNIT_INCH
            options["exif"] = exif.tobytes()
    return options
