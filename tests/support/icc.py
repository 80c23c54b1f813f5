"""ICC profiles and reference colour conversions for the colour-management tests.

Pillow's ``ImageCms`` can only create sRGB, Lab and XYZ profiles, so the Adobe RGB (1998) and the CMYK
profiles are written here from the ICC specification (v2: header, tag table, tags). The Display P3
profile is the real one that ``Squid.jpg`` (an iPhone photo) carries. The reference RGB → sRGB
conversion is computed independently of LittleCMS, in float64, from each profile's colorant tags.
"""

from __future__ import annotations

import struct
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageCms

# Adobe RGB (1998), D50-adapted colorants (Bradford), as in Adobe's own profile; gamma 563/256.
ADOBE_RGB_GAMMA = 563 / 256
ADOBE_RGB_COLORANTS = (
    (0.60974, 0.31111, 0.01947),
    (0.20528, 0.62567, 0.06087),
    (0.14919, 0.06322, 0.74457),
)
D50 = (0.9642, 1.0, 0.8249)


def _s15f16(value: float) -> bytes:
    return struct.pack(">i", round(value * 65536))


def _xyz(values: tuple[float, float, float]) -> bytes:
    return b"XYZ \x00\x00\x00\x00" + b"".join(_s15f16(v) for v in values)


def _desc(text: str) -> bytes:
    ascii_ = text.encode("ascii") + b"\x00"
    # textDescriptionType: ASCII, then empty Unicode and ScriptCode parts
    return b"desc\x00\x00\x00\x00" + struct.pack(">I", len(ascii_)) + ascii_ + b"\x00" * 8 + b"\x00" * 3 + b"\x00" * 67


def _text(text: str) -> bytes:
    return b"text\x00\x00\x00\x00" + text.encode("ascii") + b"\x00"


def _curve(gamma: float) -> bytes:
    return b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, round(gamma * 256))


def _profile(device_class: bytes, space: bytes, description: str, tags: list[tuple[bytes, bytes]]) -> bytes:
    """Assemble an ICC v2.1 profile (XYZ connection space, D50 white) from its description and the
    (signature, data) tags that follow the description, copyright and white point."""
    pcs = b"XYZ "
    tags = [(b"desc", _desc(description)), (b"cprt", _text("No copyright, use freely")), (b"wtpt", _xyz(D50)), *tags]
    offset = 128 + 4 + 12 * len(tags)
    table, blob = b"", b""
    for signature, data in tags:
        padded = data + b"\x00" * (-len(data) % 4)
        table += signature + struct.pack(">II", offset + len(blob), len(data))
        blob += padded
    size = offset + len(blob)
    header = (
        struct.pack(">I", size)
        + b"lcms"
        + bytes([2, 0x10, 0, 0])
        + device_class
        + space
        + pcs
        + b"\x00" * 12  # date
        + b"acsp"
        + b"APPL"
        + b"\x00" * 4  # flags
        + b"\x00" * 8  # manufacturer, model
        + b"\x00" * 8  # attributes
        + struct.pack(">I", 0)  # rendering intent
        + b"".join(_s15f16(v) for v in D50)
        + b"\x00" * 4  # creator
    )
    header += b"\x00" * (128 - len(header))
    return header + struct.pack(">I", len(tags)) + table + blob


def adobe_rgb_profile() -> bytes:
    """A matrix/TRC Adobe RGB (1998)-compatible display profile."""
    curve = _curve(ADOBE_RGB_GAMMA)
    return _profile(
        b"mntr",
        b"RGB ",
        "Adobe RGB (1998) compatible (petcut tests)",
        [
            (b"rXYZ", _xyz(ADOBE_RGB_COLORANTS[0])),
            (b"gXYZ", _xyz(ADOBE_RGB_COLORANTS[1])),
            (b"bXYZ", _xyz(ADOBE_RGB_COLORANTS[2])),
            (b"rTRC", curve),
            (b"gTRC", curve),
            (b"bTRC", curve),
        ],
    )


def grey_profile(gamma: float = 2.2) -> bytes:
    """A greyscale display profile: D50 white, a gamma tone curve."""
    curve = _curve(gamma)
    return _profile(
        b"mntr",
        b"GRAY",
        f"Grey gamma {gamma} (petcut tests)",
        [
            (b"kTRC", curve),
        ],
    )


