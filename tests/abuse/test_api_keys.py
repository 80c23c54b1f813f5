"""Optional API keys: stored hashed, compared in constant time, X-API-Key or Bearer; required (when on)
except for browser pages of allowed origins; a valid key lifts the per-IP limit; 401 with the envelope."""

from __future__ import annotations

import hashlib
import io

import pytest

from petcut.api import auth
from petcut.api.auth import ApiKeys, hash_key, new_key
from petcut.config import SettingsError, load_settings
from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error
from tests.support.fakes import FakeClock
from tests.support.images import jpeg_bytes
from tests.support.service import ORIGIN, Service, client_for, make_settings, run, upload, use_clock

KEY = "pc_test-key-0123456789abcdefghijklmnopqrstuvwxyz"
OTHER = "pc_other-key-abcdefghijklmnopqrstuvwxyz0123456789"
PROCESS = "/api/v2/remove-background"


def keyed_settings(**overrides):
    values = {"api_key_hashes": f"{hash_key(OTHER)},{hash_key(KEY)}", "rate_limit_per_minute": 2}
    values.update(overrides)
    return make_settings(**values)


def test_keys_are_stored_as_sha256_hashes_and_verified() -> None:
    assert hash_key("abc") == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    keys = ApiKeys([hash_key(KEY), hash_key(OTHER)])
    assert keys.verify(KEY.encode()) == hash_key(KEY)[7:19]  # the id: 12 hex digits of the hash
    assert keys.verify(OTHER.encode()) == hash_key(OTHER)[7:19]
    assert keys.verify(b"pc_wrong") is None
    assert keys.verify(hash_key(KEY).encode()) is None  # the stored hash is not a key
    assert keys.verify(b"") is None and keys.verify(b"k" * 10_000) is None
    assert not ApiKeys([]).enabled
    fresh = new_key()
    assert len(fresh) >= 40 and "." not in fresh and ApiKeys([hash_key(fresh)]).verify(fresh.encode())


def test_settings_take_only_well_formed_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PETCUT_API_KEY_HASHES", f" {hash_key(KEY).upper().replace('SHA256', 'sha256')} , ")
    assert load_settings().api_key_hashes == [hash_key(KEY)]
    monkeypatch.setenv("PETCUT_API_KEY_HASHES", KEY)  # a plaintext key by mistake: refused, not echoed back
    with pytest.raises(SettingsError, match="PETCUT_API_KEY_HASHES") as info:
        load_settings()
    assert "sha256:<64 hex digits>" in str(info.value)


def test_hash_helper(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert auth.main(["hash", KEY]) == 0
    assert capsys.readouterr().out.strip() == hash_key(KEY)
    monkeypatch.setattr("sys.stdin", io.StringIO(KEY + "\n"))
    assert auth.main(["hash", "-"]) == 0
    assert capsys.readouterr().out.strip() == hash_key(KEY)
    assert auth.main(["new"]) == 0
    lines = dict(line.split(":  ", 1) if line.startswith("key") else line.split(": ", 1)
                 for line in capsys.readouterr().out.splitlines())  # fmt: skip
    assert hash_key(lines["key"]) == lines["hash"]
    assert auth.main([]) == 2 and "usage" in capsys.readouterr().err


def test_required_key_missing_invalid_valid_and_browser_origins() -> None:
    async def scenario() -> None:
        async with Service(keyed_settings(require_api_key=True, rate_limit_per_minute=100)) as svc:
            await svc.wait_state(State.READY)
            photo = upload(jpeg_bytes(16, 16))
            async with client_for(svc) as server:  # no Origin: a server or a script
                missing = await server.post(PROCESS, **photo)
                check_error(missing, 401, "unauthorized", origin=None)
                assert missing.headers["www-authenticate"] == 'Bearer realm="petcut"'
                assert "X-API-Key" in missing.json()["error"]["message"]

                invalid = await server.post(PROCESS, headers={"X-API-Key": "pc_nope"}, **photo)
                check_error(invalid, 401, "unauthorized", origin=None)
                assert invalid.headers["www-authenticate"] == 'Bearer realm="petcut", error="invalid_token"'

                for headers in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"X-API-Key": OTHER}):
                    ok = await server.post(PROCESS, headers=headers, **photo)
                    assert ok.status_code == 200, (headers, ok.text)
                # a JWT in Authorization (Cloud Run IAM's identity token) is not taken for a key
                jwt = await server.post(PROCESS, headers={"Authorization": "Bearer aaa.bbb.ccc"}, **photo)
                assert jwt.status_code == 401 and "needs an API key" in jwt.json()["error"]["message"]
                both = await server.post(
                    PROCESS, headers={"Authorization": "Bearer aaa.bbb.ccc", "X-API-Key": KEY}, **photo
                )
                assert both.status_code == 200

                for path in ("/health", "/ready", "/api/v2/effects", "/"):  # never need a key
                    assert (await server.get(path)).status_code == 200, path

                # the other protected routes
                store = await server.post("/store-image", data={"session_id": "s1", "image_type": "o"}, **photo)
                check_error(store, 401, "unauthorized", origin=None)
                complete = await server.post("/session/s1/complete-order", data={"order_id": "o1"})
                check_error(complete, 401, "unauthorized", origin=None)

            # the shop's front-end from an allowed origin: no key needed (Origin can be forged by a
            # non-browser client; this spares the browser a key, it is not authentication)
            browser = await svc.client.post(PROCESS, **photo)
            assert browser.status_code == 200
            check_edge(browser)
            # a disallowed origin is not exempt, and its 401 carries no CORS header
            async with client_for(svc, Origin="https://evil.example.com") as evil:
                check_error(await evil.post(PROCESS, **photo), 401, "unauthorized", origin=None)
            # a page served by petcut itself (/ui/): Origin names the Host
            async with client_for(svc, Origin="http://petcut.test") as own_page:
                assert (await own_page.post(PROCESS, **photo)).status_code == 200
            # an invalid key from an allowed origin: 401 with CORS, so the page can read it
            invalid = await svc.client.post(PROCESS, headers={"X-API-Key": "pc_nope"}, **photo)
            check_error(invalid, 401, "unauthorized")

    run(scenario())


