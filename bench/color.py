"""What colour management costs a remove-background request on polly.jpg (at most 5 %: docs/color.md;
results in docs/benchmarks.md, "Colour management").

    .venv/bin/python bench/color.py [--image PATH] [--runs 3] [--checkpoint PATH]

polly.jpg is a 3024×4032 iPhone photo with a Display P3 profile. One process, one model (fast mode,
the seeded random-weight checkpoint of bench/compare_reference.py unless --checkpoint names one), two
pipelines side by side, runs interleaved:

- reference: ``PETCUT_COLOR=preserve`` — the profile is not applied (no conversion; what petcut did
  before colour management, apart from the profile now embedded in the output);
- petcut: ``PETCUT_COLOR=srgb`` (the default) — the P3 pixels converted to sRGB with LittleCMS.

Each run is the whole request path without the cache: decode → model → cut-out → PNG. Wall and process
CPU times are printed (median of the runs); the decode step alone is timed too (best of 5), and the
request path with a fixed alpha instead of the network (process CPU time), because on a shared machine
the difference of two multi-second wall times is noisier than the conversion itself (and torch's worker
threads add spin time to the process CPU time).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import numpy as np

from machine import checkpoint_path, cpu_description, pet_photo
from petcut.cache import MemoryCache
from petcut.config import Settings
from petcut.imaging import decode_image
from petcut.pipeline import Pipeline, RemoveOptions

DEFAULT_IMAGE = pet_photo("polly.jpg")
TARGET = 0.05


class Model:
    """The loaded segmenter as the pipeline's ModelAccess (no admission control: one request at a time)."""

    def __init__(self, segmenter: object) -> None:
        self.segmenter = segmenter

    def check_available(self) -> None:
        pass

    async def predict_alpha(self, rgb: np.ndarray, *, internal: bool = False) -> np.ndarray:
        return await asyncio.to_thread(self.segmenter.predict_alpha, rgb)  # type: ignore[attr-defined]


class FixedAlpha:
    """A 'model' that returns a fixed ellipse at once: the request path without the network."""

    def check_available(self) -> None:
        pass

    async def predict_alpha(self, rgb: np.ndarray, *, internal: bool = False) -> np.ndarray:
        height, width = rgb.shape[:2]
        yy, xx = np.mgrid[0:height, 0:width]
        inside = ((yy - height / 2) / (height / 3)) ** 2 + ((xx - width / 2) / (width / 3)) ** 2 <= 1
        return inside.astype(np.float32)


class Threads:
    async def run(self, fn, *args, **kwargs):
        return await asyncio.to_thread(fn, *args, **kwargs)


def time_request(pipeline: Pipeline, data: bytes) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    asyncio.run(pipeline.remove_background(data, RemoveOptions(), use_cache=False))
    return time.perf_counter() - wall, time.process_time() - cpu


def time_decode(settings: Settings, data: bytes, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        decode_image(data, max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels, color=settings.color)
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--checkpoint", help="reuse this checkpoint instead of the cached random one")
    args = parser.parse_args()
    data = args.image.read_bytes()

    from petcut.model.segmenter import load_segmenter

    base = {"mode": "fast", "checkpoint": checkpoint_path(args.checkpoint)}
    settings = {
        "reference (PETCUT_COLOR=preserve, no conversion)": Settings(**base, color="preserve"),
        "petcut (PETCUT_COLOR=srgb, P3 → sRGB)": Settings(**base, color="srgb"),
    }
    print(f"CPU: {cpu_description()}")
    print(f"image: {args.image.name}, {len(data) / 1e6:.1f} MB; loading the model ...", flush=True)
    model = Model(load_segmenter(next(iter(settings.values()))))
    pipelines = {label: Pipeline(s, model, Threads(), MemoryCache(1 << 20)) for label, s in settings.items()}

    for pipeline in pipelines.values():  # warm: first model call, transform build, allocations
        time_request(pipeline, data)
    walls: dict[str, list[float]] = {label: [] for label in pipelines}
    cpus: dict[str, list[float]] = {label: [] for label in pipelines}
    for _ in range(args.runs):
        for label, pipeline in pipelines.items():
            wall, cpu = time_request(pipeline, data)
            walls[label].append(wall)
            cpus[label].append(cpu)
    decodes = {label: time_decode(s, data) for label, s in settings.items()}
    no_model = {label: Pipeline(s, FixedAlpha(), Threads(), MemoryCache(1 << 20)) for label, s in settings.items()}
    rest: dict[str, list[float]] = {label: [] for label in no_model}
    for _ in range(args.runs):
        for label, pipeline in no_model.items():
            rest[label].append(time_request(pipeline, data)[1])

    ref_label, ours_label = list(pipelines)
    print(f"\nremove-background, no cache, {args.runs} interleaved runs each (median)")
    print(f"{'':<52}{'wall s':>9}{'CPU s':>9}{'decode s':>10}{'no-model CPU s':>16}")
    for label in pipelines:
        wall, cpu = statistics.median(walls[label]), statistics.median(cpus[label])
        print(f"{label:<52}{wall:>9.3f}{cpu:>9.3f}{decodes[label]:>10.3f}{statistics.median(rest[label]):>16.3f}")
    ref_wall = statistics.median(walls[ref_label])
    wall_overhead = statistics.median(walls[ours_label]) / ref_wall - 1
    cpu_overhead = statistics.median(cpus[ours_label]) / statistics.median(cpus[ref_label]) - 1
    conversion = decodes[ours_label] - decodes[ref_label]
    print(f"\nconversion alone (decode difference): {conversion:.3f} s = {conversion / ref_wall:.1%} of a request")
    print(f"request overhead: wall {wall_overhead:+.1%}, CPU {cpu_overhead:+.1%} (target ≤ {TARGET:.0%})")
    verdict = "met" if conversion / ref_wall <= TARGET else "NOT met"
    print(f"target {verdict}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