def cmyk_profile() -> bytes:
    """A CMYK output profile: an A2B0 lut16 (CMYK → XYZ, 3-point grid) from a simple ink model.

    The inks are not sRGB's complements (cyan absorbs some green, magenta some blue, ...) so the result
    differs from Pillow's naive ``255 - C - K`` conversion.
    """
    grid = 3
    points = np.linspace(0.0, 1.0, grid)
    srgb_to_xyz_d50 = np.array(
        [[0.4360747, 0.3850649, 0.1430804], [0.2225045, 0.7168786, 0.0606169], [0.0139322, 0.0971045, 0.7141733]]
    )
    clut = []
    for c in points:
        for m in points:
            for y in points:
                for k in points:
                    linear = np.array(
                        [
                            (1 - 0.95 * c) * (1 - 0.10 * m) * (1 - 0.02 * y),
                            (1 - 0.30 * c) * (1 - 0.90 * m) * (1 - 0.05 * y),
                            (1 - 0.10 * c) * (1 - 0.25 * m) * (1 - 0.92 * y),
                        ]
                    ) * (1 - 0.93 * k)
                    xyz = srgb_to_xyz_d50 @ (linear * 0.96 + 0.01)
                    clut.extend(round(v / (1 + 32767 / 32768) * 65535) for v in xyz)
    identity = [0, 65535]
    lut = (
        b"mft2\x00\x00\x00\x00"
        + bytes([4, 3, grid, 0])
        + b"".join(_s15f16(v) for v in (1, 0, 0, 0, 1, 0, 0, 0, 1))
        + struct.pack(">HH", len(identity), len(identity))
        + struct.pack(f">{4 * len(identity)}H", *(identity * 4))
        + struct.pack(f">{len(clut)}H", *clut)
        + struct.pack(f">{3 * len(identity)}H", *(identity * 3))
    )
    return _profile(
        b"prtr",
        b"CMYK",
        "Simple CMYK (petcut tests)",
        [
            (b"A2B0", lut),
        ],
    )


def display_p3_profile(pets_dir: Path) -> bytes:
    """The Display P3 profile embedded in the shop's iPhone photo ``Squid.jpg``."""
    with Image.open(pets_dir / "Squid.jpg") as image:
        return image.info["icc_profile"]


def srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def profile_of(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(BytesIO(icc))


# --- the reference conversion (no LittleCMS) -----------------------------------------------------------
def srgb_decode(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def srgb_encode(v: np.ndarray) -> np.ndarray:
    v = np.clip(v, 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * v ** (1 / 2.4) - 0.055)


def colorants(icc: bytes) -> np.ndarray:
    """The profile's D50 rXYZ/gXYZ/bXYZ as the columns of an RGB → XYZ matrix."""
    p = profile_of(icc).profile
    return np.array([p.red_colorant[0], p.green_colorant[0], p.blue_colorant[0]], dtype=np.float64).T


def reference_to_srgb(rgb: np.ndarray, icc: bytes, decode_trc) -> np.ndarray:
    """uint8 RGB in the profile ``icc`` (tone curve ``decode_trc``) → float sRGB 0..255 (relative
    colorimetric: D50 colorants of both profiles, clipping out-of-gamut colours)."""
    linear = decode_trc(rgb.astype(np.float64) / 255.0)
    matrix = np.linalg.inv(colorants(srgb_profile().tobytes())) @ colorants(icc)
    out = linear @ matrix.T
    return srgb_encode(out) * 255.0


def adobe_decode(v: np.ndarray) -> np.ndarray:
    return v**ADOBE_RGB_GAMMA


def embed(image: Image.Image, fmt: str, icc: bytes | None, **params) -> bytes:
    buf = BytesIO()
    if icc is not None:
        params["icc_profile"] = icc
    image.save(buf, fmt, **params)
    return buf.getvalue()


def pattern(size: int = 96) -> np.ndarray:
    """uint8 RGB: saturated ramps, greys, skin and fur tones, and random colours."""
    rng = np.random.default_rng(13)
    ramp = np.linspace(0, 255, size).astype(np.uint8)
    rows = [
        np.stack([ramp, np.zeros_like(ramp), np.zeros_like(ramp)], -1),
        np.stack([np.zeros_like(ramp), ramp, np.zeros_like(ramp)], -1),
        np.stack([np.zeros_like(ramp), np.zeros_like(ramp), ramp], -1),
        np.stack([ramp, ramp, ramp], -1),
        np.stack([ramp, (ramp * 0.7).astype(np.uint8), (ramp * 0.45).astype(np.uint8)], -1),  # tan fur
        np.stack([ramp, (ramp * 0.5).astype(np.uint8), np.full_like(ramp, 20)], -1),  # orange cushion
    ]
    top = np.repeat(np.stack(rows), 4, axis=0)
    rest = rng.integers(0, 256, (size - top.shape[0], size, 3), dtype=np.uint8)
    return np.ascontiguousarray(np.concatenate([top, rest]))
