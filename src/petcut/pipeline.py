"""decode → segment (cached) → effects → encode: the one place that orchestrates a request.

The synchronous steps (:func:`decode`, :func:`check_alpha`, :func:`cut_out`, :func:`render_removal`)
are shared by the CLI and the service (docs/architecture.md). :func:`remove_image` chains them for the
CLI: no cache, no queue, no event loop. The service's :class:`Pipeline` runs each step where it
belongs: decoding, effects and encoding in the bounded CPU pool, the model on the runtime's single
worker, and consults the result cache first so a repeated request does no model work (and, when every
output is cached, no decoding either).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any, Protocol, TypeVar

import numpy as np
from PIL import Image

from petcut import effects
from petcut.cache import ResultCache, cache_key, content_digest, pack, unpack
from petcut.config import Settings
from petcut.errors import PetcutError
from petcut.imaging import (
    DecodedImage,
    ImageError,
    composite,
    crop,
    decode_image,
    encode_image,
    expand_box,
    fit_max_side,
    subject_bbox,
    to_rgba,
)
from petcut.imaging.color import SRGB_TAGS, OutputTags
from petcut.imaging.compose import Box
from petcut.imaging.foreground import estimate_foreground
from petcut.model.base import Segmenter
from petcut.observability import Metrics

log = logging.getLogger(__name__)
T = TypeVar("T")


class ModelOutputError(RuntimeError):
    """The segmenter returned something that is not an H×W alpha in [0, 1] (a bug: 500)."""


def check_alpha(alpha: object, height: int, width: int) -> np.ndarray:
    if not isinstance(alpha, np.ndarray) or alpha.shape != (height, width):
        shape = getattr(alpha, "shape", None)
        raise ModelOutputError(f"the model returned {type(alpha).__name__} {shape}, expected ({height}, {width})")
    if not np.issubdtype(alpha.dtype, np.floating) or not np.isfinite(alpha).all():
        raise ModelOutputError("the model returned a non-finite or non-float alpha")
    return alpha


class NoSubjectError(PetcutError, ValueError):
    """Cropping to the subject was asked for, but the model found no subject (422)."""

    status = 422
    code = "no_subject_found"
    default_message = "No subject was found in the image, so there is nothing to crop to."


# --- the synchronous steps (the CLI and the service) --------------------------------------------------
def decode(data: bytes, settings: Settings) -> DecodedImage:
    """The upload decoded under the configured limits (size, pixels, JPEG scans, time) and colour mode."""
    return decode_image(
        data,
        max_bytes=settings.max_upload_bytes,
        max_pixels=settings.max_pixels,
        color=settings.color,
        max_scans=settings.max_jpeg_scans,
        timeout_s=settings.decode_timeout_s,
    )


def cut_out(
    rgb: np.ndarray, alpha: np.ndarray, foreground: str, tags: OutputTags, *, encode: bool
) -> tuple[np.ndarray, Box | None, bytes | None]:
    """The photo and its checked alpha → the RGBA cut-out (RGB = estimated foreground colour), the
    subject's box, and the cut-out as PNG when ``encode`` (post-processing, no model)."""
    rgba = to_rgba(estimate_foreground(rgb, alpha, method=foreground), alpha)
    png = encode_image(rgba, "png", tags=tags) if encode else None
    return rgba, subject_bbox(alpha), png


def render_removal(seg: SegmentedImage, options: RemoveOptions) -> tuple[bytes, int, int]:
    """The remove-background output of a cut-out: crop, resize, mask or background, encoded; with its size."""
    image, tags = seg.rgba, seg.tags
    if options.crop:
        if seg.box is None:
            raise NoSubjectError()
        height, width = image.shape[:2]
        image = crop(image, expand_box(seg.box, options.crop_margin, width, height))
    if options.max_side:
        resized = fit_max_side(image, options.max_side)
        image, tags = resized, _scaled_tags(tags, image, resized)
    if options.output == "mask":
        image = np.ascontiguousarray(image[..., 3])
    elif options.bg_color is not None:
        image = composite(image, options.bg_color)
    elif options.fmt == "png" and seg.png is not None and image is seg.rgba:
        return seg.png, image.shape[1], image.shape[0]  # the plain full-size cut-out: already encoded
    data = encode_image(image, options.fmt, bg_color=options.bg_color or (255, 255, 255), tags=tags)
    return data, image.shape[1], image.shape[0]


def remove_image(segmenter: Segmenter, data: bytes, settings: Settings, options: RemoveOptions) -> bytes:
    """The remove-background path of the service, synchronously and without cache or queue (the CLI)."""
    started = time.perf_counter()
    decoded = decode(data, settings)
    rgb = decoded.rgb
    alpha = check_alpha(segmenter.predict_alpha(rgb), rgb.shape[0], rgb.shape[1])
    rgba, box, _ = cut_out(rgb, alpha, settings.foreground, decoded.output_tags, encode=False)
    seg = SegmentedImage(rgba, box, False, time.perf_counter() - started, None, decoded.output_tags)
    return render_removal(seg, options)[0]


