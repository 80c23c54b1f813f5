"""The outermost layer: CORS and X-Request-ID on every response, preflight, the error envelope, the
streamed body limit, and a 500 from an unhandled exception that still carries all of them."""

from __future__ import annotations

import threading

import pytest

from petcut.model.runtime import State
from tests.support.checks import check_edge, check_error, check_png
from tests.support.fakes import FakeSegmenter, Loader
from tests.support.images import jpeg_bytes
from tests.support.service import ORIGIN, PREVIEW_ORIGIN, Service, make_settings, run

ROUTES = ["/health", "/ready", "/", "/warmup", "/api/v2/remove-background", "/no-such-route"]


def test_allowed_origins_exact_and_regex_fullmatch() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            for origin in (ORIGIN, PREVIEW_ORIGIN):
                response = await svc.client.get("/health", headers={"Origin": origin})
                assert response.status_code == 200
                check_edge(response, origin)
                assert response.headers["access-control-allow-credentials"] == "true"
            for origin in (
                "https://evil.example.com",
                "https://my-store.shopifypreview.com.evil.net",
                "http://my-store.shopifypreview.com",
                "https://shop.example.com.evil.net",
            ):
                response = await svc.client.get("/health", headers={"Origin": origin})
                assert response.status_code == 200
                check_edge(response, origin=None)

    run(scenario())


@pytest.mark.parametrize("path", ROUTES)
def test_preflight_on_every_route(path: str) -> None:
    async def scenario() -> None:
        # the model never loads here (gated loader): preflight must not depend on the model
        async with Service(loader=Loader(gate=threading.Event())) as svc:
            response = await svc.client.options(
                path,
                headers={
                    "Origin": PREVIEW_ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "content-type, x-request-id",
                },
            )
            assert response.status_code == 204
            check_edge(response, PREVIEW_ORIGIN)
            assert "POST" in response.headers["access-control-allow-methods"]
            assert response.headers["access-control-allow-headers"] == "content-type, x-request-id"
            assert int(response.headers["access-control-max-age"]) > 0

            refused = await svc.client.options(
                path, headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"}
            )
            check_error(refused, 400, "cors_origin_not_allowed", origin=None)
            svc.loader.gate.set()

    run(scenario())


def test_request_id_taken_when_well_formed_else_generated() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            response = await svc.client.get("/health", headers={"X-Request-ID": "abc-123_x.y"})
            assert response.headers["x-request-id"] == "abc-123_x.y"
            for bad in ("a" * 129, "has space", "semi;colon", "<script>"):
                response = await svc.client.get("/health", headers={"X-Request-ID": bad})
                check_edge(response)
                assert response.headers["x-request-id"] != bad
                assert len(response.headers["x-request-id"]) == 32
            first = await svc.client.get("/nope")
            second = await svc.client.get("/nope")
            assert first.headers["x-request-id"] != second.headers["x-request-id"]

    run(scenario())


def test_not_found_and_method_not_allowed_are_json() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            check_error(await svc.client.get("/no-such-route"), 404, "not_found")
            check_error(await svc.client.delete("/health"), 405, "method_not_allowed")
            check_error(await svc.client.get("/api/v2/remove-background"), 405, "method_not_allowed")

    run(scenario())


def test_unhandled_exception_in_a_route_is_500_with_cors_and_envelope() -> None:
    async def scenario() -> None:
        svc = Service()

        async def boom() -> None:
            raise RuntimeError("secret detail from /secret/path/file.py")

        svc.app.add_api_route("/boom", boom)
        async with svc:
            response = await svc.client.get("/boom", headers={"X-Request-ID": "req-500"})
            body = check_error(response, 500, "internal_error")
            assert body["error"]["request_id"] == "req-500"
            assert "secret" not in response.text
            # the service keeps serving
            assert (await svc.client.get("/health")).status_code == 200

    run(scenario())


def test_segmenter_raising_unexpected_exception_is_500_with_cors_and_envelope() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            svc.segmenter.faults.append(ValueError("/secret/path/model.py exploded"))
            response = await svc.process()
            check_error(response, 500, "internal_error")
            assert svc.runtime.state is State.READY  # a bug is not a device fault
            check_png(await svc.process(), (64, 48))

    run(scenario())


def test_body_over_limit_by_content_length_is_413_before_reading() -> None:
    async def scenario() -> None:
        async with Service(make_settings(max_upload_mb=0.05)) as svc:
            await svc.wait_state(State.READY)
            big = b"\0" * (1024 * 1024)
            response = await svc.client.post(
                "/api/v2/remove-background", files={"file": ("big.jpg", big, "image/jpeg")}
            )
            check_error(response, 413, "payload_too_large")
            assert svc.segmenter.calls == 2  # the two warmup images only

    run(scenario())


