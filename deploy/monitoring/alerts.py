"""The one source of petcut's monitoring: recording rules, alerts (with severity, summary, what to check
first and a runbook section) and the dashboard's panels.

``generate.py`` (beside this file) turns it into every output: the Prometheus rules file, the Kubernetes
``PrometheusRule``, the Cloud Monitoring alert policies, the Alertmanager example and the Grafana
dashboard. Edit this file, run ``python deploy/monitoring/generate.py``, commit both; a test fails when
the outputs are stale. Standard library only.

Severities: ``critical`` pages someone now (users are failing or about to); ``warning`` opens a ticket
(the service works, something needs a look in working hours). A warmup that answers 206 (the model is
loaded, the warmup inference failed) is a warning and never pages; a warmup that answers 500 (no model)
is critical.
"""

from __future__ import annotations

from dataclasses import dataclass

#: the Prometheus job that scrapes petcut (the scrape config's ``job_name``; on Kubernetes with a
#: ServiceMonitor/PodMonitor, name the job ``petcut`` too)
JOB = "petcut"
SELECTOR = f'job="{JOB}"'
#: the routes that run the model; their 5xx and 503/429 ratios are alerted on
PROCESSING_ROUTES = ("/api/v2/remove-background", "/api/v2/process-with-effects")
PROCESSING = 'route=~"{}"'.format("|".join(PROCESSING_ROUTES))
#: the runbook page (relative to the repository root); ``generate.py --runbook-base URL`` makes the links
#: absolute (e.g. ``https://github.com/ORG/petcut/blob/main/``)
RUNBOOK = "docs/runbook.md"

# --- thresholds -------------------------------------------------------------------------------------------
NOT_READY_FOR = "10m"  # a base-mode cold start on an L4 is ~1 min; 10 min is never a normal start
ERROR_RATIO = 0.05  # 5xx (503 excluded: that is shedding) / all answers on the processing routes
SHED_RATIO = 0.05  # 503 + 429 / all answers on the processing routes
INFERENCE_P95_S = 5.0  # compute phase (the model alone); meant for a GPU (no GPU figure is measured yet: adjust)
TARGET_DOWN_FOR = "3m"

#: the answers counted as failures (503 excluded: that is shedding) and as shed, on the processing routes
ERROR_CODES = 'code=~"5..", code!="503"'
SHED_CODES = 'code=~"503|429"'

# the states in which an instance cannot serve and is not already covered by its own alert
# (degraded: PetcutModelDegraded / PetcutWarmupPartial; poisoned: PetcutModelPoisoned; draining: shutdown)
NOT_SERVING_STATES = "not_loaded|loading|warming|failed"


def _ratio(codes: str, window: str = "5m", by: str = "job", routes: str = PROCESSING, zero: bool = False) -> str:
    """``codes`` answers / all answers on ``routes``. With ``zero``, 0 (not nothing) where there were
    answers but none with those codes (dashboards and recording rules; alerts do not need it)."""
    requests = f"petcut_http_requests_total{{{SELECTOR}" + (f", {routes}" if routes else "")
    part = f"sum by ({by}) (rate({requests}, {codes}}}[{window}]))"
    total = f"sum by ({by}) (rate({requests}}}[{window}]))"
    if zero:
        part = f"(\n  {part}\n  or\n  0 * {total}\n)"
    return f"{part}\n  /\n{total}"


@dataclass(frozen=True)
class Record:
    """A recording rule."""

    name: str
    expr: str


@dataclass(frozen=True)
class Alert:
    """An alert. ``summary``/``description`` may use Prometheus templates ``{{ $labels.X }}`` and
    ``{{ $value }}`` (the Cloud Monitoring renderer translates them). ``anchor`` is the runbook section.
    ``cloud_run_expr`` (and ``cloud_run_description``) replace ``expr`` (and ``description``) in the Cloud
    Monitoring policy where Cloud Run needs another query."""

    name: str
    severity: str
    expr: str
    for_: str
    summary: str
    description: str
    cloud_run_expr: str | None = None
    cloud_run_description: str | None = None

    @property
    def anchor(self) -> str:
        """The runbook section: the alert's name in lower case (its heading in docs/runbook.md)."""
        return self.name.lower()


def _ratio_alert(name: str, severity: str, codes: str, threshold: float, for_: str, what: str, why: str) -> Alert:
    """An alert on the share of the processing routes' answers with ``codes``, above ``threshold``."""
    expr = "(\n" + _ratio(codes) + f"\n) > {threshold}"
    summary = "{{ $value | humanizePercentage }} of processing requests " + what
    return Alert(name=name, severity=severity, expr=expr, for_=for_, summary=summary, description=why)