def test_keys_optional_by_default_but_a_wrong_key_is_refused() -> None:
    async def scenario() -> None:
        async with Service(keyed_settings(rate_limit_per_minute=100)) as svc:
            await svc.wait_state(State.READY)
            async with client_for(svc) as server:
                photo = upload(jpeg_bytes(16, 16))
                assert (await server.post(PROCESS, **photo)).status_code == 200  # keyless: served
                wrong = await server.post(PROCESS, headers={"Authorization": "Bearer pc_nope"}, **photo)
                check_error(wrong, 401, "unauthorized", origin=None)
                assert (await server.get("/health", headers={"X-API-Key": "pc_nope"})).status_code == 200

    run(scenario())


def test_without_configured_keys_the_headers_are_ignored() -> None:
    async def scenario() -> None:
        async with Service(make_settings()) as svc:
            await svc.wait_state(State.READY)
            response = await svc.process(jpeg_bytes(16, 16), headers={"X-API-Key": "anything"})
            assert response.status_code == 200

    run(scenario())


def test_a_valid_key_lifts_the_ip_limit() -> None:
    async def scenario() -> None:
        async with Service(keyed_settings(rate_limit_per_minute=1)) as svc:
            use_clock(svc, FakeClock())
            await svc.wait_state(State.READY)
            photo = upload(jpeg_bytes(8, 8))
            async with client_for(svc) as server:
                assert (await server.post(PROCESS, **photo)).status_code == 200
                check_error(await server.post(PROCESS, **photo), 429, "rate_limited", origin=None)
                for _ in range(5):  # same address, with a key: not limited (the default), no headers
                    keyed = await server.post(PROCESS, headers={"X-API-Key": KEY}, **photo)
                    assert keyed.status_code == 200 and "ratelimit" not in keyed.headers

    run(scenario())


def test_a_per_key_limit_when_configured() -> None:
    async def scenario() -> None:
        async with Service(keyed_settings(rate_limit_per_minute=1, api_key_rate_limit_per_minute=3)) as svc:
            use_clock(svc, FakeClock())
            await svc.wait_state(State.READY)
            photo = upload(jpeg_bytes(8, 8))
            # the key's bucket follows the key, whatever address it comes from
            statuses = []
            for peer in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"):
                async with client_for(svc, peer, Origin=ORIGIN) as client:
                    response = await client.post(PROCESS, headers={"X-API-Key": KEY}, **photo)
                    statuses.append(response.status_code)
            assert statuses == [200, 200, 200, 429]
            assert response.headers["ratelimit-policy"] == '"api-key";q=3;w=60'
            check_error(response, 429, "rate_limited")
            other = await svc.client.post(PROCESS, headers={"X-API-Key": OTHER}, **photo)
            assert other.status_code == 200  # another key, another bucket

    run(scenario())
