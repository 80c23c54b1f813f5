"""Identifiers, keys, content sniffing, settings and open_store: no I/O."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from petcut.config import Settings, load_settings
from petcut.storage import InvalidIdentifier, InvalidParameter, Tier, open_store, parse_storage_url, sniff
from petcut.storage.errors import UnsupportedMediaType
from petcut.storage.ids import build_key, parse_key, validate_id, validate_text, validate_tier
from petcut.storage.media import require_image
from tests.support.images import image_bytes

BAD_IDS = [
    "",
    "..",
    ".",
    "../etc",
    "a/b",
    "a\\b",
    "/abs",
    "x" * 65,
    "a\x00b",
    "a b",
    "-lead",
    "_lead",
    ".hidden",
    "a.b",
    "é",
    "ａｂｃ",  # fullwidth letters
    "abc\u200b",  # zero-width space
    "١٢٣",  # Arabic-Indic digits
    "abc\n",
    "a%2Fb",
]


@pytest.mark.parametrize("value", BAD_IDS)
def test_bad_identifiers_are_refused_with_the_field_name(value: str) -> None:
    with pytest.raises(InvalidIdentifier) as info:
        validate_id("session_id", value)
    assert info.value.field == "session_id"
    assert isinstance(info.value, ValueError)
    assert info.value.code == "invalid_identifier"


@pytest.mark.parametrize("value", [None, 42, b"abc"])
def test_non_strings_are_refused(value: object) -> None:
    with pytest.raises(InvalidIdentifier):
        validate_id("order_id", value)


@pytest.mark.parametrize("value", ["a", "A9", "sess-42_x", "x" * 64, "0e1f7c1a-8a5b-4c36-9d1e-2f1b9c7d6e5a"])
def test_good_identifiers(value: str) -> None:
    assert validate_id("session_id", value) == value


def test_free_text_is_limited_and_clean() -> None:
    assert validate_text("pet_name", "  Rex the 2nd 🐶 ../ ") == "Rex the 2nd 🐶 ../"
    assert validate_text("pet_name", "   ") is None
    with pytest.raises(InvalidParameter):
        validate_text("pet_name", "x" * 101)
    for bad in ("Rex\x00", "Rex\u202e", "a\nb"):
        with pytest.raises(InvalidParameter):
            validate_text("pet_name", bad)


def test_tiers() -> None:
    assert validate_tier("order_pending") is Tier.ORDER_PENDING
    with pytest.raises(InvalidParameter) as info:
        validate_tier("forever")
    assert info.value.field == "tier"


def test_keys_round_trip_and_parse_refuses_anything_else() -> None:
    moment = datetime(2026, 7, 19, 10, 15, 30, 123456, tzinfo=UTC)
    key = build_key(Tier.TEMPORARY, "sess-1", "original", moment, "0123456789abcdef", "png")
    assert key == "temporary/sess-1/original-20260719T101530123456Z-0123456789abcdef.png"
    parts = parse_key(key)
    assert parts is not None
    assert (parts.tier, parts.session_id, parts.image_type, parts.created_at) == (
        Tier.TEMPORARY,
        "sess-1",
        "original",
        moment,
    )
    for bad in [
        key + ".json",
        "../" + key,
        key.replace("temporary", "tmp"),
        key.replace("/sess-1/", "/../"),
        key.replace(".png", ".svg"),
        "temporary/sess-1/original-20261319T101530123456Z-0123456789abcdef.png",  # month 13
        "temporary/sess-1/original-２0260719T101530123456Z-0123456789abcdef.png",
        "temporary/sess-1/.original-20260719T101530123456Z-0123456789abcdef.png",
        key + "\n",
        "",
    ]:
        assert parse_key(bad) is None, bad


@pytest.mark.parametrize(
    ("fmt", "content_type"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
        ("TIFF", "image/tiff"),
    ],
)
def test_sniff_real_images(fmt: str, content_type: str) -> None:
    media = sniff(image_bytes(fmt))
    assert media is not None and media.content_type == content_type


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return (8 + len(body)).to_bytes(4, "big") + b"ftyp" + body + b"\x00\x00\x00\x08meta"


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (_ftyp(b"heic", b"mif1", b"heic"), "image/heic"),
        (_ftyp(b"mif1", b"mif1", b"heic"), "image/heic"),
        (_ftyp(b"mif1", b"mif1"), "image/heif"),
        (_ftyp(b"avif", b"mif1", b"miaf"), "image/avif"),
        (_ftyp(b"mif1", b"avif"), "image/avif"),
        (b"MM\x00*\x00\x00\x00\x08", "image/tiff"),
    ],
)
def test_sniff_heif_family(data: bytes, content_type: str) -> None:
    media = sniff(data)
    assert media is not None and media.content_type == content_type


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"hello, this is text",
        b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        _ftyp(b"isom", b"mp42"),
        b"%PDF-1.7",
        b"\x89PNX",
        b"RIFF\x00\x00\x00\x00WAVE",
    ],
)
def test_sniff_refuses_the_rest(data: bytes) -> None:
    assert sniff(data) is None
    with pytest.raises(UnsupportedMediaType):
        require_image(data)


def test_storage_url_parsing() -> None:
    assert parse_storage_url("file:///srv/images") == ("file", "/srv/images", "")
    assert parse_storage_url("gs://my-bucket/shop/eu") == ("gs", "my-bucket", "shop/eu")
    assert parse_storage_url("gs://my-bucket") == ("gs", "my-bucket", "")
    for bad in ["file://relative/x", "s3://b/p", "gs://B@d", "gs://bucket/../x", "/srv/images", "gs://b/a b"]:
        with pytest.raises(ValueError, match="PETCUT_STORAGE_URL"):
            parse_storage_url(bad)


def test_open_store_picks_the_backend(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from petcut.storage.gcs import GcsImageStore
    from petcut.storage.local import LocalImageStore

    default = open_store(Settings(data_dir=tmp_path / "data", max_upload_mb=2))
    assert isinstance(default, LocalImageStore)
    assert default.root == tmp_path / "data" / "images"
    assert default.max_bytes == 2 * 1024 * 1024
    assert not (tmp_path / "data").exists()  # nothing created until the first write

    monkeypatch.setenv("PETCUT_STORAGE_URL", f"file://{tmp_path}/elsewhere")
    monkeypatch.setenv("PETCUT_PUBLIC_BASE_URL", "https://img.example/petcut/")
    local = open_store(load_settings())
    assert isinstance(local, LocalImageStore) and local.root == tmp_path / "elsewhere"
    assert local.url_for("k") == "https://img.example/petcut/images/k"

    gcs = open_store(Settings(storage_url="gs://bucket-1/shop/", storage_timeout_s=3))
    assert isinstance(gcs, GcsImageStore)
    assert (gcs.bucket_name, gcs.prefix, gcs.timeout_s) == ("bucket-1", "shop", 3)


def test_importing_opens_nothing_and_imports_no_google_library() -> None:
    code = (
        "import sys, petcut.storage, petcut.storage.gcs, petcut.storage.local, petcut.api.routes_storage\n"
        "assert not [m for m in sys.modules if m.startswith('google')], sorted(sys.modules)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
