"""InSPyReNet checkpoints: where they are, how to fetch them, and whether they are intact.

:class:`InSPyReNetWeights` is this model's :class:`~petcut.model.weights.WeightsSource`. The published
metadata (URL, md5, file name, network input size per mode) is transparent-background's own
``config.yaml``, read from the installed package without importing it (importing it pulls in its GUI,
downloaders and albumentations). Nothing here downloads unless ``download`` is called.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from petcut.config import Settings
from petcut.model import stamps
from petcut.model.base import ChecksumMismatchError, DownloadError, WeightsMissingError
from petcut.model.weights import CHUNK, Progress, WeightsSource, copy_response


@dataclass(frozen=True)
class ModeInfo:
    """Published facts about one model mode."""

    name: str
    url: str
    md5: str | None
    filename: str
    base_size: tuple[int, int]


def _package_dir() -> Path:
    spec = importlib.util.find_spec("transparent_background")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("transparent-background is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def published_modes() -> dict[str, ModeInfo]:
    """Every mode transparent-background publishes, from its packaged config.yaml."""
    raw = yaml.safe_load((_package_dir() / "config.yaml").read_text())
    return {
        name: ModeInfo(
            name=name,
            url=meta["url"],
            md5=meta.get("md5"),
            filename=meta["ckpt_name"],
            base_size=tuple(meta["base_size"]),
        )
        for name, meta in raw.items()
    }


def mode_info(mode: str) -> ModeInfo:
    try:
        return published_modes()[mode]
    except KeyError:
        raise ValueError(f"unknown mode {mode!r}; known: {', '.join(published_modes())}") from None


class InSPyReNetWeights(WeightsSource):
    """The configured mode's published checkpoint, or the file ``PETCUT_CHECKPOINT`` names."""

    def __init__(self, settings: Settings) -> None:
        mode = settings.mode
        super().__init__(
            settings, filename=mode_info(mode).filename, what=f"weights for mode {mode!r}",
            checksum=f"the published md5 for {mode}", download_label=f"{mode} weights",
        )  # fmt: skip

    def how_to_provide(self) -> str:
        return (
            f"run `petcut weights download --mode {self.settings.mode}` (needs network), copy the file to "
            f"{self.default_path()}, or set PETCUT_CHECKPOINT to a checkpoint file"
        )

    def locate(self) -> Path:
        """The checkpoint to load: the explicit file, else the weights directory's. Never downloads."""
        if self.settings.checkpoint is not None:
            path = self.settings.checkpoint.expanduser()
            if not path.is_file():
                raise WeightsMissingError(f"PETCUT_CHECKPOINT={path} does not exist or is not a file")
            return path
        return super().locate()

    def verify(self, path: Path, *, use_stamp: bool = True) -> bool:
        return verify(path, self.settings.mode, use_stamp=use_stamp)

    def download(self, progress: Progress | None = None) -> Path:
        return download(self.settings.mode, self.settings.weights_dir, progress=progress)


def file_md5(path: Path, progress: Callable[[int], None] | None = None) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    return digest.hexdigest()


def verify(path: Path, mode: str, *, use_stamp: bool = True) -> bool:
    """Check ``path`` against the mode's published md5. Returns False when none is published.

    A successful check leaves a stamp (md5, size, mtime) beside the file so later starts skip the
    hashing; a changed file invalidates the stamp. Raises ChecksumMismatchError on a mismatch.
    """
    expected = mode_info(mode).md5
    if expected is None:
        return False
    if use_stamp and stamps.is_stamped(path, expected):
        return True
    actual = file_md5(path)
    if actual != expected:
        raise ChecksumMismatchError(
            f"{path} has md5 {actual}, expected {expected} for mode {mode!r}: the file is corrupt or "
            "belongs to another mode; delete it and download again"
        )
    stamps.write_stamp(path, expected)
    return True


def should_verify(settings: Settings, path: Path) -> bool:
    """Published checksums apply to the published file name in the weights directory."""
    return settings.checkpoint is None and path.name == mode_info(settings.mode).filename


def download(
    mode: str,
    dest_dir: Path,
    *,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch the mode's published checkpoint into ``dest_dir``, verify its md5, write atomically.

    ``progress(bytes_so_far, total_or_None)`` is called as data arrives. Raises DownloadError with a
    clear message when offline or on an HTTP error, ChecksumMismatchError when the bytes are wrong.
    """
    import httpx

    info = mode_info(mode)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / info.filename
    digest = hashlib.md5(usedforsecurity=False)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".part", dir=dest_dir)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            with httpx.stream("GET", info.url, follow_redirects=True, timeout=timeout) as response:
                response.raise_for_status()
                copy_response(response, out, digest, progress)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if info.md5 and actual != info.md5:
            raise ChecksumMismatchError(f"downloaded {info.url} has md5 {actual}, expected {info.md5}")
        os.replace(tmp, final)
        if info.md5:
            stamps.write_stamp(final, info.md5)
        return final
    except httpx.HTTPStatusError as exc:
        raise DownloadError(f"download of {info.url} failed: HTTP {exc.response.status_code}") from exc
    except httpx.HTTPError as exc:
        raise DownloadError(
            f"cannot download {info.url} ({type(exc).__name__}: {exc}). Offline? Copy the checkpoint to "
            f"{final} or set PETCUT_CHECKPOINT"
        ) from exc
    finally:
        tmp.unlink(missing_ok=True)