RECORDS: tuple[Record, ...] = (
    Record(
        "job_route_code:petcut_http_requests:rate5m",
        f"sum by (job, route, code) (rate(petcut_http_requests_total{{{SELECTOR}}}[5m]))",
    ),
    Record(
        "job_route:petcut_http_requests:rate5m",
        f"sum by (job, route) (rate(petcut_http_requests_total{{{SELECTOR}}}[5m]))",
    ),
    Record(
        "job_route:petcut_http_errors:ratio_rate5m",
        _ratio(ERROR_CODES, by="job, route", routes="", zero=True),
    ),
    Record("job_route:petcut_http_shed:ratio_rate5m", _ratio(SHED_CODES, by="job, route", routes="", zero=True)),
    *(
        Record(
            f"job_route:petcut_http_request_duration_seconds:p{q}_5m",
            f"histogram_quantile(0.{q}, sum by (job, route, le) "
            f"(rate(petcut_http_request_duration_seconds_bucket{{{SELECTOR}}}[5m])))",
        )
        for q in ("50", "95", "99")
    ),
    Record(
        "job_phase:petcut_inference_seconds:p95_5m",
        f"histogram_quantile(0.95, sum by (job, phase, le) (rate(petcut_inference_seconds_bucket{{{SELECTOR}}}[5m])))",
    ),
    Record(
        "job:petcut_cache_hit:ratio_rate5m",
        f'sum by (job) (rate(petcut_cache_requests_total{{{SELECTOR}, result="hit"}}[5m]))\n'
        f'  /\nsum by (job) (rate(petcut_cache_requests_total{{{SELECTOR}, result=~"hit|miss"}}[5m]))',
    ),
)

