"""What every benchmark prints and shares: the CPU it ran on, the seeded random-weight checkpoint, the
shop's photos.

Imported by the scripts beside it (``python bench/<script>.py`` puts this folder on the path).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: the flags that decide the engines' and effects' speed
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8",
         "amx_tile", "neon")  # fmt: skip


def cpu_description() -> str:
    """The CPU's model, its core count and the flags of note (print with every benchmark)."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() in ("flags", "Features"):
                flags = set(value.split())
    shown = " ".join(flag for flag in FLAGS if flag in flags) or "none of note"
    return f"{model}; {len(os.sched_getaffinity(0))} usable CPUs; flags: {shown}"


def pet_photo(name: str) -> Path:
    """One of the shop's photos: ``shared/data/pets`` inside the checkout or beside it (the latter named
    when neither has it, so the error says where to put it)."""
    for shared in (REPO / "shared", REPO.parent / "shared"):
        if (shared / "data" / "pets" / name).exists():
            return shared / "data" / "pets" / name
    return REPO.parent / "shared" / "data" / "pets" / name


def checkpoint_path(explicit: str | None) -> Path:
    """``explicit``, or the seeded random-weight checkpoint (fast mode's network) built once in the cache."""
    if explicit:
        return Path(explicit)
    from petcut.config import default_cache_dir
    from petcut.model.random_checkpoint import build_random_checkpoint

    path = default_cache_dir() / "bench" / "ckpt_random_seed0.pth"
    if not path.is_file():
        print(f"building the seeded random-weight checkpoint at {path} ...", flush=True)
        build_random_checkpoint(path, mode="fast", seed=0)
    return path