# --- what the service's pipeline needs from its surroundings -----------------------------------------
class Executor(Protocol):
    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...


class ModelAccess(Protocol):
    def check_available(self) -> None: ...

    async def predict_alpha(self, rgb: np.ndarray, *, internal: bool = False) -> np.ndarray: ...


def _decode_png(data: bytes) -> tuple[np.ndarray, bytes | None]:
    """A cached cut-out's pixels and the ICC profile it carries (None: tagged sRGB)."""
    with Image.open(BytesIO(data)) as image:
        return np.asarray(image.convert("RGBA")), image.info.get("icc_profile")


def _scaled_tags(tags: OutputTags, before: np.ndarray, after: np.ndarray) -> OutputTags:
    """The DPI follows a resize so that the print size stays the same."""
    return tags if after is before else tags.scaled(after.shape[1] / before.shape[1])


# --- results ---------------------------------------------------------------------------------------------
@dataclass
class SegmentedImage:
    """The cut-out of one upload, its subject box, and whether it came from the cache."""

    rgba: np.ndarray
    box: Box | None
    cache_hit: bool
    seconds: float
    png: bytes | None = None  # the encoded full-size cut-out, when already at hand
    tags: OutputTags = SRGB_TAGS  # colour profile and DPI of every output made from it


@dataclass(frozen=True)
class RemoveOptions:
    output: str = "cutout"  # cutout | mask
    fmt: str = "png"
    bg_color: tuple[int, int, int] | None = None
    crop: bool = False
    crop_margin: str = "0"
    max_side: int | None = None


@dataclass
class ImageResult:
    data: bytes
    fmt: str
    width: int
    height: int
    box: Box | None
    cache_hit: bool
    timings: dict[str, float]


@dataclass
class EffectsResult:
    images: dict[str, bytes]
    fmt: str
    failed: list[str]
    background_hit: bool
    effect_hits: dict[str, bool]
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def total_cache_hits(self) -> int:
        return int(self.background_hit) + sum(self.effect_hits.values())


