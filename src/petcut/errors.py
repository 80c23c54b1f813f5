"""The one error model: every error petcut raises on purpose derives from :class:`PetcutError`.

Each class carries its HTTP ``status`` and a stable snake_case ``code`` (docs/api.md lists them); an instance
may carry a ``retry_after`` (seconds), the ``field`` a client got wrong, the runtime ``state`` (on 503) and
extra headers. The API layer has one handler for the whole family and one function that writes the JSON
envelope (:mod:`petcut.api.errors`), and its OpenAPI error catalogue is generated from these classes
(:mod:`petcut.api.openapi`); layers below the API know nothing of HTTP beyond these numbers. Messages are
for a person: no file paths, no library internals (the original exception is chained).

The concepts several layers share have one base here: :class:`InvalidParameter` (400) and
:class:`PayloadTooLarge` (413).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, ClassVar


class PetcutError(Exception):
    """Base of every error petcut answers with on purpose. Subclasses set ``status``, ``code`` and
    ``default_message``; an instance may override ``code`` (e.g. ``too_many_pixels`` on a 413)."""

    status: ClassVar[int] = 500
    code: str = "internal_error"
    default_message: ClassVar[str] = "An internal error occurred; it has been logged."
    #: documented in the OpenAPI error catalogue under this description (defaults to ``default_message``)
    description: ClassVar[str | None] = None
    #: other statuses an instance may answer with (``status=`` at construction); documented under each
    other_statuses: ClassVar[tuple[int, ...]] = ()
    #: response headers every instance sends besides ``X-Request-ID`` (``Retry-After`` is implied on 503)
    response_headers: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: int | None = None,
        field: str | None = None,
        state: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        self.message = message or self.default_message
        Exception.__init__(self, self.message)  # not super(): a subclass may also be an HTTPException
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status  # type: ignore[misc]  # an instance may answer another status (413 vs 429)
        self.retry_after = retry_after if retry_after is None else max(1, int(retry_after))
        self.field = field
        self.state = None if state is None else str(state)
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def __str__(self) -> str:
        return self.message

    @classmethod
    def documented_as(cls) -> str:
        """What the OpenAPI catalogue says about this class."""
        return cls.description or cls.default_message


class InvalidParameter(PetcutError, ValueError):
    """A parameter the client sent is invalid (400); ``field`` names it and the message starts with it."""

    status = 400
    code = "invalid_parameter"
    default_message = "A parameter is invalid."
    description = "A parameter is invalid; `error.field` names it."

    def __init__(self, field: str, problem: str, **kwargs: Any) -> None:
        super().__init__(f"{field}: {problem}", field=field, **kwargs)


class PayloadTooLarge(PetcutError):
    """The body, the file or the image is larger than a limit (413). Every layer's 413 is one of these."""

    status = 413
    code = "payload_too_large"
    default_message = "The request body is larger than the upload limit."
    description = "The body or the file is larger than the upload limit."


def error_classes(base: type[PetcutError] = PetcutError) -> Iterator[type[PetcutError]]:
    """``base`` and every subclass of it imported so far, depth first, each once."""
    seen: set[type[PetcutError]] = set()
    pending = [base]
    while pending:
        cls = pending.pop()
        if cls in seen:
            continue
        seen.add(cls)
        yield cls
        pending.extend(reversed(cls.__subclasses__()))
