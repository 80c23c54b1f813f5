"""Imaging: bytes → oriented image (limits, formats, EXIF), image → bytes, compositing, foreground colour.

Importing this package has no side effects (the HEIF opener is registered on the first decode).
"""

from petcut.imaging.compose import (
    alpha_to_mask,
    composite,
    crop,
    expand_box,
    fit_max_side,
    parse_hex_color,
    subject_bbox,
    to_rgba,
)
from petcut.imaging.decode import (
    ACCEPTED_FORMATS,
    MAX_FRAMES_COUNTED,
    MAX_SIDE,
    DecodedImage,
    decode_image,
)
from petcut.imaging.encode import OUTPUT_FORMATS, encode_image, media_type, normalize_format
from petcut.imaging.errors import (
    DecompressionBomb,
    EmptyImage,
    ImageDecodeError,
    ImageError,
    ImageTooLarge,
    PayloadTooLarge,
    TooManyPixels,
    UnsupportedImageFormat,
)
from petcut.imaging.foreground import FOREGROUND_METHODS, estimate_foreground
from petcut.imaging.sniff import ImageKind, sniff_format, sniff_image

__all__ = [
    "ACCEPTED_FORMATS",
    "FOREGROUND_METHODS",
    "MAX_FRAMES_COUNTED",
    "MAX_SIDE",
    "OUTPUT_FORMATS",
    "DecodedImage",
    "DecompressionBomb",
    "EmptyImage",
    "ImageDecodeError",
    "ImageError",
    "ImageKind",
    "ImageTooLarge",
    "PayloadTooLarge",
    "TooManyPixels",
    "UnsupportedImageFormat",
    "alpha_to_mask",
    "composite",
    "crop",
    "decode_image",
    "encode_image",
    "estimate_foreground",
    "expand_box",
    "fit_max_side",
    "media_type",
    "normalize_format",
    "parse_hex_color",
    "sniff_format",
    "sniff_image",
    "subject_bbox",
    "to_rgba",
]
