"""``/health`` (liveness), ``/ready`` (readiness), ``/`` (what runs here) and ``/warmup``.

``/health`` and ``/ready`` read the runtime's state under a lock and nothing else: they never load the
model, touch the device or import torch, and answer while the worker is busy. Bodies are the models of
:mod:`petcut.api.bodies`; a refusal is the error envelope (:func:`petcut.api.errors.envelope`) with the
route's fields added (docs/api.md, "Health").
"""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from petcut import __version__
from petcut.api.bodies import Health, QueueInfo, Ready, ServiceInfo, WarmupReport
from petcut.api.deps import RuntimeDep, SettingsDep
from petcut.api.errors import envelope, request_id_of
from petcut.api.openapi import HEALTH_RESPONSES, READY_RESPONSES, WARMUP_RESPONSES
from petcut.api.policy import policy
from petcut.config import Settings
from petcut.model.runtime import State, WarmupOutcome

router = APIRouter()

SERVICE_NAME = "petcut"


def model_choice(settings: Settings) -> dict[str, str]:
    """Which model serves and why: ``model_id``, ``model_choice`` and, on a fallback, ``model_note``."""
    info = {"model_id": settings.model_id, "model_choice": settings.model_choice}
    if settings.model_note:
        info["model_note"] = settings.model_note
    return info


@router.get("/health", tags=["health"], responses=HEALTH_RESPONSES, response_model=None)
async def health(request: Request, runtime: RuntimeDep) -> JSONResponse:
    status = runtime.status()
    poisoned = status.state is State.POISONED
    body = Health(
        status="unhealthy" if poisoned else "healthy",
        container_ready=not poisoned,
        model_ready=status.model_ready,
        model_status=str(status.state),
        uptime_s=round(time.monotonic() - request.app.state.started_at, 3),
        version=__version__,
    ).model_dump()
    if not poisoned:
        return JSONResponse(body)
    refusal = envelope(
        "device_fault", status.reason, request_id_of(request), retry_after=status.retry_after, extra=body
    )
    return JSONResponse(refusal, status_code=503, headers={"Retry-After": str(status.retry_after)})


@router.get("/ready", tags=["health"], responses=READY_RESPONSES, response_model=None)
async def ready(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> JSONResponse:
    status = runtime.status()
    is_ready = status.state is State.READY
    body = Ready(
        success=is_ready,
        ready=is_ready,
        status=str(status.state),
        reason=status.reason,
        since=status.since,
        engine=status.engine,
        **model_choice(settings),
    ).model_dump(exclude_unset=True)
    if is_ready:
        return JSONResponse(body)
    refusal = envelope(
        "not_ready", status.reason, request_id_of(request), retry_after=status.retry_after, status=str(status.state),
        extra=body,
    )  # fmt: skip
    return JSONResponse(refusal, status_code=503, headers={"Retry-After": str(status.retry_after)})


@router.get("/", tags=["health"], response_model_exclude_unset=True)
async def root(runtime: RuntimeDep, settings: SettingsDep) -> ServiceInfo:
    status = runtime.status()
    return ServiceInfo(
        service=SERVICE_NAME,
        version=__version__,
        mode=settings.mode,
        resize=settings.resize,
        device=status.device or settings.device,
        state=str(status.state),
        model=status.description,
        engine=status.engine,
        **model_choice(settings),
        queue=QueueInfo(depth=status.queue_depth, in_flight=status.in_flight, max=settings.max_queue),
    )


_HTTP_BY_OUTCOME = {"success": 200, "partial": 206, "loading": 503, "unavailable": 503, "error": 500}
_CODE_BY_OUTCOME = {"loading": "model_loading", "unavailable": "unavailable", "error": "model_load_failed"}


#: /warmup: an operator's route that runs an inference (and may retry a failed load): a small fixed limit
WARMUP_POLICY = policy(per_minute=6, burst=3)


@router.post("/warmup", tags=["health"], responses=WARMUP_RESPONSES, response_model=None, dependencies=[WARMUP_POLICY])
async def warmup(request: Request, runtime: RuntimeDep, settings: SettingsDep) -> JSONResponse:
    """Load the model if needed (bounded wait), run the warmup on the sample photo and a 16×16 image."""
    started = time.perf_counter()
    outcome: WarmupOutcome = await runtime.request_warmup(settings.warmup_wait_s)
    status = runtime.status()
    http_status = _HTTP_BY_OUTCOME[outcome.kind]
    result = outcome.result
    model_ready = outcome.kind in ("success", "partial") and status.model_ready
    warmup_time = result.duration_s if result is not None else 0.0
    if outcome.kind in ("success", "partial"):
        label = outcome.kind
    elif outcome.kind == "error":
        label = "error"
    else:
        label = str(status.state) if status.state in (State.DRAINING, State.POISONED) else "loading"
    report = WarmupReport(
        success=outcome.kind == "success",
        status=label,
        model_ready=model_ready,
        message=outcome.message,
        total_time=round(time.perf_counter() - started, 3),
        model_load_time=status.load_time_s,
        warmup_time=warmup_time,
        device=status.device or settings.device,
        mode=settings.mode,
        resize=settings.resize,
        state=str(status.state),
    )
    if result is not None:
        report.details = result.details
    body = report.model_dump(exclude_unset=True)
    headers = {
        "X-Warmup-Status": label,
        "X-Model-Ready": "true" if model_ready else "false",
        "X-Warmup-Time": f"{warmup_time:.3f}",
    }
    if http_status >= 500:
        retry_after = outcome.retry_after if http_status == 503 else None
        code = _CODE_BY_OUTCOME[outcome.kind]
        body = envelope(code, outcome.message, request_id_of(request), retry_after=retry_after, extra=body)
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
    return JSONResponse(body, status_code=http_status, headers=headers)


# HEAD for the probes and GET for /warmup: same handlers, separate routes (unique OpenAPI operation ids)
router.add_api_route("/health", health, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)
router.add_api_route(
    "/warmup", warmup, methods=["GET"], tags=["health"], operation_id="warmup_get", responses=WARMUP_RESPONSES,
    dependencies=[WARMUP_POLICY],
)  # fmt: skip
