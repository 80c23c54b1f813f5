"""Where a model's weights come from: one interface, one implementation per model (docs/engines.md).

A :class:`WeightsSource` knows the file a model loads (in the weights directory, unless the settings
name one), how to tell the operator to provide it, how to check it against its pinned checksum and how
to download it. :class:`petcut.model.checkpoint.InSPyReNetWeights` and
:class:`petcut.model.isnet_weights.IsNetWeights` implement it; :func:`weights_source` picks the one the
settings ask for. Nothing here downloads unless :meth:`WeightsSource.download` is called.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, Protocol

from petcut.config import Settings
from petcut.model.base import WeightsMissingError

__all__ = ["Progress", "WeightsSource", "copy_response", "weights_source"]

#: ``progress(bytes_so_far, total_or_None)`` while a download runs
Progress = Callable[[int, int | None], None]

#: bytes read at a time from a download or a file being hashed
CHUNK = 1 << 20


class _Digest(Protocol):
    def update(self, data: bytes, /) -> None: ...


class _Streamed(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]: ...


def copy_response(response: _Streamed, out: BinaryIO, digest: _Digest, progress: Progress | None) -> None:
    """Write a streamed HTTP response to ``out``, hashing it and reporting (bytes done, total or None)."""
    total = int(response.headers.get("content-length", 0)) or None
    done = 0
    for chunk in response.iter_bytes(CHUNK):
        out.write(chunk)
        digest.update(chunk)
        done += len(chunk)
        if progress:
            progress(done, total)


class WeightsSource(ABC):
    """The weights file of one configured model: locate, describe, verify, download.

    ``filename``: the file's name in the weights directory; ``what``: the weights in words, for messages
    (``weights for mode 'fast'``); ``checksum``: what :meth:`verify` checks against, in words (``the
    pinned sha256 of IS-Net medium``); ``download_label``: what :meth:`download` fetches (a progress bar's
    label)."""

    def __init__(self, settings: Settings, *, filename: str, what: str, checksum: str, download_label: str) -> None:
        self.settings = settings
        self.filename = filename
        self.what = what
        self.checksum = checksum
        self.download_label = download_label

    @abstractmethod
    def how_to_provide(self) -> str:
        """What the operator can do when the file is missing."""

    @abstractmethod
    def verify(self, path: Path, *, use_stamp: bool = True) -> bool:
        """Check ``path`` against the pinned checksum: True when it matches, False when there is none to
        check against; ``ChecksumMismatchError`` otherwise. A stamp beside the file skips the hashing
        next time (``use_stamp=False`` hashes anyway)."""

    @abstractmethod
    def download(self, progress: Progress | None = None) -> Path:
        """Fetch, verify and write the file into the weights directory atomically; its path."""

    def download_notice(self) -> str | None:
        """A line to show before downloading (where from, what), if any."""
        return None

    # --- shared ---------------------------------------------------------------------------------------
    def default_path(self) -> Path:
        """Where the file lives in the weights directory."""
        return self.settings.weights_dir / self.filename

    def locate(self) -> Path:
        """The file to load from the weights directory. Never downloads; ``WeightsMissingError`` (saying
        how to provide it) when it is not there."""
        path = self.default_path()
        if not path.is_file():
            raise WeightsMissingError(f"no {self.what} at {path}: {self.how_to_provide()}")
        return path


def weights_source(settings: Settings) -> WeightsSource:
    """The weights source of the configured model (``PETCUT_MODEL``)."""
    if settings.model == "isnet":
        from petcut.model.isnet_weights import IsNetWeights

        return IsNetWeights(settings)
    from petcut.model.checkpoint import InSPyReNetWeights

    return InSPyReNetWeights(settings)
