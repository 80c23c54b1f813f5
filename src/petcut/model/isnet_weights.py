"""IS-Net weights: the npm package that ships them, its download, its checks and the assembled ONNX file.

``@imgly/background-removal-data@1.4.5`` on the npm registry carries IS-Net (DIS) background-removal
models as ONNX files split into chunks: ``dist/resources.json`` maps ``/models/medium`` and
``/models/small`` to ordered lists of chunks, each named by its sha256. :func:`download` fetches the
package metadata and the tarball over HTTPS (no Node.js), checks the tarball against the metadata's
``dist.integrity`` (sha512, the same value npm checks) and against the value pinned here (so a mirror
cannot serve another package under the same version), checks every chunk's sha256 and offsets,
assembles the variant's ONNX file, checks its sha256 (pinned) and moves it into the weights directory
atomically, next to the package's licence. Nothing here downloads unless :func:`download` is called.
:class:`IsNetWeights` is this model's :class:`~petcut.model.weights.WeightsSource`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import tarfile
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from petcut.config import Settings
from petcut.model import stamps
from petcut.model.base import ChecksumMismatchError, DownloadError
from petcut.model.weights import Progress, WeightsSource, copy_response

PACKAGE = "@imgly/background-removal-data"
VERSION = "1.4.5"
#: the tarball's ``dist.integrity`` as the npm registry published it for this version
INTEGRITY = "sha512-iRXZpPd7YirbJ4eOZ3SlvbdJkAc/LxVjzWLMHOezmRrVThPJPdPc+Y2kHEAVFEVvpDIuvBDyOfTTFBSJT2QR5w=="
LICENCE = "AGPL-3.0 (the model files of @imgly/background-removal-data); the IS-Net network design is MIT"
LICENCE_FILE = "isnet-LICENSE.md"


@dataclass(frozen=True)
class Variant:
    """One model the package ships."""

    name: str
    resource: str  # the key in dist/resources.json
    size: int  # bytes of the assembled ONNX file
    sha256: str  # of the assembled ONNX file
    summary: str

    @property
    def filename(self) -> str:
        return f"isnet-{self.name}.onnx"


VARIANTS: dict[str, Variant] = {
    "medium": Variant(
        "medium", "/models/medium", 88_188_479,
        "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb", "88 MB, fp16 weights",
    ),
    "small": Variant(
        "small", "/models/small", 44_342_436,
        "7001d60734fdc112dd9c062635fb59cd401fb82a9d4213134bce4dbd655c803a", "44 MB, uint8-quantised weights",
    ),
}  # fmt: skip


def variant_info(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown IS-Net variant {name!r}; known: {', '.join(VARIANTS)}") from None


class IsNetWeights(WeightsSource):
    """The configured variant's ONNX file, assembled from the npm package."""

    def __init__(self, settings: Settings) -> None:
        self.variant = info = variant_info(settings.isnet_variant)
        label = f"{PACKAGE}@{VERSION} (all variants)"
        super().__init__(
            settings, filename=info.filename, what=f"IS-Net {info.name} weights",
            checksum=f"the pinned sha256 of IS-Net {info.name}", download_label=label,
        )  # fmt: skip

    def how_to_provide(self) -> str:
        return (
            f"run `petcut weights download --model isnet --variant {self.settings.isnet_variant}` (needs the npm "
            f"registry, {self.settings.npm_registry}) or copy the assembled file to {self.default_path()}"
        )

    def verify(self, path: Path, *, use_stamp: bool = True) -> bool:
        verify(path, self.settings.isnet_variant, use_stamp=use_stamp)
        return True

    def download_notice(self) -> str:
        info = self.variant
        return f"IS-Net {info.name} ({info.summary}) from {PACKAGE}@{VERSION} on {self.settings.npm_registry}"

    def download(self, progress: Progress | None = None) -> Path:
        settings = self.settings
        return download(settings.isnet_variant, settings.weights_dir, registry=settings.npm_registry, progress=progress)


# --- checks -------------------------------------------------------------------------------------------
def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def verify(path: Path, variant: str, *, use_stamp: bool = True) -> None:
    """Check ``path`` against the variant's pinned sha256 (a stamp beside it skips the hashing next time).
    Raises ChecksumMismatchError on a mismatch."""
    info = variant_info(variant)
    if use_stamp and stamps.is_stamped(path, info.sha256):
        return
    actual = file_sha256(path)
    if actual != info.sha256:
        raise ChecksumMismatchError(
            f"{path} has sha256 {actual}, expected {info.sha256} for IS-Net {variant}: the file is corrupt or "
            "another variant; delete it and download again"
        )
    stamps.write_stamp(path, info.sha256)


def integrity_matches(integrity: str, sha512_digest: bytes) -> bool:
    """Whether an npm ``dist.integrity`` string (``sha512-<base64>``, maybe several) names this digest."""
    expected = "sha512-" + base64.b64encode(sha512_digest).decode()
    return expected in integrity.split()


# --- download -----------------------------------------------------------------------------------------
def metadata_url(registry: str) -> str:
    return f"{registry.rstrip('/')}/{quote(PACKAGE, safe='@')}/{VERSION}"


