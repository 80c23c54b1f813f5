"""IS-Net weights from an npm registry: every check, offline. A synthetic package (the same layout as
``@imgly/background-removal-data``: ``dist/resources.json`` and chunks named by their sha256) is served by
an httpx mock transport, with petcut's pins pointed at it; each test breaks one thing and checks that the
download refuses it and leaves nothing in the weights directory."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from petcut.config import Settings
from petcut.model import isnet_weights
from petcut.model.base import ChecksumMismatchError, DownloadError, WeightsMissingError

REGISTRY = "https://registry.example.test"
TARBALL_URL = f"{REGISTRY}/@imgly/background-removal-data/-/background-removal-data-1.4.5.tgz"


def integrity_of(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def build_package(
    chunks: list[bytes], *, names: list[str] | None = None, gap: int = 0, drop: int | None = None
) -> bytes:
    """A gzipped npm tarball whose /models/medium is ``chunks`` (named by sha256 unless ``names``)."""
    names = names or [hashlib.sha256(c).hexdigest() for c in chunks]
    entries, offset = [], 0
    for name, chunk in zip(names, chunks, strict=True):
        entries.append({"hash": name, "offsets": [offset + gap, offset + gap + len(chunk)]})
        offset += len(chunk)
    resources = {"/models/medium": {"chunks": entries, "size": offset, "mime": "application/octet-steam"}}
    files = {"package/dist/resources.json": json.dumps(resources).encode(), "package/LICENSE.md": b"# AGPL test\n"}
    files.update({f"package/dist/{name}": chunk for name, chunk in zip(names, chunks, strict=True)})
    if drop is not None:  # a chunk listed in resources.json but missing from the package
        del files[f"package/dist/{names[drop]}"]
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class Registry:
    """What the mock registry serves, and what it was asked."""

    tarball: bytes
    integrity: str
    requests: list[str]
    offline: bool = False
    status: int = 200

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(str(request.url))
        if self.offline:
            raise httpx.ConnectError("Name or service not known", request=request)
        if self.status != 200:
            return httpx.Response(self.status, request=request)
        if str(request.url) == isnet_weights.metadata_url(REGISTRY):
            meta = {"name": isnet_weights.PACKAGE, "version": "1.4.5",
                    "dist": {"tarball": TARBALL_URL, "integrity": self.integrity}}  # fmt: skip
            return httpx.Response(200, json=meta, request=request)
        if str(request.url) == TARBALL_URL:
            return httpx.Response(200, content=self.tarball, request=request)
        return httpx.Response(404, request=request)


CHUNKS = [b"onnx-part-one " * 700, b"onnx-part-two " * 500, b"tail"]
MODEL = b"".join(CHUNKS)


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A good synthetic package, with petcut's pins (tarball integrity, assembled sha256) set to it."""
    tarball = build_package(CHUNKS)
    monkeypatch.setattr(isnet_weights, "INTEGRITY", integrity_of(tarball))
    medium = replace(isnet_weights.VARIANTS["medium"], size=len(MODEL), sha256=hashlib.sha256(MODEL).hexdigest())
    monkeypatch.setitem(isnet_weights.VARIANTS, "medium", medium)
    return Registry(tarball, integrity_of(tarball), [])


def fetch(registry: Registry, dest: Path, **kwargs: object) -> Path:
    return isnet_weights.download(
        "medium", dest, registry=REGISTRY, transport=httpx.MockTransport(registry.handler), **kwargs
    )


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir()) if dest.exists() else []


def test_download_assembles_the_chunks_in_order_with_licence_stamp_and_progress(registry: Registry,
                                                                                 tmp_path: Path) -> None:  # fmt: skip
    seen: list[tuple[int, int | None]] = []
    path = fetch(registry, tmp_path, progress=lambda done, total: seen.append((done, total)))
    assert path == tmp_path / "isnet-medium.onnx"
    assert path.read_bytes() == MODEL
    assert (tmp_path / isnet_weights.LICENCE_FILE).read_text() == "# AGPL test\n"
    assert leftovers(tmp_path) == ["isnet-LICENSE.md", "isnet-medium.onnx", "isnet-medium.onnx.verified"]
    assert seen[-1] == (len(registry.tarball), len(registry.tarball))
    assert registry.requests == [isnet_weights.metadata_url(REGISTRY), TARBALL_URL]
    assert registry.requests[0] == f"{REGISTRY}/@imgly%2Fbackground-removal-data/1.4.5"
    isnet_weights.verify(path, "medium", use_stamp=False)


