"""The local-directory backend, through the routes (TestClient) and directly."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from petcut.config import Settings
from petcut.storage import ImageNotFound, ImageStore, Tier, open_store
from petcut.storage.local import LocalImageStore
from tests.support.images import image_bytes

T0 = datetime(2026, 7, 19, 12, 0, 0, tzinfo=UTC)
ClientFor = Callable[[ImageStore | None], TestClient]


@pytest.fixture
def store(tmp_path: Path) -> LocalImageStore:
    built = open_store(Settings(data_dir=tmp_path / "data", max_upload_mb=1))
    assert isinstance(built, LocalImageStore)
    return built


@pytest.fixture
def client(store: LocalImageStore, client_for: ClientFor) -> TestClient:
    return client_for(store)


def upload(
    client: TestClient, data: bytes, *, filename: str = "photo.png", content_type: str = "image/png", **fields: str
) -> dict:
    form = {"session_id": "sess-1", "image_type": "original", **fields}
    response = client.post("/store-image", data=form, files={"file": (filename, data, content_type)})
    return {"status": response.status_code, "body": response.json(), "headers": response.headers}


def test_round_trip_byte_for_byte(client: TestClient, store: LocalImageStore, png: bytes, jpeg: bytes) -> None:
    for data, ext in ((png, "png"), (jpeg, "jpg")):
        result = upload(client, data, pet_name="Rex", pet_id="pet-7", effect_applied="popart")
        assert result["status"] == 200, result
        body = result["body"]
        assert body["success"] is True
        assert (body["session_id"], body["image_type"], body["tier"]) == ("sess-1", "original", "temporary")
        assert body["filename"].startswith("original-") and body["filename"].endswith("." + ext)
        assert body["url"].startswith("http://testserver/images/temporary/sess-1/original-")
        fetched = client.get(body["url"])
        assert fetched.status_code == 200
        assert fetched.content == data
        assert fetched.headers["content-type"] == body["content_type"]
        assert fetched.headers["x-content-type-options"] == "nosniff"
    files = sorted(p.name for p in (store.root / "temporary" / "sess-1").iterdir())
    assert len([f for f in files if not f.endswith(".json")]) == 2  # and their metadata sidecars
    assert not [f for f in files if f.startswith(".")]  # no temporary files left


def test_public_base_url(tmp_path: Path, client_for: ClientFor, png: bytes) -> None:
    store = open_store(Settings(data_dir=tmp_path, public_base_url="https://img.example/petcut"))
    body = upload(client_for(store), png)["body"]
    assert body["url"].startswith("https://img.example/petcut/images/temporary/sess-1/original-")


def test_content_type_comes_from_the_bytes(client: TestClient, png: bytes) -> None:
    result = upload(client, png, filename="cat.gif", content_type="image/gif")
    assert result["status"] == 200
    assert result["body"]["content_type"] == "image/png"
    assert result["body"]["filename"].endswith(".png")
    assert client.get(result["body"]["url"]).headers["content-type"] == "image/png"


def test_text_named_png_is_415(client: TestClient, store: LocalImageStore) -> None:
    result = upload(client, b"just some text, not a picture\n" * 10, filename="evil.png")
    assert result["status"] == 415
    assert result["body"]["success"] is False
    assert result["body"]["error"]["code"] == "unsupported_media_type"
    assert not store.root.exists() or not any(store.root.rglob("*.png"))


def test_oversize_is_413(tmp_path: Path, client_for: ClientFor, png: bytes) -> None:
    store = LocalImageStore(tmp_path / "images", max_bytes=len(png) - 1)
    client = client_for(store)
    result = upload(client, png)
    assert result["status"] == 413
    assert result["body"]["error"]["code"] == "payload_too_large"
    # far over the limit: refused from Content-Length / while streaming, before the body is read
    huge = png + b"\x00" * (400 * 1024)
    result = upload(client, huge)
    assert result["status"] == 413
    assert result["body"]["error"]["code"] == "payload_too_large"
    assert not (tmp_path / "images").exists()


def test_oversize_without_content_length_is_413(tmp_path: Path, client_for: ClientFor, png: bytes) -> None:
    store = LocalImageStore(tmp_path / "images", max_bytes=1024)
    boundary = "xyz"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
        "Content-Type: image/png\r\n\r\n"
    )
    body = head.encode() + png + b"\x00" * (300 * 1024) + f"\r\n--{boundary}--\r\n".encode()

    def chunks():
        for i in range(0, len(body), 16384):
            yield body[i : i + 16384]

    response = client_for(store).post(
        "/store-image", content=chunks(), headers={"content-type": f"multipart/form-data; boundary={boundary}"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


BAD = ["../etc", "a/b", "", "x" * 65, "..", "a\\b", "a\x00b", "ａｂｃ", ".hidden", "a b"]


@pytest.mark.parametrize(
    ("field", "value"),
    # an empty optional pet_id means "none"; empty session_id / image_type are refused
    [
        (field, value)
        for field in ("session_id", "image_type", "pet_id")
        for value in BAD
        if (field, value) != ("pet_id", "")
    ],
)
def test_bad_identifiers_are_400(
    client: TestClient, store: LocalImageStore, png: bytes, field: str, value: str
) -> None:
    result = upload(client, png, **{field: value})
    assert result["status"] == 400, result
    error = result["body"]["error"]
    assert (error["code"], error["field"]) == ("invalid_identifier", field)
    assert "request_id" in error
    assert not store.root.exists() or not any(store.root.rglob("*.png"))


def test_missing_fields_and_bad_bodies(client: TestClient, png: bytes) -> None:
    response = client.post("/store-image", data={"image_type": "original"}, files={"file": ("a.png", png)})
    assert response.status_code == 400 and response.json()["error"]["field"] == "session_id"
    response = client.post("/store-image", data={"session_id": "s", "image_type": "o"})
    assert response.status_code == 400 and response.json()["error"]["code"] in ("missing_file", "bad_request")
    response = client.post("/store-image", json={"session_id": "s"}, headers={"x-request-id": "req-123"})
    assert response.status_code == 400
    assert response.json()["error"]["request_id"] == "req-123"
    result = upload(client, png, tier="forever")
    assert result["status"] == 400 and result["body"]["error"]["field"] == "tier"
    result = upload(client, png, pet_name="x" * 500)
    assert result["status"] == 400 and result["body"]["error"]["field"] == "pet_name"


@pytest.mark.parametrize("session", ["%2e%2e", "..%2Fetc", "a%5Cb", "x" * 65, "%00"])
def test_bad_session_in_the_path_is_4xx(client: TestClient, session: str) -> None:
    for response in (
        client.get(f"/session/{session}/images"),
        client.post(f"/session/{session}/complete-order", data={"order_id": "o-1"}),
    ):
        assert 400 <= response.status_code < 500
        if response.status_code != 404:  # 404: no route matched (a slash), answered by the app's handler
            assert response.json()["error"]["code"] == "invalid_identifier"


def test_two_uploads_at_the_same_instant_never_overwrite(tmp_path: Path, png: bytes) -> None:
    store = LocalImageStore(tmp_path, max_bytes=10**6, clock=lambda: T0)
    first = store.put("sess-1", "original", png)
    second = store.put("sess-1", "original", png)
    assert first.key != second.key and first.created_at == second.created_at
    # even when the random token repeats, the second write picks another name instead of overwriting
    tokens = iter(["a" * 16, "a" * 16, "b" * 16])
    forced = LocalImageStore(tmp_path / "forced", max_bytes=10**6, clock=lambda: T0, token=lambda: next(tokens))
    other = image_bytes(seed=9)
    one = forced.put("sess-1", "original", png)
    two = forced.put("sess-1", "original", other)
    assert one.key.endswith("a" * 16 + ".png") and two.key.endswith("b" * 16 + ".png")
    assert forced.get(one.key) == (png, "image/png")
    assert forced.get(two.key) == (other, "image/png")
    assert [i.key for i in forced.list_session("sess-1")] == [one.key, two.key]


def test_concurrent_uploads_through_the_route(tmp_path: Path, client_for: ClientFor) -> None:
    store = LocalImageStore(tmp_path, max_bytes=10**6, clock=lambda: T0)
    client = client_for(store)
    images = [image_bytes(seed=i) for i in range(8)]
    results: list[dict] = [{}] * len(images)

    def send(i: int) -> None:
        results[i] = upload(client, images[i])

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(r["status"] == 200 for r in results)
    assert len({r["body"]["filename"] for r in results}) == len(images)
    for data, result in zip(images, results, strict=True):
        assert client.get(result["body"]["url"]).content == data


def test_list_session(client: TestClient, png: bytes, jpeg: bytes) -> None:
    assert client.get("/session/sess-1/images").json() == {
        "success": True,
        "session_id": "sess-1",
        "images": [],
        "count": 0,
    }
    upload(client, png, pet_name="Rex 🐶")
    upload(client, jpeg, image_type="processed", tier="order_pending", effect_applied="popart")
    upload(client, png, session_id="other")
    body = client.get("/session/sess-1/images").json()
    assert body["success"] is True and body["count"] == 2
    first, second = body["images"]
    assert (first["image_type"], first["tier"], first["pet_name"], first["content_type"]) == (
        "original",
        "temporary",
        "Rex 🐶",
        "image/png",
    )
    assert (second["image_type"], second["tier"], second["effect_applied"]) == ("processed", "order_pending", "popart")
    assert first["size"] == len(png) and first["url"].startswith("http://testserver/images/")
    assert client.get(second["url"]).content == jpeg


def test_complete_order_moves_to_order_completed(
    client: TestClient, store: LocalImageStore, png: bytes, jpeg: bytes
) -> None:
    a = upload(client, png)["body"]
    b = upload(client, jpeg, tier="order_pending")["body"]
    c = upload(client, png, tier="archived")["body"]
    response = client.post("/session/sess-1/complete-order", data={"order_id": "order-1001"})
    assert response.status_code == 200
    body = response.json()
    assert (body["success"], body["session_id"], body["order_id"], body["count"]) == (True, "sess-1", "order-1001", 2)
    assert {i["tier"] for i in body["images"]} == {"order_completed"}
    assert {i["order_id"] for i in body["images"]} == {"order-1001"}
    assert {i["filename"] for i in body["images"]} == {a["filename"], b["filename"]}
    for old in (a, b):  # moved: the old URL is gone, the new one serves the same bytes
        assert client.get(old["url"]).status_code == 404
    assert sorted(client.get(i["url"]).content for i in body["images"]) == sorted([png, jpeg])
    assert not (store.root / "temporary" / "sess-1").exists()
    listed = client.get("/session/sess-1/images").json()["images"]
    assert sorted(i["tier"] for i in listed) == ["archived", "order_completed", "order_completed"]
    assert client.get(c["url"]).status_code == 200
    # a retry answers the same images; another order finds nothing left to complete
    again = client.post("/session/sess-1/complete-order", data={"order_id": "order-1001"}).json()
    assert [i["url"] for i in again["images"]] == [i["url"] for i in body["images"]]
    response = client.post("/session/sess-1/complete-order", data={"order_id": "order-2002"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_complete_order_errors(client: TestClient, png: bytes) -> None:
    response = client.post("/session/empty/complete-order", data={"order_id": "o-1"})
    assert response.status_code == 404
    upload(client, png)
    response = client.post("/session/sess-1/complete-order")
    assert response.status_code == 400 and response.json()["error"]["field"] == "order_id"
    response = client.post("/session/sess-1/complete-order", data={"order_id": "../o"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_identifier"
    response = client.post("/session/sess-1/complete-order?order_id=o-9")
    assert response.status_code == 200 and response.json()["order_id"] == "o-9"


@pytest.mark.parametrize(
    "path",
    [
        "/images/..%2F..%2Fetc%2Fpasswd",
        "/images/%2e%2e/%2e%2e/etc/passwd",
        "/images/temporary/sess-1/../../../../etc/passwd",
        "/images/temporary/sess-1/original-20260719T120000000000Z-aaaaaaaaaaaaaaaa.png",  # well-formed, absent
        "/images/temporary/sess-1/original-20260719T120000000000Z-aaaaaaaaaaaaaaaa.png.json",
        "/images/",
        "/images/%00",
    ],
)
def test_serving_only_known_keys(client: TestClient, png: bytes, path: str) -> None:
    upload(client, png)
    response = client.get(path)
    assert response.status_code == 404
    assert b"root:" not in response.content


def test_sidecar_is_not_served(client: TestClient, png: bytes) -> None:
    url = upload(client, png)["body"]["url"]
    assert client.get(url + ".json").status_code == 404


def test_symlink_out_of_the_store_is_not_served(tmp_path: Path, client_for: ClientFor) -> None:
    store = LocalImageStore(tmp_path / "images", max_bytes=10**6)
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"secret")
    key = "temporary/s/original-20260719T120000000000Z-aaaaaaaaaaaaaaaa.png"
    (tmp_path / "images" / "temporary" / "s").mkdir(parents=True)
    os.symlink(secret, tmp_path / "images" / key)
    assert client_for(store).get(f"/images/{key}").status_code == 404


def test_storage_failures_are_503(tmp_path: Path, client_for: ClientFor, png: bytes) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_bytes(b"")
    client = client_for(LocalImageStore(blocker / "images", max_bytes=10**6))
    result = upload(client, png)
    assert result["status"] == 503
    assert result["body"]["error"]["code"] == "storage_unavailable"
    assert result["headers"]["retry-after"] == str(result["body"]["retry_after"])
    assert "not-a-dir" not in str(result["body"])  # no paths in error bodies
    response = client_for(None).get("/session/s/images")  # no store configured
    assert response.status_code == 503 and "retry-after" in response.headers


def test_purge_expired(tmp_path: Path, png: bytes) -> None:
    now = [T0]
    store = LocalImageStore(tmp_path, max_bytes=10**6, clock=lambda: now[0])
    temporary = store.put("s1", "original", png)
    pending = store.put("s1", "original", png, tier=Tier.ORDER_PENDING)
    archived = store.put("s1", "original", png, tier="archived")
    store.put("s2", "original", png)
    now[0] = T0 + timedelta(days=20)
    (completed,) = store.complete_order("s2", "o-1")  # order_completed from day 20
    leftover = tmp_path / "temporary" / "s1" / ".x.png.tmp-0123"
    leftover.write_bytes(b"partial")
    written = (T0 + timedelta(hours=22, minutes=30)).timestamp()
    os.utime(leftover, (written, written))

    def keys() -> set[str]:
        return {i.key for s in ("s1", "s2") for i in store.list_session(s)}

    assert store.purge_expired(T0 + timedelta(hours=23)) == []
    assert leftover.exists()  # stale only an hour after it was written (mtime)
    assert store.purge_expired(T0 + timedelta(hours=25)) == [temporary.key]
    assert not leftover.exists()
    assert keys() == {pending.key, archived.key, completed.key}
    with pytest.raises(ImageNotFound):
        store.get(temporary.key)
    assert store.purge_expired(T0 + timedelta(days=31)) == [pending.key]
    assert store.purge_expired(T0 + timedelta(days=380)) == []  # completed on day 20: kept 365 days from then
    assert store.purge_expired(T0 + timedelta(days=386)) == [completed.key]
    assert store.purge_expired(T0 + timedelta(days=100_000)) == []
    assert keys() == {archived.key}
    assert not (tmp_path / "temporary" / "s1").exists()  # emptied session directories are removed


def test_purge_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, png: bytes, capsys: pytest.CaptureFixture[str]
) -> None:
    from petcut.storage.__main__ import main

    old = datetime.now(UTC) - timedelta(days=2)
    LocalImageStore(tmp_path / "images", max_bytes=10**6, clock=lambda: old).put("s", "original", png)
    monkeypatch.setenv("PETCUT_DATA_DIR", str(tmp_path))
    assert main(["purge"]) == 0
    assert "deleted 1 expired image" in capsys.readouterr().out


def test_listing_ignores_foreign_files(tmp_path: Path, png: bytes) -> None:
    store = LocalImageStore(tmp_path, max_bytes=10**6)
    image = store.put("s", "original", png)
    (tmp_path / "temporary" / "s" / "notes.txt").write_text("x")
    (tmp_path / "temporary" / "s" / "original-bad.png").write_bytes(png)
    assert [i.key for i in store.list_session("s")] == [image.key]