def test_chunked_body_over_limit_is_413_while_streaming() -> None:
    async def scenario() -> None:
        async with Service(make_settings(max_upload_mb=0.05)) as svc:
            await svc.wait_state(State.READY)
            sent = 0
            boundary = "xyzboundary"

            async def body():
                nonlocal sent
                yield (
                    f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
                    "Content-Type: image/jpeg\r\n\r\n"
                ).encode()
                for _ in range(64):  # 4 MiB in 64 KiB chunks, no Content-Length
                    sent += 1
                    yield b"\xff" * 65536
                yield f"\r\n--{boundary}--\r\n".encode()

            response = await svc.client.post(
                "/api/v2/remove-background",
                content=body(),
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
            )
            check_error(response, 413, "payload_too_large")
            assert sent < 64  # stopped reading early

    run(scenario())


def test_validation_errors_are_400_envelopes() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            no_file = await svc.client.post("/api/v2/remove-background", data={"other": "x"})
            check_error(no_file, 400, "missing_file")
            bad_param = await svc.client.post(
                "/api/v2/remove-background",
                params={"use_cache": "perhaps"},
                files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")},
            )
            check_error(bad_param, 400, "invalid_parameter")
            ok = await svc.process(params={"use_cache": "false"})
            check_png(ok, (64, 48))

    run(scenario())


@pytest.mark.parametrize(
    ("payload", "status"),
    [(b"this is not an image", 415), (jpeg_bytes()[:200], 422), (b"", 400)],
    ids=["text-named-png", "truncated-jpeg", "empty"],
)
def test_bad_images_get_their_4xx_with_cors(payload: bytes, status: int) -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            response = await svc.client.post(
                "/api/v2/remove-background", files={"file": ("pet.png", payload, "image/png")}
            )
            check_error(response, status)

    run(scenario())


def test_head_health_and_ready() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            await svc.wait_state(State.READY)
            for path in ("/health", "/ready"):
                response = await svc.client.head(path)
                assert response.status_code == 200
                check_edge(response)

    run(scenario())


def test_fake_loader_receives_the_apps_settings() -> None:
    async def scenario() -> None:
        loader = Loader(FakeSegmenter())
        settings = make_settings(resize="dynamic")
        async with Service(settings, loader) as svc:
            await svc.wait_state(State.READY)
            assert loader.settings is settings

    run(scenario())


def test_405_lists_every_method_of_the_path() -> None:
    async def scenario() -> None:
        async with Service() as svc:
            response = await svc.client.put("/warmup")
            check_error(response, 405, "method_not_allowed")
            assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST", "OPTIONS"}
            health = await svc.client.delete("/health")
            assert {m.strip() for m in health.headers["allow"].split(",")} >= {"GET", "HEAD"}

    run(scenario())


def test_the_middleware_stack_runs_in_the_declared_order() -> None:
    """One declared list, outermost first: metrics (observe only) → edge → Starlette's 500 → abuse guard →
    exception handlers → router. The metrics see the edge's own answers; the guard's 401/429 get CORS."""
    from starlette.middleware.errors import ServerErrorMiddleware
    from starlette.middleware.exceptions import ExceptionMiddleware

    from petcut.api import create_app
    from petcut.api.middleware import EdgeMiddleware
    from petcut.api.ratelimit import AbuseGuardMiddleware
    from petcut.api.routes_metrics import RequestMetricsMiddleware
    from petcut.api.stack import layers

    app = create_app(make_settings())
    declared = ["RequestMetricsMiddleware", "EdgeMiddleware", "ServerErrorMiddleware", "AbuseGuardMiddleware"]
    assert app.stack.names() == declared
    ours = (RequestMetricsMiddleware, EdgeMiddleware, ServerErrorMiddleware, AbuseGuardMiddleware, ExceptionMiddleware)
    built = [type(layer) for layer in layers(app.build_middleware_stack()) if isinstance(layer, ours)]
    assert built == list(ours)
    with pytest.raises(RuntimeError, match="add_middleware"):
        other = create_app(make_settings())
        other.add_middleware(ServerErrorMiddleware)
        other.build_middleware_stack()


def test_exposed_headers_are_the_documented_ones() -> None:
    """Browsers may read what the routes document in OpenAPI, plus what the edge and the guard always add."""

    async def scenario() -> None:
        async with Service() as svc:
            response = await svc.client.get("/health")
            exposed = {name.strip() for name in response.headers["access-control-expose-headers"].split(",")}
            documented = {
                name
                for path in svc.app.openapi()["paths"].values()
                for operation in path.values()
                for answer in operation.get("responses", {}).values()
                for name in answer.get("headers", {})
            }
            assert exposed == documented | {"X-Request-ID", "Retry-After", "RateLimit", "RateLimit-Policy"}
            assert {"X-Session-ID", "X-Foreground-Found", "Content-Disposition", "X-Model"} <= exposed

    run(scenario())
