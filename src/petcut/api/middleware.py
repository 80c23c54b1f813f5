"""The outermost ASGI layer: CORS, X-Request-ID, the streamed body limit and timeout, the last-resort 500.

It wraps everything, Starlette's ServerErrorMiddleware included, so every response the service produces
(a 500 from an unhandled exception, a 413 sent before the body is read, a 503 in any model state,
a preflight) carries ``Access-Control-Allow-Origin`` for an allowed origin, ``Vary: Origin`` and
``X-Request-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Iterable

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from petcut.api.errors import (
    MESSAGE_BY_STATUS,
    REQUEST_ID_KEY,
    BodyTimeout,
    BodyTooLarge,
    envelope_bytes,
    new_request_id,
)
from petcut.model.runtime import DRAINING_RETRY_AFTER
from petcut.observability import parse_cloud_trace, request_id_var, trace_var

log = logging.getLogger("petcut.api")

EXPOSE_HEADERS = (
    "X-Processing-Time",
    "X-Cache-Hits",
    "X-Model",
    "X-Session-ID",
    "X-Request-ID",
    "Retry-After",
    "X-Warmup-Status",
    "X-Model-Ready",
    "X-Warmup-Time",
    "X-Foreground-Left",
    "X-Foreground-Top",
    "X-Foreground-Width",
    "X-Foreground-Height",
    "X-Foreground-Found",
    "RateLimit",
    "RateLimit-Policy",
    "Content-Disposition",
)
ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
#: multipart framing on top of the file itself (boundaries, part headers, small form fields)
MULTIPART_SLACK = 256 * 1024


class CorsPolicy:
    """Allowed origins: an exact list (``*`` allows any) plus a regular expression (full match)."""

    def __init__(self, origins: Iterable[str], regex: str | None) -> None:
        origins = [o.strip().rstrip("/") for o in origins if o.strip()]
        self.allow_any = "*" in origins
        self.origins = frozenset(o for o in origins if o != "*")
        self.regex = re.compile(regex) if regex else None

    def allows(self, origin: str | None) -> bool:
        if not origin or not well_formed_origin(origin):
            return False
        return (
            self.allow_any
            or origin in self.origins
            or (self.regex is not None and self.regex.fullmatch(origin) is not None)
        )


# scheme://host[:port] and nothing else: a DNS name (letters, digits, hyphens, dots), IPv4 or [IPv6]
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://"
    r"(?P<host>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?|\[[0-9a-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?",
    re.IGNORECASE,
)


def well_formed_origin(origin: str) -> bool:
    """True for ``scheme://host[:port]`` only: no path, query, fragment, user info, spaces or control
    characters (an Origin header never has them; a regex must not be fooled by them)."""
    match = _ORIGIN.fullmatch(origin)
    if match is None or len(origin) > 300:
        return False
    port = match.group("port")
    return port is None or 0 < int(port) <= 65535


def valid_request_id(value: str | None) -> str | None:
    return value if value and _REQUEST_ID.fullmatch(value) else None


class EdgeMiddleware:
    """Pure ASGI. ``max_body_bytes=None`` disables the body limit."""

    def __init__(
        self, app: ASGIApp, *, cors: CorsPolicy, max_body_bytes: int | None, body_timeout_s: float | None = None
    ) -> None:
        self.app = app
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = valid_request_id(headers.get("x-request-id")) or new_request_id()
        scope[REQUEST_ID_KEY] = request_id
        state = scope.setdefault("state", {})
        if isinstance(state, dict):
            state["request_id"] = request_id
        rid_token = request_id_var.set(request_id)
        trace_token = trace_var.set(parse_cloud_trace(headers.get("x-cloud-trace-context")))
        origin = headers.get("origin")
        allowed = self.cors.allows(origin)
        try:
            if scope["method"] == "OPTIONS" and origin and "access-control-request-method" in headers:
                await self._preflight(headers, origin, allowed, request_id, send)
                return
            await self._serve(scope, receive, send, headers, origin if allowed else None, request_id)
        finally:
            request_id_var.reset(rid_token)
            trace_var.reset(trace_token)

    # --- responses -------------------------------------------------------------------------------
    def _decorate(self, message: Message, origin: str | None, request_id: str) -> None:
        headers = MutableHeaders(scope=message)
        headers["X-Request-ID"] = request_id
        vary = headers.get("vary")
        if not vary:
            headers["Vary"] = "Origin"
        elif "origin" not in [v.strip().lower() for v in vary.split(",")]:
            headers["Vary"] = f"{vary}, Origin"
        if origin is not None:
            headers["Access-Control-Allow-Origin"] = origin
            headers["Access-Control-Allow-Credentials"] = "true"
            headers["Access-Control-Expose-Headers"] = ", ".join(EXPOSE_HEADERS)

    async def _send_json(
        self,
        send: Send,
        status: int,
        body: bytes,
        origin: str | None,
        request_id: str,
        extra: dict[str, str] | None = None,
    ) -> None:
        message: Message = {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode(), v.encode()) for k, v in (extra or {}).items()),
            ],
        }
        self._decorate(message, origin, request_id)
        await send(message)
        await send({"type": "http.response.body", "body": body})

    async def _preflight(self, headers: Headers, origin: str, allowed: bool, request_id: str, send: Send) -> None:
        if not allowed:
            body = envelope_bytes("cors_origin_not_allowed", "This origin is not allowed.", request_id)
            await self._send_json(send, 400, body, None, request_id)
            return
        response_headers = [
            (b"access-control-allow-methods", ALLOW_METHODS.encode()),
            (b"access-control-max-age", PREFLIGHT_MAX_AGE.encode()),
            (b"content-length", b"0"),
        ]
        requested = headers.get("access-control-request-headers")
        if requested:
            response_headers.append((b"access-control-allow-headers", requested.encode("latin-1")))
        message: Message = {"type": "http.response.start", "status": 204, "headers": response_headers}
        self._decorate(message, origin, request_id)
        MutableHeaders(scope=message)["Vary"] = "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
        await send(message)
        await send({"type": "http.response.body", "body": b""})

    # --- the request -----------------------------------------------------------------------------
    async def _serve(
        self, scope: Scope, receive: Receive, send: Send, headers: Headers, origin: str | None, request_id: str
    ) -> None:
        limit = self.max_body_bytes
        if limit is not None:
            declared = headers.get("content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                log.info("request body over the limit (Content-Length)", extra={"content_length": int(declared)})
                body = envelope_bytes("payload_too_large", MESSAGE_BY_STATUS[413], request_id)
                await self._send_json(send, 413, body, origin, request_id, {"Connection": "close"})
                return

        started = False
        received = 0
        body_done = False
        timeout = self.body_timeout_s

        async def limited_receive() -> Message:
            nonlocal received, body_done
            if body_done or timeout is None:
                message = await receive()  # after the body: waiting for a disconnect is unbounded
            else:
                try:
                    message = await asyncio.wait_for(receive(), timeout)
                except TimeoutError:
                    log.info("request body stalled", extra={"received": received, "path": scope.get("path")})
                    raise BodyTimeout() from None
            if message["type"] == "http.request" and not message.get("more_body", False):
                body_done = True
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge()
            return message

        async def decorated_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                self._decorate(message, origin, request_id)
            await send(message)

        try:
            await self.app(scope, limited_receive, decorated_send)
        except asyncio.CancelledError:
            # uvicorn cancels what is still running when its graceful-shutdown timeout passes; it would
            # answer a bare plain-text 500. Answer the JSON 503 ``draining`` instead, then let it end.
            if not started:
                log.warning("request cancelled at shutdown", extra={"path": scope.get("path"), "state": "draining"})
                body = envelope_bytes(
                    "draining", "The service is shutting down; retry on another instance.", request_id,
                    retry_after=DRAINING_RETRY_AFTER, status="draining",
                )  # fmt: skip
                extra = {"Retry-After": str(DRAINING_RETRY_AFTER), "Connection": "close"}
                with contextlib.suppress(Exception):
                    await self._send_json(send, 503, body, origin, request_id, extra)
            raise
        except BodyTooLarge:
            if not started:
                body = envelope_bytes("payload_too_large", MESSAGE_BY_STATUS[413], request_id)
                await self._send_json(send, 413, body, origin, request_id, {"Connection": "close"})
            return
        except Exception:
            # ServerErrorMiddleware has normally sent our 500 already and re-raised: log it once here
            log.exception("unhandled error", extra={"path": scope.get("path"), "method": scope.get("method")})
            if not started:
                body = envelope_bytes("internal_error", MESSAGE_BY_STATUS[500], request_id)
                await self._send_json(send, 500, body, origin, request_id)
            return
        if not started:  # the app returned without answering: never let the server send a bare 500
            log.error("no response was sent", extra={"path": scope.get("path")})
            body = envelope_bytes("internal_error", MESSAGE_BY_STATUS[500], request_id)
            await self._send_json(send, 500, body, origin, request_id)
