"""Pydantic models of the JSON bodies the routes answer; the OpenAPI schema of each comes from them.

The fields are those docs/api.md describes. A field that is only sometimes there (``model_note``, the
warmup's ``details``) is left unset and dumped with ``exclude_unset``; every other field is always there,
``null`` included. The error variants (``…Refusal``) are the :class:`~petcut.api.errors.ErrorEnvelope`
with the route's own fields added.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from petcut.api.errors import ErrorEnvelope


class _Body(BaseModel):
    model_config = ConfigDict(protected_namespaces=())  # fields named model_*


# --- health ---------------------------------------------------------------------------------------------
class ModelChoice(_Body):
    model_id: str = Field(description="the model that serves: inspyrenet-<mode> or isnet-<variant>")
    model_choice: str = Field(description="configured, or fallback")
    model_note: str | None = Field(default=None, description="why a fallback serves (absent otherwise)")


class Health(_Body):
    status: str = Field(description="healthy, or unhealthy when a device fault poisoned the instance")
    container_ready: bool
    model_ready: bool
    model_status: str = Field(description="the runtime's state")
    uptime_s: float
    version: str


class HealthRefusal(Health, ErrorEnvelope):  # type: ignore[misc]  # status: unhealthy here
    """``/health`` when a device fault poisoned the instance (503)."""


class Ready(ModelChoice):
    success: bool
    ready: bool
    status: str = Field(description="the runtime's state")
    reason: str
    since: str
    engine: dict[str, str] | None = Field(description="what runs (model, engine, device, precision) once loaded")


class ReadyRefusal(Ready, ErrorEnvelope):  # type: ignore[misc]  # success: false, status: the state
    """``/ready`` when the model is not ready (503)."""


class QueueInfo(_Body):
    depth: int
    in_flight: int
    max: int


class ServiceInfo(ModelChoice):
    service: str
    version: str
    mode: str
    resize: str
    device: str
    state: str
    model: str | None
    engine: dict[str, str] | None
    queue: QueueInfo


class WarmupReport(_Body):
    success: bool
    status: str = Field(description="success, partial, error, loading, draining or poisoned")
    model_ready: bool
    message: str
    total_time: float
    model_load_time: float | None
    warmup_time: float
    device: str
    mode: str
    resize: str
    state: str
    details: dict[str, Any] | None = Field(default=None, description="per warmup image, once a warmup ran")


class WarmupRefusal(WarmupReport, ErrorEnvelope):  # type: ignore[misc]  # success: false, status: the state
    """``/warmup`` when the model could not be loaded (500) or is not loaded yet (503)."""


# --- processing -----------------------------------------------------------------------------------------
class EffectInfo(_Body):
    name: str
    description: str
    params: dict[str, dict[str, Any]] = Field(description="per parameter: type, default, range")


class EffectCatalogue(_Body):
    success: bool
    effects: list[EffectInfo]
    default: str
    aliases: dict[str, str] = Field(description="old name → effect")


class CacheInfo(_Body):
    background_removal_hit: bool
    effect_cache_hits: dict[str, bool]
    total_cache_hits: int
    total_operations: int


class EffectImages(_Body):
    """``process-with-effects`` with ``return_all_effects=true``."""

    success: bool
    effects: dict[str, str] = Field(description="name asked for → base64 image, no data: prefix")
    format: str
    processing_time: dict[str, float] = Field(description="seconds: total, background_removal, effects_processing")
    cache_info: CacheInfo
    session_id: str
    total_effects: int
    failed_effects: list[str] | None


# --- customer images ------------------------------------------------------------------------------------
class _StoredImageFields(_Body):
    """What the store says of every image it holds."""

    url: str
    session_id: str
    image_type: str
    tier: str
    filename: str
    content_type: str
    size: int
    created_at: str


class StoredImageInfo(_StoredImageFields):
    key: str
    pet_name: str | None
    pet_id: str | None
    effect_applied: str | None
    order_id: str | None


class StoredImageAnswer(_StoredImageFields):
    success: bool


class SessionImages(_Body):
    success: bool
    session_id: str
    images: list[StoredImageInfo]
    count: int


class CompletedOrder(SessionImages):
    order_id: str | None
