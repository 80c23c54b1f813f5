"""The JSON error envelope and the mapping of every exception to a truthful status.

``{"success": false, "error": {"code", "message", "request_id"}}`` plus ``retry_after`` and ``status``
on 503. Bodies never hold exception text from libraries, stack traces or file paths: those go to the
log, keyed by the request id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from petcut.errors import PetcutError

from petcut.imaging.errors import ImageError
from petcut.model.runtime_errors import DeadlineExceeded, RuntimeRejection, Unavailable
from petcut.storage.errors import StorageError

log = logging.getLogger("petcut.api")

REQUEST_ID_KEY = "petcut.request_id"

CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    408: "request_timeout",
    409: "conflict",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable_content",
    429: "rate_limited",
    499: "client_closed_request",
    500: "internal_error",
    501: "not_implemented",
    503: "unavailable",
    504: "deadline_exceeded",
}

MESSAGE_BY_STATUS = {
    404: "No such route.",
    405: "This method is not allowed on this route.",
    408: "The request body did not arrive in time.",
    413: "The request body is larger than the upload limit.",
    500: "An internal error occurred; it has been logged.",
}


class ApiError(Exception):
    """An error a route raises on purpose: its status, code and message reach the client as is."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.field = field
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        self.headers = headers or {}
        self.extra = extra or {}


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` when a streamed body passes the limit (FastAPI re-raises HTTPException)."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail=MESSAGE_BY_STATUS[413])


class BodyTimeout(StarletteHTTPException):
    """Raised from ``receive`` when the next piece of a request body does not come in time (a 408)."""

    def __init__(self) -> None:
        super().__init__(status_code=408, detail=MESSAGE_BY_STATUS[408], headers={"Connection": "close"})


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(request: Request) -> str:
    rid = request.scope.get(REQUEST_ID_KEY)
    if not rid:  # outside the edge middleware (should not happen): still answer with an id
        rid = request.scope[REQUEST_ID_KEY] = new_request_id()
    return str(rid)


def envelope(
    code: str,
    message: str,
    request_id: str,
    *,
    retry_after: int | None = None,
    status: str | None = None,
    extra: dict[str, Any] | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": {"code": code, "message": message, "request_id": request_id}}
    if field:
        body["error"]["field"] = field
    if extra:
        body.update(extra)
    if retry_after is not None:
        body["retry_after"] = retry_after
    if status is not None:
        body["status"] = status
    return body


def envelope_bytes(code: str, message: str, request_id: str, **kwargs: Any) -> bytes:
    return json.dumps(envelope(code, message, request_id, **kwargs), ensure_ascii=False).encode()


def error_parts(error: PetcutError, request_id: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and JSON body for ``error``; a 503 always carries ``Retry-After`` and ``status``."""
    retry_after, state = error.retry_after, error.state
    if error.status == 503:
        retry_after = retry_after or 5
        state = state or "unavailable"
    headers = dict(error.headers)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = envelope_bytes(
        error.code,
        error.message,
        request_id,
        retry_after=retry_after,
        status=state,
        extra=error.extra or None,
        field=error.field,
    )
    return error.status, headers, body


async def send_error(send: Send, error: PetcutError, request_id: str, headers: Mapping[str, str] | None = None) -> None:
    """Write ``error`` as a whole JSON response on a raw ASGI ``send`` (middleware that answers before the
    app runs). ``headers`` are added to the error's own (e.g. CORS, ``X-Request-ID``)."""
    status, own, body = error_parts(error, request_id)
    merged = {**own, **(headers or {})}
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    *,
    retry_after: int | None = None,
    status: str | None = None,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    field: str | None = None,
) -> JSONResponse:
    """A JSON error; 503 always carries ``Retry-After`` (header and body) and ``status``."""
    headers = dict(headers or {})
    if status_code == 503:
        retry_after = retry_after or 5
        status = status or "unavailable"
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    body = envelope(
        code, message, request_id_of(request), retry_after=retry_after, status=status, extra=extra, field=field
    )
    return JSONResponse(body, status_code=status_code, headers=headers)


def _describe_validation(exc: RequestValidationError) -> tuple[str, str]:
    parts = []
    in_request_line = False
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        if loc and loc[0] in ("query", "path", "header", "cookie"):
            in_request_line = True
        where = ".".join(loc[1:]) if len(loc) > 1 else ".".join(loc)
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    code = "invalid_parameter" if in_request_line else "bad_request"
    return code, "Invalid request: " + "; ".join(parts[:5])


async def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    code, message = _describe_validation(exc)
    return error_response(request, 400, code, message)


async def _http_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status_code = exc.status_code
    code = CODE_BY_STATUS.get(status_code, "error" if status_code < 500 else "internal_error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    message = MESSAGE_BY_STATUS.get(status_code) or detail or "The request failed."
    if status_code == 400 and detail:
        message = detail
    headers = dict(exc.headers or {})
    if status_code == 405:
        headers["Allow"] = allowed_methods(request)
    return error_response(request, status_code, code, message, headers=headers)


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    from starlette.routing import Match

    scope = {**request.scope, "method": "OPTIONS"}
    methods: set[str] = {"OPTIONS"}
    pending = list(request.app.router.routes)
    while pending:
        route = pending.pop()
        included = getattr(route, "original_router", None)  # FastAPI keeps included routers nested
        if included is not None:
            pending.extend(included.routes)
        elif getattr(route, "methods", None) and route.matches(scope)[0] is not Match.NONE:
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


async def _api_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(
        request,
        exc.status,
        exc.code,
        exc.message,
        retry_after=exc.retry_after,
        headers=exc.headers,
        extra=exc.extra or None,
        field=exc.field,
    )


async def _runtime_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RuntimeRejection)
    if isinstance(exc, Unavailable):
        log.warning("request refused: %s", exc.code, extra={"code": exc.code, "state": exc.state})
        return error_response(
            request, 503, exc.code, exc.message, retry_after=exc.retry_after, status=exc.state or _state(request)
        )
    if isinstance(exc, DeadlineExceeded):
        log.warning("request deadline exceeded", extra={"code": exc.code})
        return error_response(request, 504, exc.code, exc.message)
    return error_response(request, 503, exc.code, exc.message, retry_after=5, status=exc.state or _state(request))


def _state(request: Request) -> str:
    """The runtime's state, for the ``status`` of a 503 raised without one."""
    runtime = getattr(request.app.state, "runtime", None)
    return str(runtime.state) if runtime is not None else "unavailable"


async def _coded_handler(request: Request, exc: Exception) -> JSONResponse:
    """Domain errors that carry their own ``http_status`` and ``code`` (images, storage)."""
    status_code = int(getattr(exc, "http_status", 400))
    code = str(getattr(exc, "code", "bad_request"))
    message = str(getattr(exc, "message", None) or exc)
    field = getattr(exc, "field", None)
    log.info("request refused: %s", code, extra={"code": code, "status": status_code})
    return error_response(
        request,
        status_code,
        code,
        message,
        retry_after=getattr(exc, "retry_after", None),
        field=field,
    )


async def internal_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """Any unhandled exception (runs in ServerErrorMiddleware; the edge middleware logs the traceback)."""
    return error_response(request, 500, "internal_error", MESSAGE_BY_STATUS[500])


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(ApiError, _api_handler)
    app.add_exception_handler(RuntimeRejection, _runtime_handler)
    app.add_exception_handler(Exception, internal_error_handler)
    app.add_exception_handler(ImageError, _coded_handler)
    app.add_exception_handler(StorageError, _coded_handler)
