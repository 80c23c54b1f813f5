"""Reading request bodies: multipart forms with a byte limit enforced while they stream in.

The edge middleware already refuses bodies over the upload limit; routes with a smaller limit (a form
with no file) or their own (the image store's) get the same treatment here, before the body is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Request
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Message, Receive

from petcut.api.errors import ApiError, BodyTooLarge, MissingFile, TooManyFiles
from petcut.api.middleware import MULTIPART_SLACK
from petcut.errors import InvalidParameter, PetcutError

__all__ = ["MULTIPART_SLACK", "SMALL_FIELD", "is_form", "read_form", "single_file", "text_field"]

SMALL_FIELD = 64 * 1024
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _limited(receive: Receive, limit: int) -> Receive:
    received = 0

    async def limited_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return limited_receive


def is_form(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith(FORM_TYPES)


@asynccontextmanager
async def read_form(request: Request, *, limit: int, max_files: int, required: bool) -> AsyncIterator[FormData]:
    """The form body (closed afterwards). 413 past ``limit`` bytes, 400 when malformed or (if
    ``required``) not a form at all."""
    if not is_form(request):
        if required:
            raise ApiError("Expected a multipart/form-data body.")
        yield FormData()
        return
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise BodyTooLarge(limit)
    limited = Request(request.scope, _limited(request.receive, limit))
    try:
        form = await limited.form(max_files=max_files, max_fields=32, max_part_size=SMALL_FIELD)
    except PetcutError:  # this limit, the edge middleware's streaming limit and body timeout
        raise
    except StarletteHTTPException as exc:  # malformed multipart, too many files or fields
        raise ApiError(f"Malformed form body: {exc.detail}") from None
    try:
        yield form
    finally:
        await form.close()


def text_field(form: FormData, name: str) -> str | None:
    value = form.get(name)
    if value is None or isinstance(value, str):
        return value
    raise InvalidParameter(name, "must be a text field, not a file")


async def single_file(form: FormData, name: str = "file", *, limit: int) -> bytes:
    """The bytes of the one file part ``name``; 400 when it is missing or sent twice."""
    parts = [value for value in form.getlist(name) if isinstance(value, UploadFile)]
    if not parts:
        raise MissingFile(f"The image is missing: send it in the multipart part '{name}'.")
    if len(parts) > 1:
        raise TooManyFiles(f"Send exactly one image in the part '{name}', not {len(parts)}.")
    data = await parts[0].read(limit + 1)
    if len(data) > limit:
        raise BodyTooLarge(limit)
    return data
