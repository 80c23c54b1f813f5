"""The startup timeline: one log line per startup milestone, with durations (docs/observability.md)."""

from __future__ import annotations

import logging
import time
from typing import Any


def process_uptime() -> float | None:
    """Seconds since this process started (interpreter start, before any import), if known."""
    try:
        import psutil

        return max(0.0, time.time() - float(psutil.Process().create_time()))
    except Exception:  # pragma: no cover - psutil missing or /proc unreadable
        return None


class StartupTimeline:
    """Logs the startup milestones (imports done, weights loaded, warmup done, ready) with durations.

    Each mark is one INFO line (``startup_step``, ``since_start_s`` since the app was created,
    ``step_s`` since the previous mark, ``since_process_start_s`` since the interpreter started, so
    ``imports done`` says how long the imports took). With ``enabled`` (``ENABLE_STARTUP_LOGGING``) the
    ``ready`` mark is followed by one ``startup complete`` line holding the whole timeline.
    """

    def __init__(self, logger: logging.Logger, start: float | None = None, *, enabled: bool = False) -> None:
        self.logger = logger
        self.start = time.monotonic() if start is None else start
        self.enabled = enabled
        self.marks: dict[str, float] = {}
        self._last = self.start
        self._process_offset: float | None = None  # process start → self.start, computed once

    def _since_process_start(self, now: float) -> float | None:
        if self._process_offset is None:
            uptime = process_uptime()
            if uptime is None:
                return None
            self._process_offset = uptime - (time.monotonic() - self.start)
        return round(self._process_offset + (now - self.start), 3)

    def mark(self, name: str, level: int = logging.INFO, **fields: Any) -> float:
        now = time.monotonic()
        elapsed = round(now - self.start, 3)
        step = round(now - self._last, 3)
        self._last = now
        self.marks[name] = elapsed
        extra: dict[str, Any] = {"startup_step": name, "since_start_s": elapsed, "step_s": step}
        process = self._since_process_start(now)
        if process is not None:
            extra["since_process_start_s"] = process
        self.logger.log(level, "startup: %s", name, extra={**extra, **fields})
        if self.enabled and name == "ready":
            self.logger.info(
                "startup complete",
                extra={
                    "startup_timeline": dict(self.marks),
                    "since_start_s": elapsed,
                    "since_process_start_s": process,
                },
            )
        return elapsed
