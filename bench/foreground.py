"""How long blur-fusion foreground estimation takes on a 1000×1150 image soft everywhere (the worst case:
no pixel outside the computed region). The tests check what makes it fast (a fixed number of float32 box
blurs); this prints its time beside the reference's foreground step (pymatting's multilevel estimate, which
the reference runs and ``PETCUT_FOREGROUND=pymatting`` keeps), best of the runs, and the 1 s budget.

    .venv/bin/python bench/foreground.py [--runs 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from machine import cpu_description
from petcut.imaging import estimate_foreground

SHAPE = (1150, 1000)
TARGET_S = 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (*SHAPE, 3), dtype=np.uint8)
    alpha = rng.random(SHAPE, dtype=np.float32)
    print(f"CPU: {cpu_description()}")
    best: dict[str, float] = {}
    for method in ("pymatting", "blur_fusion"):
        estimate_foreground(rgb[:64, :64], alpha[:64, :64], method)  # pymatting's JIT compile, OpenCV's threads
        best[method] = float("inf")
        for _ in range(args.runs):
            started = time.perf_counter()
            estimate_foreground(rgb, alpha, method)
            best[method] = min(best[method], time.perf_counter() - started)
    ratio = best["blur_fusion"] / best["pymatting"]
    verdict = "met" if best["blur_fusion"] <= TARGET_S else "NOT met"
    print(f"{SHAPE[1]}×{SHAPE[0]}, all soft, best of {args.runs}:")
    print(f"  reference (pymatting)  {best['pymatting']:.3f} s")
    petcut = f"  petcut (blur fusion)   {best['blur_fusion']:.3f} s"
    print(f"{petcut}  ({ratio:.3f} of the reference; ≤ {TARGET_S} s: {verdict})")


if __name__ == "__main__":
    main()
