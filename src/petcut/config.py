"""Settings: every knob of petcut, validated once and passed down explicitly.

Environment variables use the prefix ``PETCUT_``. The names the old service's deploy files use are
accepted too (``INSPIRENET_MODE``, ``INSPIRENET_RESIZE``, ``TARGET_SIZE``, ``LOG_LEVEL``,
``SKIP_MODEL_PRELOAD``, ``MIN_INSTANCES``, ``ENABLE_STARTUP_LOGGING``, ``PORT``). Nothing here reads the
environment at import time: call :func:`load_settings`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AliasChoices, BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

Mode = Literal["base", "fast", "base-nightly"]
Resize = Literal["static", "dynamic"]
Device = Literal["auto", "cpu", "cuda", "mps"]
Precision = Literal["auto", "fp32", "fp16", "bf16"]
Foreground = Literal["blur_fusion", "pymatting", "none"]
ModelName = Literal["inspyrenet", "isnet"]
EngineName = Literal["auto", "torch", "openvino"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def _env(name: str, *legacy: str) -> AliasChoices:
    """Accept ``PETCUT_<NAME>`` and the legacy names for one field."""
    return AliasChoices(f"PETCUT_{name}", *legacy)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "petcut"


# --- abuse resistance ---
#: Routes no rate limit or API key requirement ever applies to (probes, metrics); /ui/ too.
NEVER_LIMITED = frozenset({"/health", "/ready", "/metrics"})
_KEY_HASH = re.compile(r"sha256:[0-9a-f]{64}")


class RateLimitRule(BaseModel):
    """One route's token bucket: ``per_minute`` refill (0: not limited) and ``burst`` capacity."""

    model_config = {"frozen": True, "extra": "forbid"}

    per_minute: int = Field(ge=0, le=1_000_000)
    burst: int | None = Field(None, ge=1, le=1_000_000)

    @model_validator(mode="before")
    @classmethod
    def _from_number(cls, value: object) -> object:
        if isinstance(value, int) and not isinstance(value, bool):
            return {"per_minute": value}
        return value


# --- end abuse resistance ---


def split_list(value: object) -> object:
    """An environment list: items separated by commas, spaces or newlines; other values pass through."""
    if isinstance(value, str):
        return [part for part in re.split(r"[\s,]+", value) if part]
    return value