def test_tarball_altered_in_transit_is_refused_and_nothing_is_written(registry: Registry, tmp_path: Path) -> None:
    damaged = bytearray(registry.tarball)
    damaged[len(damaged) // 2] ^= 0xFF
    registry.tarball = bytes(damaged)
    with pytest.raises(ChecksumMismatchError, match="integrity"):
        fetch(registry, tmp_path)
    assert leftovers(tmp_path) == []


def test_a_registry_publishing_another_integrity_is_refused_before_the_tarball(registry: Registry,
                                                                                tmp_path: Path) -> None:  # fmt: skip
    other = build_package([b"something else"])
    registry.tarball, registry.integrity = other, integrity_of(other)  # self-consistent, but not the pinned one
    with pytest.raises(ChecksumMismatchError, match="not the one petcut pins"):
        fetch(registry, tmp_path)
    assert registry.requests == [isnet_weights.metadata_url(REGISTRY)]
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(
    ("names", "gap", "drop", "match"),
    [
        (["0" * 64, None, None], 0, None, "does not match its sha256"),  # a chunk whose content is not its name
        (None, 5, None, "recorded offsets"),  # chunks listed at the wrong offsets
        (None, 0, 1, "lacks chunk"),  # a chunk missing from the package
    ],
)
def test_a_package_with_a_bad_chunk_is_refused(
    registry: Registry,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    names: list | None,
    gap: int,
    drop: int | None,
    match: str,
) -> None:
    if names is not None:
        names = [n or hashlib.sha256(c).hexdigest() for n, c in zip(names, CHUNKS, strict=True)]
    bad = build_package(CHUNKS, names=names, gap=gap, drop=drop)
    monkeypatch.setattr(isnet_weights, "INTEGRITY", integrity_of(bad))  # the package itself is the bad one
    registry.tarball, registry.integrity = bad, integrity_of(bad)
    with pytest.raises(ChecksumMismatchError, match=match):
        fetch(registry, tmp_path)
    assert leftovers(tmp_path) == []


def test_assembled_file_must_match_the_pinned_sha256(registry: Registry, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setitem(isnet_weights.VARIANTS, "medium", replace(isnet_weights.VARIANTS["medium"], sha256="ab" * 32))
    with pytest.raises(ChecksumMismatchError, match="not the pinned file"):
        fetch(registry, tmp_path)
    assert leftovers(tmp_path) == []


def test_offline_says_so_and_how_to_proceed(registry: Registry, tmp_path: Path) -> None:
    registry.offline = True
    with pytest.raises(DownloadError, match="Offline") as caught:
        fetch(registry, tmp_path)
    assert REGISTRY in str(caught.value) and "PETCUT_NPM_REGISTRY" in str(caught.value)
    assert caught.value.transient
    assert leftovers(tmp_path) == []


def test_http_error_is_a_download_error(registry: Registry, tmp_path: Path) -> None:
    registry.status = 404
    with pytest.raises(DownloadError, match="HTTP 404"):
        fetch(registry, tmp_path)


def test_a_failed_download_leaves_the_previous_good_file_untouched(registry: Registry, tmp_path: Path) -> None:
    path = fetch(registry, tmp_path)
    registry.tarball = registry.tarball[:-10]
    with pytest.raises(ChecksumMismatchError):
        fetch(registry, tmp_path)
    assert path.read_bytes() == MODEL
    assert leftovers(tmp_path) == ["isnet-LICENSE.md", "isnet-medium.onnx", "isnet-medium.onnx.verified"]


def test_verify_catches_a_changed_file_despite_its_stamp(registry: Registry, tmp_path: Path) -> None:
    path = fetch(registry, tmp_path)
    isnet_weights.verify(path, "medium")
    with path.open("r+b") as handle:
        handle.write(b"X")
    with pytest.raises(ChecksumMismatchError, match="delete it and download again"):
        isnet_weights.verify(path, "medium")


def test_locate_never_downloads_and_says_how(tmp_path: Path) -> None:
    settings = Settings(model="isnet", isnet_variant="small", weights_dir=tmp_path)
    with pytest.raises(WeightsMissingError, match="petcut weights download --model isnet --variant small"):
        isnet_weights.IsNetWeights(settings).locate()
    assert isnet_weights.IsNetWeights(settings).default_path() == tmp_path / "isnet-small.onnx"


def test_settings_validate_variant_registry_and_fallback() -> None:
    assert Settings(isnet_variant=" SMALL ").isnet_variant == "small"
    assert Settings(npm_registry="https://npm.example/").npm_registry == "https://npm.example"
    with pytest.raises(ValueError, match="https"):
        Settings(npm_registry="ftp://npm.example")
    with pytest.raises(ValueError, match="PETCUT_MODEL=isnet"):
        Settings(model_fallback=True)  # InSPyReNet is never tagged as a fallback, nor switched
    assert Settings(model="isnet", model_fallback=True).model_choice == "fallback"
    assert Settings(model="isnet", isnet_variant="small").model_id == "isnet-small"
    assert Settings(mode="fast").model_id == "inspyrenet-fast"