ALERTS: tuple[Alert, ...] = (
    Alert(
        name="PetcutModelNotReady",
        severity="critical",
        expr=f'max by (job, instance) (petcut_model_state{{{SELECTOR}, state=~"{NOT_SERVING_STATES}"}}) == 1',
        for_=NOT_READY_FOR,
        summary="petcut on {{ $labels.instance }} has had no usable model for " + NOT_READY_FOR,
        description=(
            "The instance answers /health but every processing request gets 503: the model is not loaded "
            "(state not_loaded, loading, warming or failed). Check first: GET /ready on the instance "
            "(its reason says why) and the CRITICAL 'model state ... → failed' log line; a corrupt or "
            "missing checkpoint does not heal by retrying, a device that failed to initialise may."
        ),
    ),
    Alert(
        name="PetcutWarmupFailed",
        severity="critical",
        expr=(f'sum by (job, instance) (increase(petcut_warmup_responses_total{{{SELECTOR}, code="500"}}[15m])) > 0'),
        for_="0m",
        summary="/warmup answered 500 on {{ $labels.instance }}: the model could not be loaded",
        description=(
            "A /warmup (deploy smoke test, Cloud Scheduler, an operator) got 500 model_load_failed: the "
            "instance has no model and serves nothing. Check first: the /warmup body's message and the "
            "CRITICAL 'model load failed' log line (CheckpointInvalidError means a bad image or weights "
            "volume: roll back)."
        ),
    ),
    Alert(
        name="PetcutWarmupPartial",
        severity="warning",
        expr=(
            f'sum by (job, instance) (increase(petcut_warmup_responses_total{{{SELECTOR}, code="206"}}[15m])) > 0\n'
            f'or\n(max by (job, instance) (petcut_model_state{{{SELECTOR}, state="degraded"}}) == 1)\n'
            f"  and on (job, instance)\n(petcut_warmup_last_passed{{{SELECTOR}}} == 0)"
        ),
        for_="0m",
        summary="Warmup on {{ $labels.instance }} is partial (206): the model loaded, the warmup inference failed",
        description=(
            "The model is loaded and requests are still served, but the warmup run (the bundled photo and a "
            "16x16 image through the user path) failed, so the instance is degraded and /ready answers 503. "
            "This does not page: users are affected only if the processing 5xx alert fires too. Check first: "
            "the /warmup body (details and message) and the 'warmup inference failed' ERROR log line (its "
            "step); a resize setting that breaks small images is the usual cause. A passing /warmup clears it."
        ),
    ),
    Alert(
        name="PetcutModelDegraded",
        severity="critical",
        expr=(
            f'(max by (job, instance) (petcut_model_state{{{SELECTOR}, state="degraded"}}) == 1)\n'
            f"  unless on (job, instance)\n(petcut_warmup_last_passed{{{SELECTOR}}} == 0)"
        ),
        for_="10m",
        summary="petcut on {{ $labels.instance }} has been degraded for 10 minutes (repeated out-of-memory)",
        description=(
            "The runtime keeps entering an out-of-memory cool-down: requests get 503 out_of_memory in bursts. "
            'Check first: petcut_inference_failures_total{reason="oom"} and petcut_gpu_memory_bytes on the '
            "dashboard, the 'inference ran out of memory' log lines, then the image sizes being sent "
            "(PETCUT_MAX_PIXELS) and another process sharing the GPU."
        ),
    ),
    Alert(
        name="PetcutModelPoisoned",
        severity="critical",
        expr=f'max by (job, instance) (petcut_model_state{{{SELECTOR}, state="poisoned"}}) == 1',
        for_="1m",
        summary="petcut on {{ $labels.instance }} is poisoned: the accelerator reported a non-recoverable error",
        description=(
            "After a CUDA error other than out-of-memory the instance refuses all work and /health answers "
            "503 so the platform replaces it. If this stays firing, the platform is not restarting it. "
            "Check first: the liveness probe (Kubernetes) or the instance's restarts (Cloud Run), then the "
            "CRITICAL 'non-recoverable device error' log line and the node's GPU health (nvidia-smi, Xid errors)."
        ),
    ),
    _ratio_alert(
        "PetcutProcessingErrors",
        "critical",
        ERROR_CODES,
        ERROR_RATIO,
        "5m",
        "fail with 5xx",
        (
            f"More than {ERROR_RATIO:.0%} of the answers on the processing routes are 500 or 504 (503 "
            "shedding is a separate warning). Check first: the dashboard's errors by route and status, then "
            "petcut_inference_failures_total by reason (timeout: deadlines too short for the device; other: "
            "a bug, see the ERROR log lines with their request_id); a new revision is the usual suspect."
        ),
    ),
    _ratio_alert(
        "PetcutShedding",
        "warning",
        SHED_CODES,
        SHED_RATIO,
        "10m",
        "are shed (503/429)",
        (
            "Requests are refused: 503 (queue full, queue-wait deadline, model unavailable) or 429 (a client "
            "past its rate limit). Check first: the dashboard's queue depth against capacity and "
            'petcut_inference_failures_total{reason=~"rejected|queue_timeout"}: a full queue needs more '
            "instances (max instances, HPA), a single busy client shows as 429 on one route."
        ),
    ),
    Alert(
        name="PetcutSlowInference",
        severity="warning",
        expr=(
            "histogram_quantile(0.95, sum by (job, le) "
            f'(rate(petcut_inference_seconds_bucket{{{SELECTOR}, phase="compute"}}[10m]))) > {INFERENCE_P95_S:g}'
        ),
        for_="15m",
        summary="Model inference p95 is {{ $value | humanizeDuration }} (threshold " + f"{INFERENCE_P95_S:g} s)",
        description=(
            "The model itself (the compute phase, queue wait excluded) got slow. Check first: petcut_build_info's "
            "device label (a GPU instance that fell back to CPU), the resize mode and image sizes, and GPU "
            "memory; then whether a new revision changed the mode or precision."
        ),
    ),
    Alert(
        name="PetcutTargetDown",
        severity="critical",
        expr=f"up{{{SELECTOR}}} == 0\nor\nabsent(up{{{SELECTOR}}})",
        for_=TARGET_DOWN_FOR,
        summary="Prometheus cannot scrape petcut on {{ $labels.instance }}",
        description=(
            "/metrics did not answer (or no petcut target exists at all). The container may be crashing, "
            "stuck, or out of memory, or the scrape config lost it. Check first: the pod's or container's "
            "restarts and last exit reason (OOMKilled), then GET /health on the instance."
        ),
        # Cloud Run scales to zero, so "no target" is normal there: page when Cloud Run serves requests for
        # the service and no petcut metrics arrive (crashing containers, a broken metrics sidecar)
        cloud_run_expr=(
            f"absent_over_time(petcut_build_info{{{SELECTOR}}}[10m])\n  and on ()\n"
            'sum(rate(run_googleapis_com:request_count{monitored_resource="cloud_run_revision", '
            'service_name="petcut"}[5m])) > 0'
        ),
        cloud_run_description=(
            "Cloud Run serves requests for petcut but no petcut metrics arrived for 10 minutes: the containers "
            "crash before they are scraped, or the Managed Prometheus sidecar is broken. Check first: the "
            "revision's logs (startup crashes, 'Memory limit exceeded'), then the sidecar's logs."
        ),
    ),
)

# --- dashboard --------------------------------------------------------------------------------------------
#: the dashboard's selector: Grafana variables ``$job`` and ``$instance`` (multi-value, "All" = ``.*``)
DASH = 'job="$job", instance=~"$instance"'
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Panel:
    """A dashboard panel: its queries, unit, kind (``timeseries``, ``state-timeline``) and description."""

    title: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"
    description: str = ""


@dataclass(frozen=True)
class Query:
    """A panel's PromQL query and its legend."""

    expr: str
    legend: str