def _fetch_metadata(client: Any, registry: str) -> tuple[str, str]:
    """(tarball URL, integrity) from the registry's metadata of the pinned version."""
    url = metadata_url(registry)
    response = client.get(url, headers={"Accept": "application/json"})
    response.raise_for_status()
    try:
        dist = response.json()["dist"]
        tarball, integrity = str(dist["tarball"]), str(dist["integrity"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DownloadError(f"{url} is not npm package metadata (no dist.tarball / dist.integrity)") from exc
    if INTEGRITY not in integrity.split():
        raise ChecksumMismatchError(
            f"the registry at {registry} publishes {PACKAGE}@{VERSION} with integrity {integrity[:40]}…, "
            f"not the one petcut pins ({INTEGRITY[:40]}…): refusing another package under the same version"
        )
    if not tarball.startswith("https://") and not registry.startswith("http://"):
        raise DownloadError(f"the registry names a tarball that is not HTTPS: {tarball}")
    return tarball, integrity


def _download_tarball(
    client: Any, url: str, integrity: str, out: Any, progress: Callable[[int, int | None], None] | None
) -> None:
    digest = hashlib.sha512()
    with client.stream("GET", url) as response:
        response.raise_for_status()
        copy_response(response, out, digest, progress)
    out.flush()
    if not integrity_matches(integrity, digest.digest()):
        raise ChecksumMismatchError(f"the tarball from {url} does not match its integrity {integrity[:40]}…")


def _read_members(tarball: Path, wanted: Callable[[str], bool]) -> dict[str, bytes]:
    """The files under ``package/`` whose names ``wanted`` accepts, in one sequential pass (seeking back
    and forth in a gzip stream would decompress it again for every chunk)."""
    found: dict[str, bytes] = {}
    with tarfile.open(tarball, "r|gz") as archive:
        for member in archive:
            name = member.name.removeprefix("package/")
            if member.isfile() and wanted(name):
                handle = archive.extractfile(member)
                if handle is not None:
                    found[name] = handle.read()
    return found


def assemble(tarball: Path, variant: str, dest: Any) -> str:
    """Write the variant's ONNX file from the verified tarball to the open file ``dest``, checking every
    chunk's sha256 and offsets and the whole file's pinned sha256. Returns the licence text."""
    info = variant_info(variant)
    meta = _read_members(tarball, lambda name: name in ("dist/resources.json", "LICENSE.md"))
    try:
        resources = json.loads(meta["dist/resources.json"])
        chunks = resources[info.resource]["chunks"]
        size = int(resources[info.resource]["size"])
        names = [str(chunk["hash"]) for chunk in chunks]
    except (ValueError, KeyError, TypeError) as exc:
        raise ChecksumMismatchError(f"dist/resources.json has no usable entry {info.resource}") from exc
    wanted = {f"dist/{name}" for name in names}
    data = _read_members(tarball, wanted.__contains__)
    whole = hashlib.sha256()
    offset = 0
    for name, chunk in zip(names, chunks, strict=True):
        part = data.pop(f"dist/{name}", None)
        if part is None:
            raise ChecksumMismatchError(f"{PACKAGE}@{VERSION} lacks chunk {name} of {info.resource}")
        if hashlib.sha256(part).hexdigest() != name:
            raise ChecksumMismatchError(f"chunk {name} of {info.resource} does not match its sha256")
        if list(chunk["offsets"]) != [offset, offset + len(part)]:
            raise ChecksumMismatchError(f"chunk {name} of {info.resource} is not at its recorded offsets")
        dest.write(part)
        whole.update(part)
        offset += len(part)
    if offset != size or whole.hexdigest() != info.sha256:
        raise ChecksumMismatchError(
            f"the assembled IS-Net {variant} ({offset} bytes, sha256 {whole.hexdigest()}) is not the pinned file"
        )
    if "LICENSE.md" not in meta:
        raise ChecksumMismatchError(f"{PACKAGE}@{VERSION} has no LICENSE.md")
    return meta["LICENSE.md"].decode("utf-8", "replace")


def download(
    variant: str,
    dest_dir: Path,
    *,
    registry: str,
    progress: Progress | None = None,
    timeout: float = 30.0,
    transport: Any = None,
) -> Path:
    """Fetch the package from ``registry``, verify it, assemble the variant into ``dest_dir`` atomically.

    ``progress(bytes_so_far, total_or_None)`` follows the tarball. Raises DownloadError with a clear
    message when offline or on an HTTP error, ChecksumMismatchError when any check fails; nothing is left
    in ``dest_dir`` but a complete, verified file (and its licence). ``transport``: an httpx transport
    (tests).
    """
    import httpx

    info = variant_info(variant)
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / info.filename
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".isnet-", dir=dest_dir)))
        tarball = scratch / "package.tgz"
        try:
            client = stack.enter_context(httpx.Client(follow_redirects=True, timeout=timeout, transport=transport))
            url, integrity = _fetch_metadata(client, registry)
            with tarball.open("wb") as out:
                _download_tarball(client, url, integrity, out, progress)
        except httpx.HTTPStatusError as exc:
            raise DownloadError(f"download of {exc.request.url} failed: HTTP {exc.response.status_code}") from exc
        except httpx.HTTPError as exc:
            raise DownloadError(
                f"cannot reach the npm registry at {registry} ({type(exc).__name__}: {exc}). Offline? Set "
                f"PETCUT_NPM_REGISTRY to a mirror, or copy a verified {info.filename} to {final}"
            ) from exc
        part = scratch / info.filename
        with part.open("wb") as out:
            licence = assemble(tarball, variant, out)
            out.flush()
            os.fsync(out.fileno())
        tarball.unlink()
        (scratch / LICENCE_FILE).write_text(licence)
        os.replace(scratch / LICENCE_FILE, dest_dir / LICENCE_FILE)
        os.replace(part, final)
    stamps.write_stamp(final, info.sha256)
    return final
