"""The edge: CORS, X-Request-ID, the streamed body limit and timeout, the last-resort 500.

The outermost layer that answers (:mod:`petcut.api.stack`; only the request metrics, which observe and never
answer, sit outside it). It wraps Starlette's ServerErrorMiddleware, so every response the service produces
(a 500 from an unhandled exception, a 413 sent before the body is read, a 503 in any model state, a
preflight) carries ``Access-Control-Allow-Origin`` for an allowed origin (:class:`CorsPolicy`), ``Vary:
Origin`` and ``X-Request-ID``. The headers browsers may read are those the routes document
(:func:`petcut.api.policy.exposed_headers`). Its own error answers go through
:func:`petcut.api.errors.send_error`, as :class:`~petcut.errors.PetcutError` instances.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Sequence

from starlette.datastructures import Headers, MutableHeaders
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from petcut.api.cors import CorsPolicy
from petcut.api.draining import Draining
from petcut.api.errors import REQUEST_ID_KEY, BodyTimeout, BodyTooLarge, new_request_id, send_error
from petcut.api.policy import exposed_headers
from petcut.errors import PetcutError
from petcut.observability import parse_cloud_trace, request_id_var, trace_var

log = logging.getLogger("petcut.api")

ALLOW_METHODS = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
PREFLIGHT_MAX_AGE = "600"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")
#: multipart framing on top of the file itself (boundaries, part headers, small form fields)
MULTIPART_SLACK = 256 * 1024
CLOSE = {"Connection": "close"}


class OriginNotAllowed(PetcutError):
    """A preflight from an origin that is not allowed."""

    status = 400
    code = "cors_origin_not_allowed"
    default_message = "This origin is not allowed."


def valid_request_id(value: str | None) -> str | None:
    return value if value and _REQUEST_ID.fullmatch(value) else None


class EdgeMiddleware:
    """Pure ASGI. ``max_body_bytes=None`` disables the body limit. ``routes``: the app's (live) route list;
    the headers they document are read here, when Starlette builds the stack on the first ASGI event."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        cors: CorsPolicy,
        max_body_bytes: int | None,
        body_timeout_s: float | None = None,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        self.app = app
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.expose_headers = ", ".join(exposed_headers(routes))

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
            headers["Access-Control-Expose-Headers"] = self.expose_headers

    def _decorating(self, send: Send, origin: str | None, request_id: str) -> Send:
        async def decorated_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self._decorate(message, origin, request_id)
            await send(message)

        return decorated_send

    async def _send_error(
        self,
        send: Send,
        error: PetcutError,
        origin: str | None,
        request_id: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        """``error`` through :func:`send_error`, with the edge's headers."""
        await send_error(self._decorating(send, origin, request_id), error, request_id, headers)

    async def _preflight(self, headers: Headers, origin: str, allowed: bool, request_id: str, send: Send) -> None:
        if not allowed:
            await self._send_error(send, OriginNotAllowed(), None, request_id)
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
                await self._send_error(send, BodyTooLarge(), origin, request_id, CLOSE)
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
                with contextlib.suppress(Exception):
                    await self._send_error(send, Draining(), origin, request_id, CLOSE)
            raise
        except BodyTooLarge:
            if not started:
                await self._send_error(send, BodyTooLarge(), origin, request_id, CLOSE)
            return
        except Exception:
            # ServerErrorMiddleware has normally sent our 500 already and re-raised: log it once here
            log.exception("unhandled error", extra={"path": scope.get("path"), "method": scope.get("method")})
            if not started:
                await self._send_error(send, PetcutError(), origin, request_id)
            return
        if not started:  # the app returned without answering: never let the server send a bare 500
            log.error("no response was sent", extra={"path": scope.get("path")})
            await self._send_error(send, PetcutError(), origin, request_id)
