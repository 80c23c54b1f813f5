"""Locating, verifying and downloading checkpoints, against a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from petcut.config import Settings
from petcut.model import checkpoint
from petcut.model.base import ChecksumMismatchError, DownloadError, WeightsMissingError


def test_published_metadata_comes_from_transparent_background() -> None:
    modes = checkpoint.published_modes()
    assert set(modes) >= {"base", "fast", "base-nightly"}
    assert modes["fast"].base_size == (384, 384)
    assert modes["base"].base_size == (1024, 1024)
    assert modes["fast"].md5 and len(modes["fast"].md5) == 32
    assert modes["base-nightly"].md5 is None


def test_locate_prefers_explicit_file_then_weights_dir(tmp_path: Path) -> None:
    explicit = tmp_path / "mine.pth"
    explicit.write_bytes(b"x")
    assert checkpoint.InSPyReNetWeights(Settings(checkpoint=explicit, weights_dir=tmp_path)).locate() == explicit
    in_dir = tmp_path / "ckpt_fast.pth"
    in_dir.write_bytes(b"y")
    assert checkpoint.InSPyReNetWeights(Settings(mode="fast", weights_dir=tmp_path)).locate() == in_dir


def test_locate_missing_explicit_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError, match="PETCUT_CHECKPOINT"):
        checkpoint.InSPyReNetWeights(Settings(checkpoint=tmp_path / "nope.pth")).locate()


@pytest.fixture
def fake_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Point mode 'fast' at a small payload with a known md5 and a URL we serve ourselves."""
    payload = b"petcut-weights" * 50_000
    md5 = hashlib.md5(payload).hexdigest()

    def install(url: str, md5_value: str | None = md5) -> checkpoint.ModeInfo:
        info = checkpoint.ModeInfo("fast", url, md5_value, "ckpt_fast.pth", (384, 384))
        monkeypatch.setattr(checkpoint, "published_modes", lambda: {"fast": info})
        return info

    return payload, install


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "srv"
    root.mkdir()

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", root
    server.shutdown()
    server.server_close()
    thread.join(10)


def test_verify_stamps_and_detects_a_changed_file(fake_mode, tmp_path: Path) -> None:
    payload, install = fake_mode
    install("http://unused")
    path = tmp_path / "ckpt_fast.pth"
    path.write_bytes(payload)
    assert checkpoint.verify(path, "fast") is True
    assert (tmp_path / "ckpt_fast.pth.verified").is_file()
    path.write_bytes(payload[:-1] + b"!")
    with pytest.raises(ChecksumMismatchError, match="corrupt"):
        checkpoint.verify(path, "fast")


def test_verify_without_published_md5_returns_false(fake_mode, tmp_path: Path) -> None:
    _, install = fake_mode
    install("http://unused", md5_value=None)
    path = tmp_path / "ckpt_fast.pth"
    path.write_bytes(b"anything")
    assert checkpoint.verify(path, "fast") is False


def test_download_verifies_and_writes_atomically(fake_mode, http_server, tmp_path: Path) -> None:
    payload, install = fake_mode
    base, root = http_server
    (root / "w.pth").write_bytes(payload)
    install(f"{base}/w.pth")
    seen: list[tuple[int, int | None]] = []
    dest = tmp_path / "weights"
    path = checkpoint.download("fast", dest, progress=lambda done, total: seen.append((done, total)))
    assert path == dest / "ckpt_fast.pth"
    assert path.read_bytes() == payload
    assert seen[-1] == (len(payload), len(payload))
    assert [p.name for p in dest.iterdir() if p.name.endswith(".part")] == []


def test_download_with_wrong_md5_leaves_nothing(fake_mode, http_server, tmp_path: Path) -> None:
    payload, install = fake_mode
    base, root = http_server
    (root / "w.pth").write_bytes(payload + b"tampered")
    install(f"{base}/w.pth")
    dest = tmp_path / "weights"
    with pytest.raises(ChecksumMismatchError):
        checkpoint.download("fast", dest)
    assert list(dest.iterdir()) == []


def test_download_http_error_and_offline(fake_mode, http_server, tmp_path: Path) -> None:
    _, install = fake_mode
    base, _root = http_server
    install(f"{base}/missing.pth")
    with pytest.raises(DownloadError, match="HTTP 404"):
        checkpoint.download("fast", tmp_path / "w")
    install("http://127.0.0.1:9/unreachable.pth")  # discard port: connection refused, like being offline
    with pytest.raises(DownloadError, match="Offline"):
        checkpoint.download("fast", tmp_path / "w", timeout=5)
