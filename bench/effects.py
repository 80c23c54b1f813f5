"""Benchmark the print effects on a 1152×1536 cut-out of polly.jpg (docs/benchmarks.md, "Effects").

    .venv/bin/python bench/effects.py [--image PATH] [--repeat 3]

Each effect: time of the first call in this process (numba compile with an empty numba cache, lookup
tables), best of N warm calls (wall clock, and the least process CPU time of those calls: steadier
when other work shares the 2 cores), peak of numpy allocations (tracemalloc) and peak RSS above the RSS before
the call (Linux VmHWM after resetting it; psutil RSS after the call where that is not possible).
The cut-out's alpha is a synthetic soft ellipse: the segmentation model is not needed here.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageOps

from machine import pet_photo
from petcut import effects
from petcut.effects._palette import _fill_lut
from petcut.effects.retro8bit import PALETTE, WEIGHTS

DEFAULT_IMAGE = pet_photo("polly.jpg")
SIZE = (1152, 1536)  # width, height
TARGET_S = 0.1
TARGET_MB = 150
# the old service on this kind of machine (docs/benchmarks.md, "Effects"): seconds, peak MB where quoted
REFERENCE = {"enhancedblackwhite": (0.17, None), "popart": (0.25, None), "dithering": (5.4, None),
             "retro8bit": (1.9, 3100)}  # fmt: skip
CASES = [(name, None) for name in effects.names()] + [("retro8bit", {"error_diffusion": True})]


def cutout(path: Path) -> np.ndarray:
    """RGBA uint8 (1536, 1152, 4): the photo scaled, alpha a soft ellipse (4-pixel ramp)."""
    img = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
    if img.width > img.height:
        img = img.rotate(90, expand=True)
    rgb = np.asarray(img.resize(SIZE, Image.Resampling.LANCZOS))
    h, w = rgb.shape[:2]
    y, x = np.ogrid[:h, :w]
    r = np.sqrt(((x - w / 2) / (0.42 * w)) ** 2 + ((y - h / 2) / (0.45 * h)) ** 2)
    alpha = np.clip((1 - r) * min(w, h) * 0.42 / 4, 0, 1)
    return np.dstack([rgb, (alpha * 255).astype(np.uint8)])


def _release_free_heap() -> None:
    """Give freed heap memory back to the OS, so that RSS growth during a call is visible."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: not glibc
        ctypes.CDLL(None).malloc_trim(0)


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise OSError("no VmHWM")


def measure(name: str, params: dict | None, rgba: np.ndarray, repeat: int) -> dict:
    t0 = time.perf_counter()
    effects.apply(name, rgba, params)
    first = time.perf_counter() - t0
    times, cpu = [], []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        effects.apply(name, rgba, params)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    tracemalloc.start()
    effects.apply(name, rgba, params)
    _, traced = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    process = psutil.Process()
    _release_free_heap()
    before = process.memory_info().rss
    if _reset_peak_rss():
        effects.apply(name, rgba, params)
        rss_peak = _peak_rss() - before
    else:
        effects.apply(name, rgba, params)
        rss_peak = process.memory_info().rss - before
    return {
        "first": first,
        "best": min(times),
        "cpu": min(cpu),
        "traced_mb": traced / 2**20,
        "rss_mb": rss_peak / 2**20,
    }


def main() -> int:
    # a new container has no numba cache: compile from scratch so that the first-call column is honest
    # (numba is imported by the first kernel call, after this)
    if "NUMBA_CACHE_DIR" in os.environ:
        return run()
    with tempfile.TemporaryDirectory(prefix="petcut-bench-numba-") as cache:
        os.environ["NUMBA_CACHE_DIR"] = cache
        return run()


def run() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=DEFAULT_IMAGE)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rgba = cutout(args.image)
    print(f"image {args.image.name} → {rgba.shape[1]}×{rgba.shape[0]} RGBA, {os.cpu_count()} CPUs, "
          f"numpy {np.__version__}, NUMBA_CACHE_DIR={os.environ['NUMBA_CACHE_DIR']}")  # fmt: skip
    header = (f"{'effect':<30}{'first call':>11}{'best of ' + str(args.repeat):>11}{'CPU':>9}{'reference':>11}"
              f"{'speed-up':>10}{'numpy peak':>12}{'RSS peak':>10}{'ref peak':>10}  target")  # fmt: skip
    print(header)
    print("-" * len(header))
    failed = []
    for name, params in CASES:
        m = measure(name, params, rgba, args.repeat)
        label = name + ("" if not params else " " + ",".join(f"{k}={v}" for k, v in params.items()))
        ref_s, ref_mb = REFERENCE.get(name, (None, None)) if not params else (None, None)
        ok = m["best"] <= TARGET_S and max(m["traced_mb"], m["rss_mb"]) <= TARGET_MB
        if not ok:
            failed.append(label)
        ref = f"{ref_s:.2f}s" if ref_s else "-"
        speedup = f"{ref_s / m['best']:.0f}×" if ref_s else "-"
        ref_peak = f"{ref_mb}MB" if ref_mb else "-"
        print(
            f"{label:<30}{m['first']:>10.3f}s{m['best']:>10.4f}s{m['cpu']:>8.4f}s{ref:>11}{speedup:>10}"
            f"{m['traced_mb']:>10.1f}MB{m['rss_mb']:>8.1f}MB{ref_peak:>10}  {'ok' if ok else 'MISSED'}"
        )
    t0 = time.perf_counter()
    _fill_lut(np.asarray(PALETTE, np.float64), np.asarray(WEIGHTS, np.float64), np.empty(256**3, np.uint8))
    print(f"retro8bit palette table (256³ → index, 16 MB, built once): {time.perf_counter() - t0:.3f} s compiled")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times stretch with it)")
    print(f"targets: ≤ {TARGET_S} s and ≤ {TARGET_MB} MB per effect (first call excluded: compile/tables)")
    if failed:
        print("missed:", ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
