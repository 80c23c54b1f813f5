"""Hostile images for the decode-bound tests: a progressive JPEG whose smallest scan is repeated."""

from __future__ import annotations

from io import BytesIO

from PIL import Image


def _segments(data: bytes) -> tuple[bytes, list[bytes], bytes]:
    """(everything before the first scan, the segments from there up to EOI, EOI)."""
    pos = 2
    while data[pos + 1] != 0xDA:
        pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
    header, parts, start, i = data[:pos], [], pos, pos + 2
    while True:
        j = data.find(b"\xff", i)
        following = data[j + 1]
        if following == 0 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            i = j + 2 if following != 0xFF else j + 1
            continue
        parts.append(data[start:j])
        start, i = j, j + 2
        if following == 0xD9:
            return header, parts, data[j:]


def progressive_jpeg(side: int) -> bytes:
    buffer = BytesIO()
    Image.new("L", (side, side), 128).save(buffer, "JPEG", progressive=True, quality=50)
    return buffer.getvalue()


def scan_bomb(side: int = 2400, repeats: int = 2000) -> bytes:
    """A valid progressive JPEG of ``side``² pixels with its smallest scan repeated ``repeats`` times:
    small on the wire, every repeat a pass over all coefficients when decoded."""
    header, parts, tail = _segments(progressive_jpeg(side))
    smallest = min((p for p in parts if p.startswith(b"\xff\xda")), key=len)
    return header + b"".join(parts) + smallest * repeats + tail
