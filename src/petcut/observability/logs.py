"""JSON logs: one object per line with Cloud Logging field names, plus the request id and Cloud trace
of the current request (docs/observability.md).

Nothing here runs at import time: the server calls :func:`configure_logging` (and hands
:func:`uvicorn_log_config` to uvicorn). The request id and Cloud trace of the current request live in
context variables set by the API's outermost middleware, so every log line of a request carries them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import os
import sys
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("petcut_request_id", default=None)
trace_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("petcut_trace", default=None)

_SEVERITY = {
    logging.DEBUG: "DEBUG",
    logging.INFO: "INFO",
    logging.WARNING: "WARNING",
    logging.ERROR: "ERROR",
    logging.CRITICAL: "CRITICAL",
}
# attributes every LogRecord has; anything else came in through ``extra=`` and is emitted as a field
_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message", "taskName"}
#: where the Google Cloud project id may come from (Cloud Run does not set one: put it in the manifest)
PROJECT_ENV = ("GOOGLE_CLOUD_PROJECT", "GCLOUD_PROJECT", "GCP_PROJECT")
TRACE_KEY = "logging.googleapis.com/trace"
SOURCE_KEY = "logging.googleapis.com/sourceLocation"


def cloud_project() -> str | None:
    """The Google Cloud project id from the environment, if any."""
    return next((value for name in PROJECT_ENV if (value := os.environ.get(name, "").strip())), None)


def _rfc3339(created: float) -> str:
    return datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``severity``, ``message``, ``time`` (RFC 3339, UTC), ``logger``,
    ``request_id``, ``logging.googleapis.com/trace``, the ``extra=`` fields, ``exception`` (text) when
    present, and ``logging.googleapis.com/sourceLocation`` from WARNING up. uvicorn's access lines also
    get ``http_method``, ``path``, ``status`` and ``client`` as fields."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, record.levelname),
            "message": record.getMessage(),
            "time": _rfc3339(record.created),
            "logger": record.name,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace = trace_var.get()
        if trace:
            entry[TRACE_KEY] = f"projects/{self.project}/traces/{trace}" if self.project else trace
        if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
            client, method, path, _, status = record.args
            entry.update(http_method=method, path=path, status=status, client=client)
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.levelno >= logging.WARNING:
            entry[SOURCE_KEY] = {"file": record.pathname, "line": str(record.lineno), "function": record.funcName}
        return json.dumps(entry, default=str, ensure_ascii=False)


def parse_cloud_trace(header: str | None) -> str | None:
    """``X-Cloud-Trace-Context: TRACE_ID/SPAN_ID;o=1`` → ``TRACE_ID`` (hex, at most 64 chars)."""
    if not header:
        return None
    trace = header.split("/", 1)[0].split(";", 1)[0].strip()
    if trace and len(trace) <= 64 and all(c in "0123456789abcdefABCDEF" for c in trace):
        return trace
    return None


def uvicorn_log_config(level: str = "INFO", project: str | None = None) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for uvicorn: root, petcut and uvicorn's loggers as JSON on stdout."""
    if project is None:
        project = cloud_project()
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter, "project": project}},
        "handlers": {"stdout": handler},
        "root": {"handlers": ["stdout"], "level": level},
        "loggers": {
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": True},
            "petcut": {"handlers": [], "level": level, "propagate": True},
        },
    }


def configure_logging(level: str = "INFO", project: str | None = None) -> None:
    """Install the JSON configuration process-wide (the server does this once at startup).

    Python warnings and uncaught exceptions (main thread, other threads, "exception ignored") are
    routed through logging too, so nothing reaches stdout/stderr as plain text.
    """
    logging.config.dictConfig(uvicorn_log_config(level, project))
    logging.captureWarnings(True)
    _install_exception_hooks()


def _install_exception_hooks() -> None:
    crash = logging.getLogger("petcut.crash")

    def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
        if issubclass(kind, KeyboardInterrupt):
            sys.__excepthook__(kind, value, tb)
            return
        crash.critical("uncaught exception", exc_info=(kind, value, tb))

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else None
        crash.critical(
            "uncaught exception in a thread",
            exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback),
            extra={"thread_name": name},
        )

    def unraisablehook(unraisable: Any) -> None:
        exc = unraisable.exc_value
        info = (unraisable.exc_type, exc, unraisable.exc_traceback) if exc is not None else None
        crash.error(
            "exception ignored: %s", unraisable.err_msg or "unraisable exception", exc_info=info,
            extra={"object": repr(unraisable.object)[:200]},
        )  # fmt: skip

    sys.excepthook = excepthook
    threading.excepthook = thread_excepthook
    sys.unraisablehook = unraisablehook
