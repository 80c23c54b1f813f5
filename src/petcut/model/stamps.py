"""Verification stamps: a file beside a weights file recording the digest it was checked against.

A successful check writes ``<file>.verified`` (digest, size, mtime); later starts skip the hashing while
the file is unchanged. Shared by the InSPyReNet checkpoints (md5) and the IS-Net files (sha256).
"""

from __future__ import annotations

import contextlib
from pathlib import Path


def stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".verified")


def _value(path: Path, digest: str) -> str:
    stat = path.stat()
    return f"{digest} {stat.st_size} {stat.st_mtime_ns}\n"


def is_stamped(path: Path, digest: str) -> bool:
    """Whether ``path`` was verified against ``digest`` and has not changed since."""
    stamp = stamp_path(path)
    return stamp.is_file() and stamp.read_text() == _value(path, digest)


def write_stamp(path: Path, digest: str) -> None:
    """Record a passed check; a read-only weights directory just means hashing again next time."""
    with contextlib.suppress(OSError):
        stamp_path(path).write_text(_value(path, digest))