class Pipeline:
    """The service's request path. One per app; safe to call concurrently from the event loop."""

    def __init__(
        self, settings: Settings, model: ModelAccess, cpu: Executor, cache: ResultCache, metrics: Metrics | None = None
    ) -> None:
        self.settings = settings
        self.model = model
        self.cpu = cpu
        self.cache = cache
        self.metrics = metrics

    def _observe(self, phase: str, started: float) -> None:
        if self.metrics is not None:
            self.metrics.observe("petcut_inference_seconds", time.perf_counter() - started, phase=phase)

    def _failed(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.inc("petcut_inference_failures_total", reason=reason)

    # --- the cut-out ---------------------------------------------------------------------------------
    async def segment(
        self, data: bytes, *, use_cache: bool = True, internal: bool = False, digest: str | None = None
    ) -> SegmentedImage:
        """The full-size cut-out of ``data``, from the cache when possible, else from the model.
        ``digest``: the upload's :func:`content_digest` when the caller already has it."""
        started = time.perf_counter()
        key = cache_key(self.settings, digest or content_digest(data), "cutout")
        if use_cache and not internal:
            blob = await self.cache.get(key)
            if blob is not None:
                meta, cached = unpack(blob)
                pixels, icc = await self.cpu.run(_decode_png, cached)
                cached_box = tuple(meta["box"]) if meta.get("box") else None
                cached_tags = OutputTags(icc, tuple(meta["dpi"]) if meta.get("dpi") else None)
                return SegmentedImage(pixels, cached_box, True, time.perf_counter() - started, cached, cached_tags)
        if not internal:
            self.model.check_available()  # refuse (and start a load) before decoding anything
        step = time.perf_counter()
        try:
            decoded = await self.cpu.run(decode, data, self.settings)
        except ImageError:
            self._failed("bad_input")
            raise
        self._observe("decode", step)
        rgb = decoded.rgb
        alpha = await self.model.predict_alpha(rgb, internal=internal)
        try:
            alpha = check_alpha(alpha, rgb.shape[0], rgb.shape[1])
        except ModelOutputError:
            self._failed("other")
            raise
        store = use_cache and not internal
        step = time.perf_counter()
        tags = decoded.output_tags
        rgba, box, png = await self.cpu.run(cut_out, rgb, alpha, self.settings.foreground, tags, encode=store)
        self._observe("post", step)
        if store and png is not None:
            await self.cache.set(key, pack({"box": box, "dpi": tags.dpi}, png))
        return SegmentedImage(rgba, box, False, time.perf_counter() - started, png, tags)

    # --- remove-background ----------------------------------------------------------------------------
    async def remove_background(
        self, data: bytes, options: RemoveOptions, *, use_cache: bool = True, internal: bool = False
    ) -> ImageResult:
        """The cut-out (or mask) of ``data`` as image bytes. ``internal`` is the warmup: no admission
        control, no cache."""
        use_cache = use_cache and not internal
        started = time.perf_counter()
        digest = content_digest(data)
        key = cache_key(self.settings, digest, "remove", **vars(options))
        if use_cache:
            blob = await self.cache.get(key)
            if blob is not None:
                meta, payload = unpack(blob)
                box = tuple(meta["box"]) if meta.get("box") else None
                elapsed = time.perf_counter() - started
                return ImageResult(payload, options.fmt, meta["width"], meta["height"], box, True,
                                   {"total": elapsed, "background_removal": 0.0, "encode": 0.0})  # fmt: skip
        seg = await self.segment(data, use_cache=use_cache, internal=internal, digest=digest)
        encode_started = time.perf_counter()
        payload, width, height = await self.cpu.run(render_removal, seg, options)
        self._observe("render", encode_started)
        if use_cache:
            await self.cache.set(key, pack({"box": seg.box, "width": width, "height": height}, payload))
        now = time.perf_counter()
        timings = {"total": now - started, "background_removal": seg.seconds, "encode": now - encode_started}
        return ImageResult(payload, options.fmt, width, height, seg.box, seg.cache_hit, timings)

    # --- effects ----------------------------------------------------------------------------------------
    def _render_effect(
        self,
        rgba: np.ndarray,
        name: str,
        params: dict[str, Any],
        fmt: str,
        bg_color: tuple[int, int, int] | None,
        tags: OutputTags,
    ) -> bytes:
        image = effects.apply(name, rgba, params)
        return encode_image(image, fmt, bg_color=bg_color or (255, 255, 255), tags=tags)

    async def render_effects(
        self,
        data: bytes,
        names: Sequence[str],
        params: Mapping[str, dict[str, Any]],
        *,
        fmt: str = "png",
        max_side: int | None = None,
        bg_color: tuple[int, int, int] | None = None,
        use_cache: bool = True,
    ) -> EffectsResult:
        """Each named effect of the cut-out of ``data``, encoded as ``fmt``; effects run in parallel.

        ``params`` must already be validated (full parameter sets from ``effects.validate_params``).
        """
        started = time.perf_counter()
        digest = content_digest(data)
        keys = {
            name: cache_key(
                self.settings,
                digest,
                "effect",
                effect=effects.canonical(name),
                params=params[name],
                fmt=fmt,
                max_side=max_side,
                bg=bg_color if fmt == "jpeg" else None,
            )
            for name in names
        }
        images: dict[str, bytes] = {}
        if use_cache:
            found = await asyncio.gather(*(self.cache.get(keys[name]) for name in names))
            images = {name: blob for name, blob in zip(names, found, strict=True) if blob is not None}
        hits = {name: name in images for name in names}
        missing = [name for name in names if name not in images]
        background_hit, removal_seconds = True, 0.0
        failed: list[str] = []
        effects_started = time.perf_counter()
        if missing:
            seg = await self.segment(data, use_cache=use_cache, digest=digest)
            background_hit, removal_seconds = seg.cache_hit, seg.seconds
            effects_started = time.perf_counter()
            rgba = seg.rgba if not max_side else await self.cpu.run(fit_max_side, seg.rgba, max_side)
            tags = _scaled_tags(seg.tags, seg.rgba, rgba)
            unique: dict[str, str] = {}  # an alias and its effect asked together, same parameters: render once
            for name in missing:
                unique.setdefault(keys[name], name)
            rendered = await asyncio.gather(
                *(
                    self.cpu.run(self._render_effect, rgba, name, params[name], fmt, bg_color, tags)
                    for name in unique.values()
                ),
                return_exceptions=True,
            )
            outcomes = dict(zip(unique, rendered, strict=True))
            for name in missing:
                outcome = outcomes[keys[name]]
                if isinstance(outcome, BaseException):
                    if not isinstance(outcome, Exception):
                        raise outcome
                    log.error("effect failed", extra={"effect": name}, exc_info=outcome)
                    failed.append(name)
                    continue
                images[name] = outcome
                if use_cache:
                    await self.cache.set(keys[name], outcome)
            self._observe("render", effects_started)
        now = time.perf_counter()
        return EffectsResult(
            images={name: images[name] for name in names if name in images},
            fmt=fmt,
            failed=failed,
            background_hit=background_hit,
            effect_hits=hits,
            timings={
                "total": now - started,
                "background_removal": removal_seconds,
                "effects_processing": now - effects_started,
            },
        )
