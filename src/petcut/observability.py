"""JSON logs (one object per line, Cloud Logging field names) and a minimal metrics registry.

Nothing here runs at import time: the server calls :func:`configure_logging` (or hands
:func:`uvicorn_log_config` to uvicorn). The request id and Cloud trace of the current request live in
context variables set by the API's outermost middleware, so every log line of a request carries them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import logging.config
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
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


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``severity``, ``message``, ``time``, ``logger``, ``request_id``,
    ``logging.googleapis.com/trace``, the ``extra=`` fields, and ``exception`` (text) when present."""

    def __init__(self, project: str | None = None) -> None:
        super().__init__()
        self.project = project

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": _SEVERITY.get(record.levelno, record.levelname),
            "message": record.getMessage(),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "logger": record.name,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        trace = trace_var.get()
        if trace:
            entry["logging.googleapis.com/trace"] = f"projects/{self.project}/traces/{trace}" if self.project else trace
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in entry and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
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
        project = os.environ.get("GOOGLE_CLOUD_PROJECT") or None
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
    """Install the JSON configuration process-wide (the server does this once at startup)."""
    logging.config.dictConfig(uvicorn_log_config(level, project))


class StartupTimeline:
    """Logs the startup milestones (imports done, weights loaded, warmup done, ready) with durations."""

    def __init__(self, logger: logging.Logger, start: float | None = None) -> None:
        self.logger = logger
        self.start = time.monotonic() if start is None else start
        self.marks: dict[str, float] = {}

    def mark(self, name: str, level: int = logging.INFO, **fields: Any) -> float:
        elapsed = round(time.monotonic() - self.start, 3)
        self.marks[name] = elapsed
        self.logger.log(level, "startup: %s", name, extra={"startup_step": name, "since_start_s": elapsed, **fields})
        return elapsed


class Metrics:
    """A tiny in-process registry (counters, gauges, observations) the runtime reports to.

    Issue 5 exports these as Prometheus metrics; the method names are the seam it plugs into.
    Thread-safe: the inference worker reports from its own thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.gauges: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self.observations: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = {}

    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted((k, str(v)) for k, v in labels.items()))

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self.counters[key] = self.counters.get(key, 0.0) + amount

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self.gauges[self._key(name, labels)] = value

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            values = self.observations.setdefault(key, [])
            values.append(value)
            if len(values) > 1000:  # bounded: keep the most recent observations
                del values[: len(values) - 1000]

    def count(self, name: str, **labels: str) -> float:
        with self._lock:
            return self.counters.get(self._key(name, labels), 0.0)

    def gauge(self, name: str, **labels: str) -> float | None:
        with self._lock:
            return self.gauges.get(self._key(name, labels))

    @contextmanager
    def timer(self, name: str, **labels: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - started, **labels)