class Settings(BaseSettings):
    """All configuration. Construct with :func:`load_settings` (environment) or directly (tests)."""

    model_config = SettingsConfigDict(
        env_prefix="PETCUT_",
        case_sensitive=False,
        populate_by_name=True,
        extra="ignore",
        frozen=True,
    )

    # --- model ---------------------------------------------------------------------------------
    model: ModelName = Field(
        "inspyrenet",
        description="inspyrenet (the production model) or isnet (IS-Net, installable from the npm registry).",
    )
    engine: EngineName = Field(
        "auto",
        description="auto (OpenVINO on the CPU when its prepared artifact is valid, else torch), torch, openvino.",
    )
    mode: Mode = Field("base", validation_alias=_env("MODE", "INSPIRENET_MODE"))
    resize: Resize = Field("static", validation_alias=_env("RESIZE", "INSPIRENET_RESIZE"))
    target_size: int | None = Field(
        None,
        validation_alias=_env("TARGET_SIZE", "TARGET_SIZE"),
        description=(
            "Network input size in pixels (a multiple of 32, 64..4096). static: the square side the "
            "image is resized to (default: the mode's size, 1024 for base, 384 for fast). dynamic: the "
            "cap on the shorter side (default 1280, as the reference)."
        ),
    )
    checkpoint: Path | None = Field(None)
    weights_dir: Path = Field(default_factory=lambda: default_cache_dir() / "weights")
    device: Device = Field("auto")
    precision: Precision = Field("auto")
    foreground: Foreground = Field("blur_fusion")
    torch_threads: int | None = Field(None, ge=1, le=256)

    # --- input limits --------------------------------------------------------------------------
    max_upload_mb: float = Field(50.0, gt=0, le=1024)
    max_pixels: int = Field(24_000_000, ge=1, le=500_000_000)

    # --- server --------------------------------------------------------------------------------
    host: str = Field("0.0.0.0")
    port: int = Field(8080, ge=1, le=65535, validation_alias=_env("PORT", "PORT"))
    log_level: LogLevel = Field("INFO", validation_alias=_env("LOG_LEVEL", "LOG_LEVEL"))
    skip_model_preload: bool = Field(False, validation_alias=_env("SKIP_MODEL_PRELOAD", "SKIP_MODEL_PRELOAD"))
    min_instances: int = Field(0, ge=0, validation_alias=_env("MIN_INSTANCES", "MIN_INSTANCES"))
    enable_startup_logging: bool = Field(
        False, validation_alias=_env("ENABLE_STARTUP_LOGGING", "ENABLE_STARTUP_LOGGING")
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_origin_regex: str | None = Field(None)
    data_dir: Path = Field(default_factory=lambda: default_cache_dir() / "data")

    # --- runtime / service ----------------------------------------------------------
    max_queue: int = Field(
        8,
        ge=0,
        le=10_000,
        description="Requests that may wait for the inference worker; the next one gets 503 + Retry-After.",
    )
    queue_timeout_s: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="Queue-wait deadline: a request not started by then gets 503 (not executed).",
    )
    inference_timeout_s: float = Field(
        120.0,
        gt=0,
        le=3600,
        description="Execution deadline of one inference; past it the request gets 504.",
    )
    cpu_workers: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Threads for decoding/post-processing/encoding (default: min(4, CPU count)).",
    )
    load_attempts: int = Field(
        4,
        ge=1,
        le=20,
        description="Attempts to load the model when errors are transient (I/O, device init).",
    )
    load_backoff_s: float = Field(
        1.0,
        ge=0,
        le=300,
        description="First retry delay; doubles each attempt (capped at 30 s), with jitter.",
    )
    load_cooldown_s: float = Field(
        60.0,
        ge=0,
        le=86_400,
        description="Circuit breaker: after a failed load, processing requests retry it only after this.",
    )
    warmup_wait_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="How long /warmup waits for a load in progress before answering 503.",
    )
    oom_window_s: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Two out-of-memory errors within this window degrade the service for a cool-down.",
    )
    oom_cooldown_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="How long the service stays degraded after repeated out-of-memory errors.",
    )
    shutdown_timeout_s: int = Field(
        6,
        ge=1,
        le=7,
        description="SIGTERM: seconds in-flight work may take to finish (exit < 8 s; Cloud Run kills at 10 s).",
    )

    # --- result cache ----------------------------------------------------------------------------
    cache_max_mb: float = Field(256.0, ge=0, le=65536)
    cache_max_item_mb: float = Field(16.0, gt=0, le=512)
    cache_ttl_s: int = Field(86_400, ge=1)
    redis_url: str | None = Field(None)
    redis_timeout_s: float = Field(0.25, gt=0, le=10)

    # --- customer image storage ---
    storage_url: str | None = Field(
        None,
        description="Customer images: file:///abs/path (default <data_dir>/images) or gs://bucket[/prefix].",
    )
    public_base_url: str | None = Field(
        None,
        description="Absolute base (http[s]://host[/path]) of the image URLs the local store returns "
        "(default: the request's base URL).",
    )
    storage_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Deadline of one storage call, retries included; past it the request gets 503.",
    )

    @field_validator("storage_url")
    @classmethod
    def _check_storage_url(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        is_file = value.startswith(("file:///", "file://localhost/"))
        is_gs = value.startswith("gs://") and bool(value[5:].split("/")[0])
        if value and not (is_file or is_gs):
            raise ValueError("use file:///abs/path or gs://bucket[/prefix]")
        return value or None

    @field_validator("public_base_url")
    @classmethod
    def _check_public_base_url(cls, value: str | None) -> str | None:
        value = (value or "").strip().rstrip("/")
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value or None

    # --- end customer image storage ---

    # --- abuse resistance ---
    rate_limit_per_minute: int = Field(
        30,
        ge=0,
        le=1_000_000,
        description="Requests per minute per client on each processing route (token bucket); 0 turns rate "
        "limiting off entirely.",
    )
    rate_limit_burst: int | None = Field(
        None,
        ge=1,
        le=1_000_000,
        description="Bucket capacity of the default limit: requests a client may send at once "
        "(default: the per-minute limit).",
    )
    rate_limits: Annotated[dict[str, RateLimitRule], NoDecode] = Field(
        default_factory=dict,
        description='Per-route limits, JSON: {"/store-image": 60, "/warmup": {"per_minute": 6, "burst": 2}}; '
        "keys are route paths as documented ({name} for a path parameter); 0 exempts the route.",
    )
    rate_limit_max_clients: int = Field(
        50_000,
        ge=100,
        le=10_000_000,
        description="In-memory buckets kept at most (least recently used evicted; idle full buckets dropped).",
    )
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma list of proxy IPs/CIDRs whose X-Forwarded-For is believed (right-most untrusted "
        "address is the client).",
    )
    api_key_hashes: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma list of sha256:<hex> API key hashes (python -m petcut.api.auth hash KEY).",
    )
    require_api_key: bool = Field(
        False,
        description="Processing and storage routes need a valid API key, except from allowed CORS origins.",
    )
    api_key_rate_limit_per_minute: int = Field(
        0,
        ge=0,
        le=1_000_000,
        description="Per-key limit on the rate-limited routes for clients with a valid key; 0: not limited.",
    )

    @field_validator("rate_limits", mode="before")
    @classmethod
    def _parse_rate_limits(cls, value: object) -> object:
        if isinstance(value, str):
            import json

            if not value.strip():
                return {}
            try:
                value = json.loads(value)
            except ValueError as exc:
                raise ValueError(f"not valid JSON: {exc}") from None
        if not isinstance(value, dict):
            raise ValueError('expected a JSON object such as {"/store-image": 60}')
        for path in value:
            if not isinstance(path, str) or not path.startswith("/"):
                raise ValueError(f"route {path!r} must be a path starting with /")
            if path.rstrip("/") in NEVER_LIMITED or path.rstrip("/") == "/ui" or path.startswith("/ui/"):
                raise ValueError(f"{path} is never rate limited")
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        value = split_list(value)
        if isinstance(value, list | tuple):
            import ipaddress

            for item in value:
                try:
                    ipaddress.ip_network(str(item), strict=False)
                except ValueError:
                    raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
        return value

    @field_validator("api_key_hashes", mode="before")
    @classmethod
    def _split_hashes(cls, value: object) -> object:
        value = split_list(value)
        if isinstance(value, list | tuple):
            hashes = []
            for item in value:
                text = str(item).strip().lower()
                if not text:
                    continue
                if not _KEY_HASH.fullmatch(text):
                    raise ValueError("each entry must be sha256:<64 hex digits> (python -m petcut.api.auth hash KEY)")
                hashes.append(text)
            return hashes
        return value

    # --- end abuse resistance ---

    # --- colour management ---
    color: Literal["srgb", "preserve"] = Field(
        "srgb",
        description="srgb: convert embedded ICC profiles to sRGB, tag outputs sRGB; preserve: keep the source profile",
    )

    @field_validator("color", mode="before")
    @classmethod
    def _lower_color(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    # --- end colour management ---
    # --- hardening ---
    max_jpeg_scans: int = Field(
        64,
        ge=1,
        le=10_000,
        description="JPEGs with more scans (SOS markers) are refused before decoding (422 too_many_scans); "
        "a normal progressive JPEG has about 10.",
    )
    decode_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="Deadline of one image decode; past it the image is refused (422 decode_timeout).",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=300,
        description="A connection must send a complete request line and headers within this time.",
    )
    body_timeout_s: float = Field(
        20.0,
        gt=0,
        le=600,
        description="Longest wait for the next piece of a request body; past it: 408 request_timeout.",
    )
    max_connections_per_client: int = Field(
        32,
        ge=1,
        le=100_000,
        description="Open connections one client address may hold; more are closed at once.",
    )
    store_max_images_per_session: int = Field(
        50,
        ge=1,
        le=100_000,
        description="Images one session may store (429 session_quota_exceeded past it).",
    )
    store_max_mb_per_session: float = Field(
        200.0,
        gt=0,
        le=1_000_000,
        description="Megabytes one session may store (413 session_quota_exceeded past it).",
    )
    # --- end hardening ---

    # --- IS-Net model ---
    isnet_variant: Literal["medium", "small"] = Field(
        "medium",
        description="PETCUT_MODEL=isnet: medium (88 MB, fp16 weights, the better cut-out) or small (44 MB, uint8).",
    )
    npm_registry: str = Field(
        "https://registry.npmjs.org",
        description="npm registry (or mirror) the IS-Net weights are downloaded from; the tarball is checked "
        "against the integrity petcut pins whatever the registry.",
    )
    model_fallback: bool = Field(
        False,
        description="Set by `make run` when no model was configured and the InSPyReNet weights could not be "
        "downloaded, so IS-Net is served instead; said in the log, /, /ready and the metrics. Needs "
        "PETCUT_MODEL=isnet.",
    )

    @field_validator("isnet_variant", mode="before")
    @classmethod
    def _lower_variant(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("npm_registry")
    @classmethod
    def _check_npm_registry(cls, value: str) -> str:
        value = value.strip().rstrip("/")
        if not value.startswith(("https://", "http://")):
            raise ValueError("must start with https:// (or http:// for a local mirror)")
        return value

    @model_validator(mode="after")
    def _check_model_fallback(self) -> Settings:
        if self.model_fallback and self.model != "isnet":
            raise ValueError("PETCUT_MODEL_FALLBACK=true only tags IS-Net served in place of InSPyReNet; "
                             "it needs PETCUT_MODEL=isnet")  # fmt: skip
        return self

    @property
    def model_id(self) -> str:
        """The model that serves, as cache keys, ``/``, ``X-Model`` and the metrics name it."""
        return f"isnet-{self.isnet_variant}" if self.model == "isnet" else f"inspyrenet-{self.mode}"

    @property
    def model_choice(self) -> str:
        """Why this model: ``fallback`` (make run could not get InSPyReNet) or ``configured``."""
        return "fallback" if self.model_fallback else "configured"

    @property
    def model_note(self) -> str | None:
        """What a person should know about the model choice (the fallback), for the log, ``/`` and ``/ready``."""
        if not self.model_fallback:
            return None
        return (
            "fallback: no model was configured and the InSPyReNet weights could not be downloaded, so IS-Net "
            f"{self.isnet_variant} (from the npm registry, AGPL-3.0) serves; set PETCUT_MODEL to choose"
        )

    # --- end IS-Net model ---

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("mode", "resize", "device", "precision", "foreground", "model", "engine", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        value = split_list(value)
        return [str(origin).rstrip("/") for origin in value] if isinstance(value, list) else value

    @field_validator("target_size")
    @classmethod
    def _check_target_size(cls, value: int | None) -> int | None:
        if value is not None and (value % 32 or not 64 <= value <= 4096):
            raise ValueError("must be a multiple of 32 between 64 and 4096")
        return value

    @field_validator("cors_origin_regex")
    @classmethod
    def _check_regex(cls, value: str | None) -> str | None:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value or None

    @model_validator(mode="after")
    def _check_precision(self) -> Settings:
        if self.precision == "fp16" and self.device in ("cpu", "mps"):
            raise ValueError("PETCUT_PRECISION=fp16 needs PETCUT_DEVICE=cuda (or auto on a CUDA machine)")
        if self.engine == "openvino" and self.device in ("cuda", "mps"):
            raise ValueError(f"PETCUT_ENGINE=openvino runs on the CPU, not PETCUT_DEVICE={self.device}")
        return self


class SettingsError(ValueError):
    """A configuration value is invalid; the message names the environment variable."""


def env_names(field: str) -> list[str]:
    """The environment variable names that set ``field``."""
    info = Settings.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    return [f"PETCUT_{field.upper()}"]


_FIELD_BY_NAME = {
    **{name: name for name in Settings.model_fields},
    **{env.lower(): name for name in Settings.model_fields for env in env_names(name)},
}


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides) once; raise SettingsError naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            loc = [str(part) for part in error.get("loc", ())]
            field = next((_FIELD_BY_NAME[part.lower()] for part in loc if part.lower() in _FIELD_BY_NAME), None)
            names = " / ".join(env_names(field)) if field else ".".join(loc) or "settings"
            value = error.get("input")
            shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
            lines.append(f"{names}: {error['msg']}{shown}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
