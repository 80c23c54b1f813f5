"""The GCS backend against a real gcp-storage-emulator (started by conftest), through the routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient

from petcut.config import Settings
from petcut.storage import ImageStore, open_store
from petcut.storage.gcs import GcsImageStore
from tests.support.images import image_bytes

T0 = datetime(2026, 7, 19, 12, 0, 0, tzinfo=UTC)
ClientFor = Callable[[ImageStore | None], TestClient]


@pytest.fixture
def store(gcs_bucket: str) -> GcsImageStore:
    built = open_store(Settings(storage_url=f"gs://{gcs_bucket}/shop", max_upload_mb=1, storage_timeout_s=5))
    assert isinstance(built, GcsImageStore)
    yield built
    built.close()


@pytest.fixture
def client(store: GcsImageStore, client_for: ClientFor) -> TestClient:
    return client_for(store)


def upload(client: TestClient, data: bytes, **fields: str) -> httpx.Response:
    form = {"session_id": "sess-1", "image_type": "original", **fields}
    return client.post("/store-image", data=form, files={"file": ("x.gif", data, "image/gif")})


def test_round_trip_through_the_returned_url(
    client: TestClient, gcs_emulator: str, gcs_bucket: str, png: bytes, jpeg: bytes
) -> None:
    for data, content_type in ((png, "image/png"), (jpeg, "image/jpeg")):
        response = upload(client, data, pet_name="Rex 🐶", pet_id="pet-7")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and body["content_type"] == content_type
        assert body["url"].startswith(f"{gcs_emulator}/{gcs_bucket}/shop/temporary/sess-1/original-")
        assert body["url"].endswith("/" + body["filename"])
        fetched = httpx.get(body["url"], timeout=5)  # straight from the (emulated) bucket, not via petcut
        assert fetched.status_code == 200
        assert fetched.content == data
        assert fetched.headers["content-type"] == content_type
    # the app does not proxy GCS objects
    key = body["url"].split("/shop/", 1)[1]
    assert client.get(f"/images/{key}").status_code == 404


def test_list_and_metadata(client: TestClient, png: bytes, jpeg: bytes) -> None:
    assert client.get("/session/sess-1/images").json()["count"] == 0
    upload(client, png, pet_name="Rex 🐶", effect_applied="popart")
    upload(client, jpeg, image_type="processed", tier="order_pending")
    upload(client, png, session_id="sess-10")  # a prefix of nothing: sess-1/ must not match sess-10/
    body = client.get("/session/sess-1/images").json()
    assert body["count"] == 2
    first, second = body["images"]
    assert (first["pet_name"], first["effect_applied"], first["tier"], first["size"]) == (
        "Rex 🐶",
        "popart",
        "temporary",
        len(png),
    )
    assert (second["image_type"], second["tier"], second["content_type"]) == (
        "processed",
        "order_pending",
        "image/jpeg",
    )
    assert httpx.get(second["url"], timeout=5).content == jpeg


def test_complete_order(client: TestClient, store: GcsImageStore, png: bytes, jpeg: bytes) -> None:
    a = upload(client, png).json()
    b = upload(client, jpeg, tier="order_pending").json()
    upload(client, png, tier="archived")
    response = client.post("/session/sess-1/complete-order", data={"order_id": "order-1001"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["order_id"] == "order-1001" and body["count"] == 2
    assert {i["tier"] for i in body["images"]} == {"order_completed"}
    assert {i["filename"] for i in body["images"]} == {a["filename"], b["filename"]}
    assert sorted(httpx.get(i["url"], timeout=5).content for i in body["images"]) == sorted([png, jpeg])
    for old in (a, b):
        assert httpx.get(old["url"], timeout=5).status_code == 404
    listed = client.get("/session/sess-1/images").json()["images"]
    assert sorted(i["tier"] for i in listed) == ["archived", "order_completed", "order_completed"]
    assert {i["order_id"] for i in listed if i["tier"] == "order_completed"} == {"order-1001"}
    again = client.post("/session/sess-1/complete-order", data={"order_id": "order-1001"}).json()
    assert [i["url"] for i in again["images"]] == [i["url"] for i in body["images"]]
    assert client.post("/session/nothing/complete-order", data={"order_id": "o"}).status_code == 404


def test_two_uploads_at_the_same_instant_never_overwrite(gcs_bucket: str, gcs_emulator: str) -> None:
    store = GcsImageStore(gcs_bucket, "shop", max_bytes=10**6, clock=lambda: T0)
    images = [image_bytes(seed=i) for i in range(4)]
    stored = [store.put("sess-1", "original", data) for data in images]
    assert len({s.key for s in stored}) == len(images)
    assert {s.created_at for s in stored} == {T0}
    for data, image in zip(images, stored, strict=True):
        assert httpx.get(image.url, timeout=5).content == data
    assert len(store.list_session("sess-1")) == len(images)


def test_bad_input_never_reaches_the_bucket(client: TestClient, png: bytes) -> None:
    for field, value in (("session_id", "../etc"), ("session_id", "a/b"), ("image_type", ".."), ("pet_id", "x" * 65)):
        response = upload(client, png, **{field: value})
        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_identifier"
    assert upload(client, b"plain text").status_code == 415
    assert upload(client, png + b"\x00" * (1024 * 1024)).status_code == 413
    assert client.get("/session/sess-1/images").json()["count"] == 0


def test_purge_expired(gcs_bucket: str, png: bytes) -> None:
    now = [T0]
    store = GcsImageStore(gcs_bucket, "", max_bytes=10**6, clock=lambda: now[0])
    temporary = store.put("s1", "original", png)
    archived = store.put("s1", "original", png, tier="archived")
    assert store.purge_expired(T0 + timedelta(hours=23)) == []
    assert store.purge_expired(T0 + timedelta(hours=25)) == [temporary.key]
    assert [i.key for i in store.list_session("s1")] == [archived.key]


def test_gcs_down_is_503_with_retry_after(monkeypatch: pytest.MonkeyPatch, client_for: ClientFor, png: bytes) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    store = open_store(Settings(storage_url="gs://petcut-down/shop", storage_timeout_s=0.5))
    client = client_for(store)
    started = time.monotonic()
    response = upload(client, png)
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "storage_unavailable"
    assert int(response.headers["retry-after"]) > 0
    assert "127.0.0.1" not in response.text
    response = client.get("/session/sess-1/images")
    assert response.status_code == 503
    assert time.monotonic() - started < 10
