"""The assertions every response must pass: CORS for an allowed origin, a well-formed X-Request-ID, the
JSON error envelope (docs/api.md), a PNG cut-out."""

from __future__ import annotations

import re
from io import BytesIO

import httpx
from PIL import Image

from tests.support.service import ORIGIN

REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


def check_edge(response: httpx.Response, origin: str | None = ORIGIN) -> None:
    """CORS for an allowed origin, Vary: Origin and a well-formed X-Request-ID: on every response."""
    headers = response.headers
    if origin is not None:
        assert headers.get("access-control-allow-origin") == origin, (response.status_code, dict(headers))
        exposed = headers.get("access-control-expose-headers", "")
        for name in ("X-Request-ID", "Retry-After", "X-Processing-Time", "X-Warmup-Status"):
            assert name in exposed
    else:
        assert "access-control-allow-origin" not in headers
    assert "origin" in [v.strip().lower() for v in headers.get("vary", "").split(",")], dict(headers)
    assert REQUEST_ID.fullmatch(headers.get("x-request-id", "")), dict(headers)


def check_error(response: httpx.Response, status: int, code: str | None = None, origin: str | None = ORIGIN) -> dict:
    """The status, the edge headers, and the JSON envelope (plus Retry-After/status on 503)."""
    assert response.status_code == status, (response.status_code, response.text)
    check_edge(response, origin)
    body = response.json()
    assert body["success"] is False
    error = body["error"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert re.fullmatch(r"[a-z][a-z0-9_]*", error["code"]), error
    if code is not None:
        assert error["code"] == code, body
    assert isinstance(error["message"], str) and error["message"]
    text = response.text
    assert "Traceback" not in text and "/secret" not in text and 'File "' not in text, text
    if status == 503:
        retry_after = int(response.headers["retry-after"])
        assert retry_after >= 1
        assert body["retry_after"] == retry_after
        assert isinstance(body["status"], str) and body["status"]
    return body


def check_png(response: httpx.Response, size: tuple[int, int] | None = None) -> None:
    assert response.status_code == 200, response.text
    check_edge(response)
    assert response.headers["content-type"] == "image/png"
    assert float(response.headers["x-processing-time"]) >= 0
    image = Image.open(BytesIO(response.content))
    assert image.mode == "RGBA"
    if size is not None:
        assert image.size == size
