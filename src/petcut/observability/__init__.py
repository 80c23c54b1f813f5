"""Observability, one job per module (docs/observability.md):

- :mod:`petcut.observability.logs`: JSON log lines, the request id and Cloud trace context variables;
- :mod:`petcut.observability.timeline`: the startup timeline;
- :mod:`petcut.observability.metrics`: the Prometheus metrics and their collectors.

The names below are re-exported so callers import from ``petcut.observability``.
"""

from __future__ import annotations

from petcut.observability.logs import (
    PROJECT_ENV,
    SOURCE_KEY,
    TRACE_KEY,
    JsonFormatter,
    cloud_project,
    configure_logging,
    parse_cloud_trace,
    request_id_var,
    trace_var,
    uvicorn_log_config,
)
from petcut.observability.metrics import (
    ALERTING_METRICS,
    FAILURE_REASONS,
    HTTP_BUCKETS,
    INFERENCE_BUCKETS,
    INFERENCE_PHASES,
    LAST_WARMUP_HELP,
    LOAD_BUCKETS,
    METRICS,
    MODEL_STATES,
    WARMUP_ANSWER_CODES,
    WARMUP_ANSWERS,
    WARMUP_RESULTS,
    CacheCollector,
    GpuMemoryCollector,
    LastWarmupCollector,
    Metrics,
)
from petcut.observability.timeline import StartupTimeline, process_uptime

__all__ = [
    "ALERTING_METRICS",
    "FAILURE_REASONS",
    "HTTP_BUCKETS",
    "INFERENCE_BUCKETS",
    "INFERENCE_PHASES",
    "LAST_WARMUP_HELP",
    "LOAD_BUCKETS",
    "METRICS",
    "MODEL_STATES",
    "PROJECT_ENV",
    "SOURCE_KEY",
    "TRACE_KEY",
    "WARMUP_ANSWERS",
    "WARMUP_ANSWER_CODES",
    "WARMUP_RESULTS",
    "CacheCollector",
    "GpuMemoryCollector",
    "JsonFormatter",
    "LastWarmupCollector",
    "Metrics",
    "StartupTimeline",
    "cloud_project",
    "configure_logging",
    "parse_cloud_trace",
    "process_uptime",
    "request_id_var",
    "trace_var",
    "uvicorn_log_config",
]
