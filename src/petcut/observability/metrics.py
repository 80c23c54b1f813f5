"""The Prometheus metrics (docs/observability.md).

:class:`Metrics` is what the runtime, the pipeline and the HTTP layer report to (``inc``, ``set``,
``observe``); each instance owns its own prometheus ``CollectorRegistry`` (never the global one: tests
build many apps in one process), which ``GET /metrics`` renders. The series are listed in
:data:`METRICS` below.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger("petcut.observability")

HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
INFERENCE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
LOAD_BUCKETS = (0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)

#: the phases of ``petcut_inference_seconds``: decode the upload, wait for the worker, run the model,
#: build the cut-out (+ its PNG), render the response (effects, or the remove-background output)
INFERENCE_PHASES = ("decode", "queue_wait", "compute", "post", "render")
#: ``petcut_inference_failures_total`` reasons: queue full (503 at once), queue-wait deadline (503, not
#: run), execution deadline (504), out of memory, device fault, an upload that is not a usable image,
#: anything else the model path raised
FAILURE_REASONS = ("rejected", "queue_timeout", "timeout", "oom", "device", "bad_input", "other")
WARMUP_RESULTS = ("success", "partial", "error")
MODEL_STATES = ("not_loaded", "loading", "warming", "ready", "degraded", "failed", "draining", "poisoned")

# name → (kind, help, label names, buckets)
METRICS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...] | None]] = {
    "petcut_http_requests_total": (
        "counter", "HTTP responses by route template, method and status code.", ("route", "method", "code"), None),
    "petcut_http_request_duration_seconds": (
        "histogram", "Time from request to the end of the response, by route template and method.",
        ("route", "method"), HTTP_BUCKETS),
    "petcut_inference_seconds": (
        "histogram", "Time per step of an image's path: decode, queue_wait (for the inference worker), "
        "compute (the model), post (cut-out), render (effects or output encoding).", ("phase",), INFERENCE_BUCKETS),
    "petcut_inference_failures_total": (
        "counter", "Requests whose image was not processed, by reason: rejected (queue full), queue_timeout, "
        "timeout (execution deadline), oom, device, bad_input, other.", ("reason",), None),
    "petcut_inference_queue_depth": ("gauge", "Inference jobs waiting for the worker.", (), None),
    "petcut_inference_in_flight": ("gauge", "Jobs the inference worker is running (0 or 1).", (), None),
    "petcut_model_state": ("gauge", "1 for the model runtime's current state, 0 for the others.", ("state",), None),
    "petcut_model_load_seconds": ("histogram", "Duration of successful model loads.", (), LOAD_BUCKETS),
    "petcut_model_load_attempts_total": ("counter", "Model load attempts (retries included).", (), None),
    "petcut_model_load_failures_total": (
        "counter", "Model load cycles that ended in failed, by error type.", ("reason",), None),
    "petcut_warmup_total": (
        "counter", "Warmups by result: success, partial (model loaded, warmup inference failed), "
        "error (the model could not be loaded).", ("result",), None),
    "petcut_warmup_last_seconds": ("gauge", "Duration of the last warmup inference run.", (), None),
    "petcut_model_info": (
        "gauge", "1 once a model is loaded; the labels say which model runs on which engine, device and precision.",
        ("model", "engine", "device", "precision"), None),
    "petcut_build_info": (
        "gauge", "Always 1; the labels say what runs (model: inspyrenet-<mode> or isnet-<variant>; model_choice: "
        "configured, or fallback when make run serves IS-Net because InSPyReNet could not be downloaded).",
        ("version", "mode", "device", "model", "model_choice"), None),
}  # fmt: skip

# --- alerting series (what deploy/monitoring's alerts and dashboard need beyond the above) ---------------
#: ``X-Warmup-Status`` values ``/warmup`` answers with; anything else (a 500 with no header) is ``other``
WARMUP_ANSWERS = ("success", "partial", "error", "loading", "draining", "poisoned")
#: the (status, code) pairs that exist at zero from the start, so the first 500 or 206 is an increase
WARMUP_ANSWER_CODES = (("success", "200"), ("partial", "206"), ("error", "500"), ("loading", "503"))
ALERTING_METRICS: dict[str, tuple[str, str, tuple[str, ...], tuple[float, ...] | None]] = {
    "petcut_warmup_responses_total": (
        "counter", "/warmup answers by X-Warmup-Status (success, partial, error, loading, draining, poisoned, "
        "other) and HTTP status code (200, 206, 500, 503).", ("status", "code"), None),
    "petcut_inference_queue_capacity": (
        "gauge", "Jobs that may wait for the worker (PETCUT_MAX_QUEUE); one more is refused with 503.", (), None),
}  # fmt: skip
METRICS.update(ALERTING_METRICS)
LAST_WARMUP_HELP = "1 when the last warmup run (startup or /warmup) passed, 0 when it failed; absent before the first."
# --- end alerting series ---------------------------------------------------------------------------------

Key = tuple[str, tuple[tuple[str, str], ...]]


class Metrics:
    """The service's metrics: a prometheus registry of its own plus a small in-process view.

    ``inc``/``set``/``observe`` take a series name from :data:`METRICS` and its labels. They never raise
    (a wrong name or label set is logged once and ignored: metrics must not break a request). ``count``
    and ``gauge`` read back what was reported (tests). Thread-safe: the inference worker reports from
    its own thread. ``process=False`` leaves out the process collector (RSS, CPU, file descriptors).
    """

    def __init__(self, *, process: bool = True) -> None:
        from prometheus_client import (
            CollectorRegistry,
            Counter,
            Gauge,
            Histogram,
            ProcessCollector,
            disable_created_metrics,
        )

        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series: they double the output and nobody reads them
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self.counters: dict[Key, float] = {}
        self.gauges: dict[Key, float] = {}
        self._complained: set[str] = set()
        self._series: dict[str, Any] = {}
        kinds = {"counter": Counter, "gauge": Gauge, "histogram": Histogram}
        for name, (kind, help_text, labels, buckets) in METRICS.items():
            options: dict[str, Any] = {"registry": self.registry}
            if buckets is not None:
                options["buckets"] = buckets
            self._series[name] = kinds[kind](name, help_text, labels, **options)
        # every known label value exists from the start (rate() and alerts need the zero)
        for reason in FAILURE_REASONS:
            self._series["petcut_inference_failures_total"].labels(reason=reason)
        for phase in INFERENCE_PHASES:
            self._series["petcut_inference_seconds"].labels(phase=phase)
        for result in WARMUP_RESULTS:
            self._series["petcut_warmup_total"].labels(result=result)
        for state in MODEL_STATES:
            self._series["petcut_model_state"].labels(state=state).set(0)
        self._init_alerting_series()
        if process:
            ProcessCollector(registry=self.registry)
        self.registry.register(GpuMemoryCollector())

    # --- reporting ---------------------------------------------------------------------------------
    @staticmethod
    def _key(name: str, labels: dict[str, str]) -> Key:
        return name, tuple(sorted((k, str(v)) for k, v in labels.items()))

    def _export(self, name: str, method: str, value: float, labels: dict[str, str]) -> None:
        series = self._series.get(name)
        try:
            if series is None:
                raise KeyError(f"unknown metric {name}")
            target = series.labels(**{k: str(v) for k, v in labels.items()}) if labels else series
            getattr(target, method)(value)
        except Exception as exc:
            if name not in self._complained:
                self._complained.add(name)
                log.warning("metric not recorded", extra={"metric": name, "labels": labels, "error": str(exc)})

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        key = self._key(name, labels)
        with self._lock:
            self.counters[key] = self.counters.get(key, 0.0) + amount
        self._export(name, "inc", amount, labels)

    def set(self, name: str, value: float, **labels: str) -> None:
        with self._lock:
            self.gauges[self._key(name, labels)] = value
        self._export(name, "set", value, labels)

    def observe(self, name: str, value: float, **labels: str) -> None:
        self._export(name, "observe", max(0.0, value), labels)

    @contextmanager
    def timer(self, name: str, **labels: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observe(name, time.perf_counter() - started, **labels)

    def request(self, route: str, method: str, code: int | str, seconds: float) -> None:
        """One HTTP response (the API's outermost layer calls this)."""
        self.inc("petcut_http_requests_total", route=route, method=method, code=str(code))
        self.observe("petcut_http_request_duration_seconds", seconds, route=route, method=method)

    # --- reading back --------------------------------------------------------------------------------
    def count(self, name: str, **labels: str) -> float:
        with self._lock:
            return self.counters.get(self._key(name, labels), 0.0)

    def gauge(self, name: str, **labels: str) -> float | None:
        with self._lock:
            return self.gauges.get(self._key(name, labels))

    def sample(self, name: str, **labels: str) -> float | None:
        """A sample's value as ``/metrics`` would show it (e.g. ``petcut_inference_seconds_count``)."""
        return self.registry.get_sample_value(name, labels)

    def render(self) -> bytes:
        """The Prometheus text exposition of every series."""
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # --- collectors read at scrape time ----------------------------------------------------------
    def watch_cache(self, cache: Any) -> None:
        """Export ``cache.stats`` (hits, misses, errors) as ``petcut_cache_requests_total``."""
        self.registry.register(CacheCollector(lambda: [cache]))

    def build_info(
        self, version: str, mode: str, device: str, model: str = "inspyrenet", model_choice: str = "configured"
    ) -> None:
        self.set(
            "petcut_build_info", 1, version=version, mode=mode, device=device, model=model, model_choice=model_choice
        )

    # --- alerting series -------------------------------------------------------------------------------
    def _init_alerting_series(self) -> None:
        for status, code in WARMUP_ANSWER_CODES:
            self._series["petcut_warmup_responses_total"].labels(status=status, code=code)
        self.registry.register(LastWarmupCollector(lambda: self.gauge("petcut_warmup_last_passed")))

    def warmup_answer(self, status: str | None, code: int) -> None:
        """One ``/warmup`` response: its ``X-Warmup-Status`` (``None`` when it had none) and status code."""
        label = status if status in WARMUP_ANSWERS else "other"
        self.inc("petcut_warmup_responses_total", status=label, code=str(code))

    def last_warmup(self, passed: bool | None) -> None:
        """Whether the runtime's last warmup run passed (``None``: no run, the series is absent)."""
        key = self._key("petcut_warmup_last_passed", {})
        with self._lock:
            if passed is None:
                self.gauges.pop(key, None)
            else:
                self.gauges[key] = 1.0 if passed else 0.0

    def queue_capacity(self, max_queue: int) -> None:
        self.set("petcut_inference_queue_capacity", float(max_queue))


class LastWarmupCollector:
    """``petcut_warmup_last_passed``: exported only once a warmup ran (a gauge would read 0 before)."""

    def __init__(self, value: Callable[[], float | None]) -> None:
        self._value = value

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        value = self._value()
        if value is not None:
            yield GaugeMetricFamily("petcut_warmup_last_passed", LAST_WARMUP_HELP, value=value)


class CacheCollector:
    """``petcut_cache_requests_total{backend,result}`` (hit, miss, error) from each cache's ``stats``,
    and ``petcut_cache_size_bytes{backend}`` where the cache knows its size. A Redis ``get`` that fails
    counts as an error and as a miss; failed ``set`` calls count as errors."""

    def __init__(self, caches: Callable[[], Iterable[Any]]) -> None:
        self._caches = caches

    def describe(self) -> list[Any]:
        return []  # collected lazily: nothing to check at registration

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        requests = CounterMetricFamily(
            "petcut_cache_requests", "Result cache lookups by backend and result (hit, miss, error).",
            labels=["backend", "result"],
        )  # fmt: skip
        size = GaugeMetricFamily("petcut_cache_size_bytes", "Bytes held by the in-memory cache.", labels=["backend"])
        sized = False
        for cache in self._caches():
            stats = getattr(cache, "stats", None)
            if stats is None:
                continue
            backend = str(getattr(cache, "backend", type(cache).__name__))
            requests.add_metric([backend, "hit"], stats.hits)
            requests.add_metric([backend, "miss"], stats.misses)
            requests.add_metric([backend, "error"], stats.errors)
            held = getattr(cache, "size_bytes", None)
            if isinstance(held, int | float):
                size.add_metric([backend], held)
                sized = True
        yield requests
        if sized:
            yield size


class GpuMemoryCollector:
    """``petcut_gpu_memory_bytes{kind=allocated|reserved}`` for the current CUDA device, only when torch
    is already imported and CUDA already initialised: a scrape never imports torch nor creates a CUDA
    context."""

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        torch = sys.modules.get("torch")
        cuda = getattr(torch, "cuda", None) if torch is not None else None
        if cuda is None:
            return
        try:
            if not cuda.is_initialized():
                return
            allocated, reserved = cuda.memory_allocated(), cuda.memory_reserved()
        except Exception:  # a broken device: /metrics still answers
            return
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "petcut_gpu_memory_bytes", "CUDA memory of the current device held by torch.", labels=["kind"]
        )
        family.add_metric(["allocated"], allocated)
        family.add_metric(["reserved"], reserved)
        yield family