def _quantile(q: str, by: str) -> Query:
    expr = (
        f"histogram_quantile(0.{q}, sum by ({by}, le) "
        f"(rate(petcut_http_request_duration_seconds_bucket{{{DASH}}}[{RATE}])))"
    )
    return Query(expr, f"p{q} {{{{{by}}}}}")


PANELS: tuple[Panel, ...] = (
    Panel(
        "Requests per second by route",
        (Query(f"sum by (route) (rate(petcut_http_requests_total{{{DASH}}}[{RATE}]))", "{{route}}"),),
        unit="reqps",
    ),
    Panel("Latency by route (p50, p95, p99)", tuple(_quantile(q, "route") for q in ("50", "95", "99")), unit="s"),
    Panel(
        "Errors by route and status (4xx, 5xx)",
        (
            Query(
                f'sum by (route, code) (rate(petcut_http_requests_total{{{DASH}, code=~"[45].."}}[{RATE}]))',
                "{{code}} {{route}}",
            ),
        ),
        unit="reqps",
    ),
    Panel(
        "Processing 5xx ratio (503 excluded) and shed ratio (503, 429)",
        (
            Query(_ratio(ERROR_CODES, RATE, zero=True).replace(SELECTOR, DASH), "5xx"),
            Query(_ratio(SHED_CODES, RATE, zero=True).replace(SELECTOR, DASH), "shed"),
        ),
        unit="percentunit",
        description=f"Alerts: 5xx above {ERROR_RATIO:.0%} for 5 min (critical), shed above {SHED_RATIO:.0%} "
        "for 10 min (warning).",
    ),
    Panel(
        "Model state",
        (Query(f"max by (instance, state) (petcut_model_state{{{DASH}}}) == 1", "{{instance}} {{state}}"),),
        kind="state-timeline",
        description="One series per instance and state, present while the instance is in that state.",
    ),
    Panel(
        "Warmup answers by status and code",
        (
            Query(
                f"sum by (status, code) (increase(petcut_warmup_responses_total{{{DASH}}}[{RATE}]))",
                "{{code}} {{status}}",
            ),
            Query(f"sum by (result) (increase(petcut_warmup_total{{{DASH}}}[{RATE}]))", "run: {{result}}"),
        ),
        description="/warmup answers (200 success, 206 partial, 500 error, 503 loading) and warmup runs "
        "(startup included) by result.",
    ),
    Panel(
        "Last warmup passed",
        (Query(f"min by (instance) (petcut_warmup_last_passed{{{DASH}}})", "{{instance}}"),),
        kind="state-timeline",
    ),
    Panel(
        "Inference queue",
        (
            Query(f"sum by (instance) (petcut_inference_queue_depth{{{DASH}}})", "waiting {{instance}}"),
            Query(f"max by (instance) (petcut_inference_queue_capacity{{{DASH}}})", "capacity {{instance}}"),
            Query(f"sum by (instance) (petcut_inference_in_flight{{{DASH}}})", "running {{instance}}"),
        ),
    ),
    Panel(
        "Shedding: 503 and 429 answers, refused jobs",
        (
            Query(
                f'sum by (route, code) (rate(petcut_http_requests_total{{{DASH}, code=~"503|429"}}[{RATE}]))',
                "{{code}} {{route}}",
            ),
            Query(
                f"sum by (reason) (rate(petcut_inference_failures_total"
                f'{{{DASH}, reason=~"rejected|queue_timeout"}}[{RATE}]))',
                "refused: {{reason}}",
            ),
        ),
        unit="reqps",
    ),
    Panel(
        "Inference failures by reason",
        (Query(f"sum by (reason) (rate(petcut_inference_failures_total{{{DASH}}}[{RATE}]))", "{{reason}}"),),
        unit="reqps",
    ),
    Panel(
        "Cache hit ratio",
        (
            Query(
                f'sum by (backend) (rate(petcut_cache_requests_total{{{DASH}, result="hit"}}[{RATE}]))\n  /\n'
                f'sum by (backend) (rate(petcut_cache_requests_total{{{DASH}, result=~"hit|miss"}}[{RATE}]))',
                "{{backend}}",
            ),
        ),
        unit="percentunit",
    ),
    Panel(
        "Inference time p95 by phase",
        (
            Query(
                "histogram_quantile(0.95, sum by (phase, le) "
                f"(rate(petcut_inference_seconds_bucket{{{DASH}}}[{RATE}])))",
                "{{phase}}",
            ),
        ),
        unit="s",
        description=f"compute is the model alone (alert: p95 above {INFERENCE_P95_S:g} s for 15 min).",
    ),
    Panel(
        "Resident memory (RSS)",
        (Query(f"process_resident_memory_bytes{{{DASH}}}", "{{instance}}"),),
        unit="bytes",
    ),
    Panel("Targets up", (Query(f"up{{{DASH}}}", "{{instance}}"),), kind="state-timeline"),
)
