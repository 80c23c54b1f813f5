"""Bounds on the work one decode may do: JPEG scan count, a deadline, and cancellation.

A progressive JPEG may repeat a tiny scan thousands of times; each repeat costs a pass over every
coefficient of the image (~0.4 ms at 23 MP), so a 0.5 MB file could burn seconds of CPU and a 50 MB
one minutes, while staying under every byte and pixel limit. Three bounds, all checked by
:func:`petcut.imaging.decode.decode_image`:

* :func:`check_jpeg_scans`: the SOS markers are counted before any pixel is decoded (a C-speed byte
  search after a structural walk of the header segments, so EXIF/ICC payloads do not count); more than
  ``max_scans`` → :class:`TooManyScans` (422 ``too_many_scans``). A normal progressive JPEG has ~10.
* :class:`BoundedStream`: the file object Pillow reads from. Every read checks a deadline
  (:class:`DecodeTimeout`, 422 ``decode_timeout``) and the caller's cancellation flag
  (:class:`DecodeCancelled`, when the client went away). Pillow feeds its decoders in chunks of
  ``decodermaxblock`` bytes; :func:`bound_chunks` makes those chunks small so a check happens often.
* :func:`cancellation` / :func:`cancel_current`: a context variable holding a ``threading.Event``;
  ``anyio.to_thread`` copies the context into the decoding thread, so the event loop can stop a decode
  it no longer needs.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import TYPE_CHECKING

from petcut.imaging.errors import ImageDecodeError, ImageError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "DECODE_CHUNK",
    "BoundedStream",
    "DecodeCancelled",
    "DecodeTimeout",
    "TooManyScans",
    "bound_chunks",
    "cancel_current",
    "cancellation",
    "check_jpeg_scans",
    "count_jpeg_scans",
]

#: Bytes Pillow hands its decoder per call (Pillow's default is 64 KiB): each call is one deadline check.
DECODE_CHUNK = 4 * 1024

_SOS = b"\xff\xda"
# markers without a length field (SOI, EOI, RSTn, TEM)
_STANDALONE = frozenset({0xD8, 0xD9, 0x01, *range(0xD0, 0xD8)})


class TooManyScans(ImageDecodeError):
    code = "too_many_scans"
    default_message = "The JPEG has an implausible number of scans; it is refused without decoding."


class DecodeTimeout(ImageDecodeError):
    code = "decode_timeout"
    default_message = "The image took too long to decode; it is refused."


class DecodeCancelled(ImageError):
    """The request that wanted this decode has gone (nobody reads the answer)."""

    code = "client_closed_request"
    status = 499
    default_message = "The client closed the connection."


def count_jpeg_scans(data: bytes | bytearray | memoryview) -> int:
    """SOS markers in a JPEG: header segments are walked by their lengths up to the first scan, then
    the rest is searched for ``FF DA`` (entropy-coded data never holds it: ``FF`` is stuffed as
    ``FF 00``). Trailing images (MPO) count too. 0 when the data has no scan."""
    view = bytes(data) if not isinstance(data, bytes) else data
    n = len(view)
    pos = 2 if view[:2] == b"\xff\xd8" else 0
    while pos + 4 <= n:
        if view[pos] != 0xFF:
            break  # not a marker where one should be: fall back to searching
        marker = view[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker == 0xDA:
            return view.count(_SOS, pos)
        if marker in _STANDALONE:
            pos += 2
            continue
        pos += 2 + int.from_bytes(view[pos + 2 : pos + 4], "big")
    return view.count(_SOS, pos)


def check_jpeg_scans(data: bytes | bytearray | memoryview, max_scans: int) -> int:
    """The scan count, or :class:`TooManyScans` past ``max_scans``."""
    scans = count_jpeg_scans(data)
    if scans > max_scans:
        raise TooManyScans(f"The JPEG has {scans} scans; at most {max_scans} are accepted (a photo has about 10).")
    return scans


_cancel: ContextVar[threading.Event | None] = ContextVar("petcut_decode_cancel", default=None)


@contextlib.contextmanager
def cancellation() -> Iterator[threading.Event]:
    """Within this block, decodes started (in this context or threads that copy it) stop once the
    yielded event is set."""
    event = threading.Event()
    token = _cancel.set(event)
    try:
        yield event
    finally:
        _cancel.reset(token)


def cancel_current() -> threading.Event | None:
    """The cancellation event of the current context, if any."""
    return _cancel.get()


class BoundedStream(io.BytesIO):
    """``BytesIO`` whose reads fail once ``deadline`` (``time.monotonic()``) has passed or ``cancelled``
    is set. ``deadline=None``: no deadline."""

    def __init__(
        self, data: bytes | bytearray | memoryview, *, deadline: float | None, cancelled: threading.Event | None
    ) -> None:
        super().__init__(data)
        self.deadline = deadline
        self.cancelled = cancelled

    @classmethod
    def for_decode(cls, data: bytes | bytearray | memoryview, timeout_s: float | None) -> BoundedStream:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        return cls(data, deadline=deadline, cancelled=cancel_current())

    def check(self) -> None:
        if self.cancelled is not None and self.cancelled.is_set():
            raise DecodeCancelled()
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise DecodeTimeout()

    def read(self, size: int | None = -1, /) -> bytes:
        self.check()
        return super().read(size)

    def readinto(self, buffer: WriteableBuffer, /) -> int:
        self.check()
        return super().readinto(buffer)


def bound_chunks(im: object) -> None:
    """Make Pillow feed the decoder ``DECODE_CHUNK`` bytes at a time (one deadline check each)."""
    if getattr(im, "decodermaxblock", 0) > DECODE_CHUNK:
        im.decodermaxblock = DECODE_CHUNK  # type: ignore[attr-defined]
