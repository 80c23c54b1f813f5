"""The JSON error envelope, the API layer's own errors, and the one handler that answers them all.

Every error answers ``{"success": false, "error": {"code", "message", "request_id"[, "field"]}}``, plus
``retry_after`` and ``status`` (the runtime's state) on 503 (docs/api.md, "Every response"). The body is
:class:`ErrorEnvelope`, written by :func:`envelope` only: by the handler for :class:`PetcutError` (every
layer's errors), by the handlers for FastAPI's validation errors, Starlette's HTTP errors and bare
exceptions, by :func:`send_error` for middleware that answers before the app runs, and by the health
routes. Bodies never hold exception text from libraries, stack traces or file paths: those go to the log,
keyed by the request id.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Send

from petcut.api.routing import served_routes
from petcut.errors import PayloadTooLarge, PetcutError
from petcut.model.runtime_errors import RuntimeRejection

log = logging.getLogger("petcut.api")

REQUEST_ID_KEY = "petcut.request_id"

#: codes for Starlette's own HTTP errors (unknown route, wrong method, ...)
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


# --- the envelope -----------------------------------------------------------------------------------------
class ErrorDetail(BaseModel):
    code: str = Field(examples=["invalid_parameter"], description="stable snake_case code")
    message: str = Field(examples=["max_side: must be at least 1"], description="for a person")
    request_id: str = Field(examples=["3f2b9c0e5d7a4e1f9b8c7d6e5f4a3b2c"], description="also in X-Request-ID")
    field: str | None = Field(default=None, examples=["max_side"], description="the parameter at fault (400)")


class ErrorEnvelope(BaseModel):
    """The body of every error answer. Routes may add their own fields (``/ready`` adds its state)."""

    model_config = ConfigDict(extra="allow")

    success: Literal[False] = False
    error: ErrorDetail
    retry_after: int | None = Field(default=None, description="seconds, as in Retry-After; on 503 (and 429)")
    status: str | None = Field(default=None, description="the model runtime's state; on 503")


def envelope(
    code: str,
    message: str,
    request_id: str,
    *,
    retry_after: int | None = None,
    status: str | None = None,
    extra: Mapping[str, Any] | None = None,
    field: str | None = None,
) -> dict[str, Any]:
    """An :class:`ErrorEnvelope` as a dict: the fields given and nothing else. ``extra`` adds a route's
    own fields (``success`` and ``error`` cannot be overridden; ``status`` is kept unless one is given)."""
    error: dict[str, Any] = {"code": code, "message": message, "request_id": request_id}
    if field:
        error["field"] = field
    data: dict[str, Any] = {**(extra or {}), "success": False, "error": error}
    if retry_after is not None:
        data["retry_after"] = retry_after
    if status is not None:
        data["status"] = status
    return ErrorEnvelope.model_validate(data).model_dump(exclude_unset=True)


def envelope_bytes(code: str, message: str, request_id: str, **kwargs: Any) -> bytes:
    return json.dumps(envelope(code, message, request_id, **kwargs), ensure_ascii=False).encode()


# --- the API layer's own errors ----------------------------------------------------------------------------
class ApiError(PetcutError):
    """The request is not what the route expects (400 ``bad_request``); the base of the API layer's errors."""

    status = 400
    code = "bad_request"
    default_message = "The request is not what this route expects."
    description = "The body is not what the route expects (not a form, not JSON, malformed)."


class MissingFile(ApiError):
    code = "missing_file"
    default_message = "The image is missing."
    description = "The image is missing (no multipart part `file`, or no `image_b64`)."


class TooManyFiles(ApiError):
    code = "too_many_files"
    default_message = "Send exactly one image."


class ClientClosedRequest(ApiError):
    """The client went away before the answer (499: nobody reads it; it is for the logs)."""

    status = 499
    code = "client_closed_request"
    default_message = "The client closed the connection."


class EffectsFailed(ApiError):
    status = 500
    code = "effects_failed"
    default_message = "Every effect failed."


class BodyTooLarge(PayloadTooLarge, StarletteHTTPException):  # type: ignore[misc]  # headers: a dict in both
    """The request body passed the limit while it streamed in (the shared 413). Raised from ``receive``;
    also an HTTPException, which FastAPI re-raises as is from the body it reads."""

    def __init__(self, limit: int | None = None) -> None:
        message = MESSAGE_BY_STATUS[413]
        if limit is not None:
            message = f"{message[:-1]} ({limit} bytes)."
        PetcutError.__init__(self, message)
        self.status_code, self.detail = self.status, self.message


class BodyTimeout(PetcutError, StarletteHTTPException):  # type: ignore[misc]  # headers: a dict in both
    """The next piece of a request body did not come in time (408, and the connection is closed).
    Raised from ``receive``, like :class:`BodyTooLarge`."""

    status = 408
    code = "request_timeout"
    default_message = MESSAGE_BY_STATUS[408]

    def __init__(self) -> None:
        PetcutError.__init__(self, headers={"Connection": "close"})
        self.status_code, self.detail = self.status, self.message


# --- writing an error -------------------------------------------------------------------------------------
def new_request_id() -> str:
    return uuid.uuid4().hex


def request_id_of(request: Request) -> str:
    rid = request.scope.get(REQUEST_ID_KEY)
    if not rid:  # outside the edge middleware (should not happen): still answer with an id
        rid = request.scope[REQUEST_ID_KEY] = new_request_id()
    return str(rid)


def error_parts(
    error: PetcutError, request_id: str, *, runtime_state: str | None = None
) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and JSON body for ``error``; a 503 always carries ``Retry-After`` and ``status``
    (the error's state, else ``runtime_state``, else ``unavailable``)."""
    retry_after, state = error.retry_after, error.state
    if error.status == 503:
        retry_after = retry_after or 5
        state = state or runtime_state or "unavailable"
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


def error_response(request: Request, error: PetcutError) -> Response:
    """``error`` as the answer to ``request``; a runtime refusal without a state reports the runtime's."""
    runtime_state = None
    if isinstance(error, RuntimeRejection):
        runtime = getattr(request.app.state, "runtime", None)
        runtime_state = str(runtime.state) if runtime is not None else None
    status, headers, body = error_parts(error, request_id_of(request), runtime_state=runtime_state)
    return Response(body, status_code=status, headers=headers, media_type="application/json")


# --- the handlers -----------------------------------------------------------------------------------------
async def petcut_error_handler(request: Request, exc: Exception) -> Response:
    """Every error petcut raises on purpose, from any layer."""
    assert isinstance(exc, PetcutError)
    level = logging.WARNING if exc.status >= 500 else logging.INFO
    log.log(level, "request refused: %s", exc.code, extra={"code": exc.code, "status": exc.status, "state": exc.state})
    return error_response(request, exc)


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


async def _validation_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    code, message = _describe_validation(exc)
    return error_response(request, PetcutError(message, code=code, status=400))


async def _http_handler(request: Request, exc: Exception) -> Response:
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
    return error_response(request, PetcutError(message, code=code, status=status_code, headers=headers))


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    from starlette.routing import Match

    scope = {**request.scope, "method": "OPTIONS"}
    methods: set[str] = {"OPTIONS"}
    for route in served_routes(request.app.router.routes):
        if route.methods and route.matches(scope)[0] is not Match.NONE:
            methods |= set(route.methods)
    return ", ".join(sorted(methods))


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """Any unhandled exception (runs in ServerErrorMiddleware; the edge middleware logs the traceback)."""
    return error_response(request, PetcutError())


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PetcutError, petcut_error_handler)
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(StarletteHTTPException, _http_handler)
    app.add_exception_handler(Exception, internal_error_handler)
