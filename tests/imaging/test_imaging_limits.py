"""decode_image on bad input: limits, bombs, wrong formats, corrupt data. Each: the right ImageError."""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap
import warnings
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pillow_heif
import pytest
from PIL import GifImagePlugin, Image, ImageFile

from petcut.imaging import (
    ACCEPTED_FORMATS,
    MAX_FRAMES_COUNTED,
    DecodedImage,
    EmptyImage,
    ImageDecodeError,
    ImageError,
    ImageTooLarge,
    PayloadTooLarge,
    TooManyPixels,
    UnsupportedImageFormat,
    decode_image,
    sniff_format,
    sniff_image,
)

MAX_BYTES = 50 << 20
MAX_PIXELS = 24_000_000


def decode(data: bytes, **limits: int) -> DecodedImage:
    return decode_image(
        data, max_bytes=limits.get("max_bytes", MAX_BYTES), max_pixels=limits.get("max_pixels", MAX_PIXELS)
    )


def png_chunk(tag: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + tag + payload + struct.pack(">I", zlib.crc32(tag + payload))


def zeros_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of zeros, its rows streamed through zlib (never held in memory)."""
    row = bytes(1 + (width + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    idat = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def bomb_png() -> bytes:
    return zeros_png(30000, 30000)


def small_png() -> bytes:
    buf = BytesIO()
    Image.new("RGB", (100, 100), (1, 2, 3)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def no_decoding(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Records any attempt to decode pixel data (ImageFile.load)."""
    calls: list[str] = []
    real_load = ImageFile.ImageFile.load

    def spy(self: ImageFile.ImageFile):
        calls.append(self.format or "?")
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return calls


def assert_error(exc: ImageError, cls: type[ImageError], code: str, status: int) -> None:
    assert isinstance(exc, cls)
    assert (exc.code, exc.http_status) == (code, status)
    assert exc.message and "/" not in exc.message  # a sentence for a person, no file paths


# --- size limits -------------------------------------------------------------------------------------


def test_zero_bytes() -> None:
    with pytest.raises(EmptyImage) as info:
        decode(b"")
    assert_error(info.value, EmptyImage, "empty_file", 400)


def test_max_bytes_checked_before_anything_else() -> None:
    data = b"not even an image " * 100  # over the limit and garbage: the size wins
    with pytest.raises(PayloadTooLarge) as info:
        decode(data, max_bytes=1000)
    assert_error(info.value, ImageTooLarge, "payload_too_large", 413)
    assert "1000 bytes" in info.value.message
    decode(small_png(), max_bytes=len(small_png()))  # exactly at the limit is fine


def test_pixel_limit_from_header_before_decoding(no_decoding: list[str]) -> None:
    with pytest.raises(TooManyPixels) as info:
        decode(small_png(), max_pixels=9_999)
    assert_error(info.value, ImageTooLarge, "too_many_pixels", 413)
    assert "100×100" in info.value.message
    assert no_decoding == []
    decode(small_png(), max_pixels=10_000)
    assert "PNG" in no_decoding  # the spy does see real decodes


def test_side_limit() -> None:
    with pytest.raises(TooManyPixels, match="65500"):
        decode(zeros_png(70000, 1), max_pixels=10**9)


def test_png_bomb_refused_fast(bomb_png: bytes, no_decoding: list[str]) -> None:
    assert len(bomb_png) < 200_000  # 900 megapixels in ~110 KB
    with pytest.raises(TooManyPixels) as info:
        decode(bomb_png)  # refused from the header: no pixel is decoded (no_decoding)
    assert_error(info.value, TooManyPixels, "too_many_pixels", 413)
    assert no_decoding == []


def test_png_bomb_refused_even_with_huge_limit(bomb_png: bytes) -> None:
    """Pillow's own DecompressionBombError (over 2 × MAX_IMAGE_PIXELS) also maps to too_many_pixels."""
    with pytest.raises(TooManyPixels) as info:
        decode(bomb_png, max_pixels=10**12)
    assert info.value.code == "too_many_pixels"
    assert isinstance(info.value.__cause__, Image.DecompressionBombError)


def test_pillow_bomb_warning_as_error_maps_to_too_many_pixels() -> None:
    data = zeros_png(12000, 12000)  # 144 MP: over Pillow's warning threshold, under its error threshold
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with pytest.raises(TooManyPixels):
            decode(data, max_pixels=10**12)


def test_bomb_memory_stays_low_and_import_has_no_side_effects(bomb_png: bytes, tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(bomb_png)
    script = textwrap.dedent(
        """
        import json, resource, sys
        from io import BytesIO
        from PIL import Image
        max_image_pixels = Image.MAX_IMAGE_PIXELS
        import petcut.imaging as imaging
        side_effects = {"heif_registered": "HEIF" in Image.OPEN,
                        "max_image_pixels_changed": Image.MAX_IMAGE_PIXELS != max_image_pixels}
        buf = BytesIO(); Image.new("RGB", (8, 8)).save(buf, "PNG")
        imaging.decode_image(buf.getvalue(), max_bytes=1 << 20, max_pixels=10**6)  # warm up plugins
        data = open(sys.argv[1], "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            imaging.decode_image(data, max_bytes=50 << 20, max_pixels=24_000_000)
            code = "decoded"
        except imaging.ImageError as exc:
            code = exc.code
        grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(json.dumps({"code": code, "grown_kib": grown_kib, **side_effects}))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["code"] == "too_many_pixels"
    assert result["grown_kib"] < 32 * 1024  # decoding would need ~900 MB
    assert not result["heif_registered"] and not result["max_image_pixels_changed"]


# --- wrong or broken data ----------------------------------------------------------------------------


def test_text_named_png(tmp_path: Path) -> None:
    path = tmp_path / "photo.png"
    path.write_text("this is not a picture of a dog\n" * 10)
    with pytest.raises(UnsupportedImageFormat) as info:
        decode(path.read_bytes())
    assert_error(info.value, UnsupportedImageFormat, "unsupported_media_type", 415)
    for name in ("JPEG", "PNG", "WEBP", "HEIF", "GIF", "TIFF"):
        assert name in info.value.message


def test_random_bytes() -> None:
    data = np.random.default_rng(5).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    assert sniff_format(data) is None
    with pytest.raises(UnsupportedImageFormat):
        decode(data)


def test_truncated_real_jpeg(pets_dir: Path) -> None:
    data = (pets_dir / "Tex.jpeg").read_bytes()
    with pytest.raises(ImageDecodeError) as info:
        decode(data[: len(data) // 2])
    assert_error(info.value, ImageDecodeError, "invalid_image", 422)


def test_truncated_png() -> None:
    arr = np.random.default_rng(6).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    buf = BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    with pytest.raises(ImageDecodeError):
        decode(buf.getvalue()[: buf.tell() // 2])


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about the corrupt TIFF tags
@pytest.mark.parametrize("header", [b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"II*\x00"])
def test_known_magic_with_corrupt_header_is_422(header: bytes) -> None:
    with pytest.raises(ImageDecodeError):
        decode(header + b"\x00\x13garbage" * 8)


def test_bmp_is_refused() -> None:
    """Decision: BMP is not in the accepted list (spec/api.md "Inputs"), so 415, named in the message."""
    buf = BytesIO()
    Image.new("RGB", (4, 4)).save(buf, "BMP")
    with pytest.raises(UnsupportedImageFormat, match="BMP images are not accepted"):
        decode(buf.getvalue())


def test_pdf_is_refused() -> None:
    with pytest.raises(UnsupportedImageFormat, match="PDF"):
        decode(b"%PDF-1.7\n1 0 obj\n<<>>\nendobj\n")


def test_non_bytes_is_a_programming_error() -> None:
    with pytest.raises(TypeError):
        decode("a string")  # type: ignore[arg-type]


# --- sniffing ----------------------------------------------------------------------------------------


def encoded_samples() -> dict[str, bytes]:
    im = Image.fromarray(np.random.default_rng(7).integers(0, 256, (24, 24, 3), dtype=np.uint8))
    out = {}
    for fmt, name in [
        ("JPEG", "jpeg"),
        ("PNG", "png"),
        ("WEBP", "webp"),
        ("GIF", "gif"),
        ("TIFF", "tiff"),
        ("AVIF", "avif"),
    ]:
        buf = BytesIO()
        im.save(buf, fmt)
        out[name] = buf.getvalue()
    buf = BytesIO()
    pillow_heif.from_pillow(im).save(buf, quality=80)
    out["heif"] = buf.getvalue()
    return out


@pytest.fixture(scope="module")
def samples() -> dict[str, bytes]:
    return encoded_samples()


def test_sniff_format_recognises_every_accepted_format(samples: dict[str, bytes]) -> None:
    assert set(samples) == set(ACCEPTED_FORMATS)
    for name, data in samples.items():
        assert sniff_format(data) == name
        assert decode(data).format == name


def test_sniff_format_refused_and_unknown() -> None:
    assert sniff_format(b"BM\x00\x00") == "bmp"
    assert sniff_format(b"%PDF-1.4") == "pdf"
    assert sniff_format(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isomiso2") is None  # an MP4
    assert sniff_format(b"") is None
    assert sniff_format(b"hello") is None


@pytest.mark.filterwarnings("ignore::UserWarning")  # Pillow warns about corrupt TIFF/EXIF tags
def test_mutated_inputs_only_raise_image_errors(samples: dict[str, bytes]) -> None:
    """A small seeded fuzz: every outcome is a DecodedImage or an ImageError, nothing else."""
    rng = np.random.default_rng(8)
    outcomes = {"ok": 0, "error": 0}
    for data in samples.values():
        for _ in range(25):
            mutated = bytearray(data)
            kind = rng.integers(3)
            if kind == 0:  # flip a few bytes
                for pos in rng.integers(0, len(mutated), 4):
                    mutated[pos] ^= int(rng.integers(1, 256))
            elif kind == 1:  # truncate
                del mutated[int(rng.integers(1, len(mutated))) :]
            else:  # insert junk
                pos = int(rng.integers(0, len(mutated)))
                mutated[pos:pos] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
            try:
                img = decode(bytes(mutated))
            except ImageError:
                outcomes["error"] += 1
            else:
                assert img.rgb.dtype == np.uint8 and img.rgb.ndim == 3
                outcomes["ok"] += 1
    assert outcomes["error"] > 0


# --- frame counting is bounded -----------------------------------------------------------------------


def test_gif_with_millions_of_frames_is_counted_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counted by skipping blocks up to the cap: Pillow never walks the frames (its ``n_frames`` would seek
    every one of them, ~6 s here)."""
    seeks: list[int] = []
    real_seek = GifImagePlugin.GifImageFile._seek

    def spy(self: GifImagePlugin.GifImageFile, frame: int, *args: object, **kwargs: object) -> None:
        seeks.append(frame)
        return real_seek(self, frame, *args, **kwargs)

    monkeypatch.setattr(GifImagePlugin.GifImageFile, "_seek", spy)
    header = b"GIF89a" + struct.pack("<HH", 1, 1) + b"\x80\x00\x00" + b"\x00\x00\x00\xff\xff\xff"
    frame = b"\x2c" + struct.pack("<HHHH", 0, 0, 1, 1) + b"\x00" + b"\x02\x02\x44\x01\x00"  # 1×1, LZW
    data = header + frame * 3_400_000 + b"\x3b"  # ~50 MB; Pillow's n_frames needs ~6 s to walk it
    img = decode(data, max_bytes=64 << 20)
    assert max(seeks) <= 1, len(seeks)
    assert img.frames == MAX_FRAMES_COUNTED
    assert img.rgb.shape == (1, 1, 3)


def test_gif_frame_count_small() -> None:
    frames = [Image.new("RGB", (5, 5), (i * 40, 0, 0)) for i in range(5)]
    buf = BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:], duration=50)
    assert decode(buf.getvalue()).frames == 5
    buf = BytesIO()
    frames[0].save(buf, "GIF")
    assert decode(buf.getvalue()).frames == 1


def test_tiff_page_count_is_capped() -> None:
    pages = [Image.new("L", (1, 1), i % 256) for i in range(MAX_FRAMES_COUNTED + 200)]
    pages[0] = Image.new("L", (1, 1), 77)
    buf = BytesIO()
    pages[0].save(buf, "TIFF", save_all=True, append_images=pages[1:])
    img = decode(buf.getvalue())
    assert img.frames == MAX_FRAMES_COUNTED
    assert img.rgb.tolist() == [[[77, 77, 77]]]


def test_apng_frames() -> None:
    frames = [Image.new("RGBA", (4, 4), (0, 0, 255 - i, 255)) for i in range(4)]
    buf = BytesIO()
    frames[0].save(buf, "PNG", save_all=True, append_images=frames[1:])
    img = decode(buf.getvalue())
    assert img.format == "png" and img.frames == 4
    assert (img.rgb == (0, 0, 255)).all()


def test_sniff_image_tells_heic_from_heif_and_refused_kinds() -> None:
    def ftyp(major: bytes, *compatible: bytes) -> bytes:
        body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
        return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body

    heic, heif = sniff_image(ftyp(b"mif1", b"mif1", b"heic")), sniff_image(ftyp(b"mif1", b"mif1"))
    assert heic is not None and (heic.format, heic.content_type, heic.ext) == ("heif", "image/heic", "heic")
    assert heif is not None and (heif.format, heif.content_type, heif.ext) == ("heif", "image/heif", "heif")
    assert heic.accepted and heif.accepted
    avif = sniff_image(ftyp(b"miaf", b"avif"))
    assert avif is not None and (avif.format, avif.ext) == ("avif", "avif")
    bmp = sniff_image(b"BM\x00\x00")
    assert bmp is not None and bmp.format == "bmp" and not bmp.accepted
