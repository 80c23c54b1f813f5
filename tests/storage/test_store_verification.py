"""docs/security.md: /store-image keeps only real, fully decodable images, and a bounded amount per
session."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from petcut.config import Settings
from petcut.storage import open_store
from petcut.storage.local import LocalImageStore
from tests.support.bombs import scan_bomb
from tests.support.images import image_bytes
from tests.support.service import make_app


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


def _client(tmp_path: Path, **settings: object) -> tuple[TestClient, LocalImageStore]:
    store = open_store(Settings(data_dir=tmp_path / "data", max_upload_mb=1))
    assert isinstance(store, LocalImageStore)
    app = make_app(store)
    app.state.settings = Settings(skip_model_preload=True, max_upload_mb=1, **settings)
    return TestClient(app), store


def _store(client: TestClient, data: bytes, session: str = "sess-1", **fields: str):  # type: ignore[no-untyped-def]
    form = {"session_id": session, "image_type": "original", "tier": "archived", **fields}
    return client.post("/store-image", data=form, files={"file": ("photo.png", data, "image/png")})


PNG = image_bytes("PNG")
JUNK_PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(64 * 1024)
TRUNCATED_PNG = PNG[: len(PNG) // 2]
POLYGLOT_HTML = PNG + b"<html><script>alert(document.cookie)</script></html>"
HTML_IN_CHUNK = PNG[:33] + _chunk(b"tEXt", b"c\x00<html><script>alert(1)</script>") + PNG[33:]
BIG = image_bytes("PNG", size=(3000, 3000))  # 9 MP


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (JUNK_PNG, 422, "invalid_image"),
        (TRUNCATED_PNG, 422, "invalid_image"),
        (POLYGLOT_HTML, 415, "unsupported_media_type"),
        (HTML_IN_CHUNK, 415, "unsupported_media_type"),
        (b"GIF89a" + b"<script>alert(1)</script>", 415, "unsupported_media_type"),
        (scan_bomb(side=64, repeats=300), 422, "too_many_scans"),
    ],
    ids=["random-bytes-as-png", "truncated", "html-appended", "html-in-text-chunk", "gif-script", "scans"],
)
def test_only_real_images_are_stored(tmp_path: Path, data: bytes, status: int, code: str) -> None:
    client, store = _client(tmp_path)
    response = _store(client, data)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert store.list_session("sess-1") == []


def test_images_over_the_pixel_limit_are_not_stored(tmp_path: Path) -> None:
    client, store = _client(tmp_path, max_pixels=4_000_000)
    response = _store(client, BIG)
    assert response.status_code == 413 and response.json()["error"]["code"] == "too_many_pixels"
    assert store.list_session("sess-1") == []


def test_real_images_of_every_common_format_are_still_stored(tmp_path: Path) -> None:
    client, store = _client(tmp_path)
    for fmt in ("PNG", "JPEG", "WEBP", "GIF", "TIFF"):
        response = _store(client, image_bytes(fmt))
        assert response.status_code == 200, (fmt, response.text)
    assert len(store.list_session("sess-1")) == 5


def test_a_session_holds_a_bounded_number_of_images(tmp_path: Path) -> None:
    client, store = _client(tmp_path, store_max_images_per_session=3)
    for seed in range(3):
        assert _store(client, image_bytes("PNG", seed=seed)).status_code == 200
    refused = _store(client, PNG)
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "session_quota_exceeded"
    assert len(store.list_session("sess-1")) == 3
    assert _store(client, PNG, session="sess-2").status_code == 200  # another session is not affected


def test_a_session_holds_a_bounded_number_of_bytes(tmp_path: Path) -> None:
    client, store = _client(tmp_path, store_max_mb_per_session=(2.5 * len(PNG)) / (1024 * 1024))
    assert _store(client, PNG).status_code == 200
    assert _store(client, image_bytes("PNG", seed=1)).status_code == 200
    refused = _store(client, image_bytes("PNG", seed=2))
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "session_quota_exceeded"
    assert len(store.list_session("sess-1")) == 2
