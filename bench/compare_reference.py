"""petcut against the reference (transparent-background's Remover), in fresh processes, in one run.

    .venv/bin/python bench/compare_reference.py [--base] [--runs 5] [--photo Tex.jpeg]

Both sides load the same seeded random-weight checkpoint (built once and reused from the cache dir) on
the CPU. The reference runs as a new container would: a fresh process with an empty NUMBA_CACHE_DIR.
petcut runs as the real service (``python -m petcut serve``) measured over HTTP, so its numbers include
the request, decoding and PNG encoding that the reference's figures leave out.

Printed: cold start to first served image (and petcut's /health and /ready times), per-image latency
(median of --runs), the shop's request, a cache hit, alpha parity (static and dynamic), and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "data" / "pets"
OLD_EFFECTS_S = {"enhancedblackwhite": 0.17, "color": 0.0}  # performance.md: the old service's effect times

REFERENCE = r"""
import json, os, sys, time, resource
import numpy as np
t0 = time.perf_counter()
from transparent_background import Remover
from PIL import Image
t_import = time.perf_counter()
remover = Remover(mode=os.environ["MODE"], ckpt=os.environ["CKPT"], device="cpu", resize=os.environ["RESIZE"])
t_init = time.perf_counter()
remover.process(Image.new("RGB", (32, 32), (128, 128, 128)), type="rgba")
t_warm = time.perf_counter()
img = Image.open(os.environ["PHOTO"]).convert("RGB")
remover.process(img, type="rgba")
t_first = time.perf_counter()
print(json.dumps({"event": "first", "import": t_import - t0, "init": t_init - t_import,
                  "warmup": t_warm - t_init, "first": t_first - t_warm}), flush=True)
runs = []
for _ in range(int(os.environ["RUNS"])):
    t = time.perf_counter(); remover.process(img, type="rgba"); runs.append(time.perf_counter() - t)
model = []
for _ in range(int(os.environ["RUNS"])):
    t = time.perf_counter(); alpha = remover.process(img, type="map"); model.append(time.perf_counter() - t)
np.save(os.environ["ALPHA_OUT"], np.asarray(alpha)[..., 0])
print(json.dumps({"event": "done", "runs": runs, "map_runs": model,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)
"""


def checkpoint_path(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    from petcut.config import default_cache_dir
    from petcut.model.random_checkpoint import build_random_checkpoint

    path = default_cache_dir() / "bench" / "ckpt_random_seed0.pth"
    if not path.is_file():
        print(f"building the seeded random-weight checkpoint at {path} ...", flush=True)
        build_random_checkpoint(path, mode="fast", seed=0)
    return path


def run_reference(ckpt: Path, photo: Path, mode: str, resize: str, runs: int, work: Path) -> dict:
    numba_cache = Path(tempfile.mkdtemp(dir=work, prefix="numba-"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache), "TRANSPARENT_BACKGROUND_FILE_PATH": str(work),
           "MODE": mode, "RESIZE": resize, "CKPT": str(ckpt), "PHOTO": str(photo), "RUNS": str(runs),
           "ALPHA_OUT": str(work / f"ref-alpha-{resize}.npy")}  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-c", REFERENCE], env=env, stdout=subprocess.PIPE, text=True,
                               stderr=subprocess.DEVNULL)  # fmt: skip
    result: dict = {}
    assert process.stdout is not None
    for line in process.stdout:
        if not line.startswith("{"):
            continue
        event = json.loads(line)
        if event["event"] == "first":
            result["cold"] = time.perf_counter() - started
            result.update({f"cold_{k}": v for k, v in event.items() if k != "event"})
        else:
            result.update(event)
    if process.wait() != 0:
        raise SystemExit("the reference process failed")
    result["alpha"] = np.load(work / f"ref-alpha-{resize}.npy").astype(np.float32) / 255
    return result


class Server:
    def __init__(self, ckpt: Path, mode: str, resize: str, port: int, work: Path, **extra_env: str) -> None:
        self.base = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("PETCUT_")}
        env.update(PETCUT_CHECKPOINT=str(ckpt), PETCUT_MODE=mode, PETCUT_RESIZE=resize, PETCUT_DEVICE="cpu",
                   PETCUT_HOST="127.0.0.1", PETCUT_PORT=str(port), PETCUT_LOG_LEVEL="WARNING",
                   PETCUT_DATA_DIR=str(work / "data"), XDG_CACHE_HOME=str(work / "cache"),
                   PETCUT_RATE_LIMIT_PER_MINUTE="0", **extra_env)  # fmt: skip
        self.started = time.perf_counter()
        self.process = subprocess.Popen([sys.executable, "-m", "petcut", "serve"], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        self.client = httpx.Client(base_url=self.base, timeout=300)

    def wait_for(self, path: str, limit: float = 300) -> float:
        while True:
            try:
                if self.client.get(path).status_code == 200:
                    return time.perf_counter() - self.started
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.perf_counter() - self.started > limit:
                raise SystemExit(f"petcut never answered 200 on {path}")
            time.sleep(0.01)

    def post(self, path: str, photo: bytes, params: dict, data: dict | None = None) -> tuple[httpx.Response, float]:
        started = time.perf_counter()
        response = self.client.post(path, params=params, files={"file": ("pet.jpg", photo, "image/jpeg")}, data=data)
        response.raise_for_status()
        return response, time.perf_counter() - started

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def close(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def run_petcut(
    ckpt: Path, photo: Path, mode: str, resize: str, runs: int, work: Path, port: int, **extra_env: str
) -> dict:
    data = photo.read_bytes()
    server = Server(ckpt, mode, resize, port, work, **extra_env)
    try:
        result = {"health": server.wait_for("/health"), "ready": server.wait_for("/ready")}
        _, first = server.post("/api/v2/remove-background", data, {})
        result["cold"] = time.perf_counter() - server.started
        result["first_request"] = first
        remove, no_cache = "/api/v2/remove-background", {"use_cache": "false"}
        result["runs"] = [server.post(remove, data, no_cache)[1] for _ in range(runs)]
        shop, form = "/api/v2/process-with-effects", {"effects": "enhancedblackwhite,color"}
        query = {"return_all_effects": "true", "effects": "enhancedblackwhite,color", "use_cache": "false"}
        result["shop"] = [server.post(shop, data, query, form)[1] for _ in range(runs)]
        query["use_cache"] = "true"
        _, result["shop_first_cached_run"] = server.post(shop, data, query, {"effects": "enhancedblackwhite,color"})
        result["shop_hit"] = [server.post(shop, data, query, {"effects": "enhancedblackwhite,color"})[1]
                              for _ in range(runs)]  # fmt: skip
        mask, _ = server.post("/api/v2/remove-background", data, {"output": "mask", "use_cache": "false"})
        result["alpha"] = np.asarray(Image.open(BytesIO(mask.content)), dtype=np.float32) / 255
        result["peak_rss_mb"] = server.peak_rss_mb()
    finally:
        server.close()
    return result


def parity(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    diff = np.abs(ours - ref)
    return float(diff.mean() * 255), float(diff.max() * 255)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", action="store_true", help="base mode (1024 px) instead of fast (384 px)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photo", default="Tex.jpeg")
    parser.add_argument("--checkpoint", help="reuse this checkpoint instead of the cached random one")
    parser.add_argument("--port", type=int, default=18089)
    parser.add_argument("--skip-dynamic", action="store_true", help="skip the dynamic-resize parity run")
    parser.add_argument("--bf16", action="store_true", help="also measure petcut with PETCUT_PRECISION=bf16")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    mode = "base" if args.base else "fast"
    ckpt = checkpoint_path(args.checkpoint)
    photo = PETS / args.photo
    work = Path(tempfile.mkdtemp(prefix="petcut-bench-"))
    print(f"mode={mode} photo={photo.name} runs={args.runs} cpu={os.cpu_count()} work={work}", flush=True)

    ref = run_reference(ckpt, photo, mode, "static", args.runs, work)
    ours = run_petcut(ckpt, photo, mode, "static", args.runs, work, args.port)
    bf16 = None
    if args.bf16:
        bf16 = run_petcut(ckpt, photo, mode, "static", args.runs, work, args.port + 2, PETCUT_PRECISION="bf16")
    dynamic = None
    if not args.skip_dynamic:
        small = work / "dynamic-photo.jpg"  # dynamic parity on a smaller copy: full size is slow on 2 cores
        with Image.open(photo) as image:
            image.convert("RGB").resize((image.width // 2, image.height // 2)).save(small, quality=95)
        ref_dyn = run_reference(ckpt, small, mode, "dynamic", 1, work)
        ours_dyn = run_petcut(ckpt, small, mode, "dynamic", 1, work, args.port + 1)
        dynamic = parity(ours_dyn["alpha"], ref_dyn["alpha"])

    med = statistics.median
    ref_model = med(ref["runs"])
    old_effects = sum(OLD_EFFECTS_S.values())
    shop_s = med(ours["shop"])
    rows = [
        ("cold start → first served image (s)", ref["cold"], ours["cold"]),
        ("  of which: start → /health 200 (s)", None, ours["health"]),
        ("  of which: start → /ready 200 (s)", None, ours["ready"]),
        ("per image: Remover.process(rgba) vs remove-background (s)", ref_model, med(ours["runs"])),
        ("shop request, 2 effects, no cache (s) [ref: model + old effects]", ref_model + old_effects, shop_s),
        ("shop request, cache hit (s)", None, med(ours["shop_hit"])),
        ("peak RSS (MB)", ref["peak_rss_mb"], ours["peak_rss_mb"]),
    ]
    if bf16:
        rows.insert(4, ("per image with PETCUT_PRECISION=bf16 (s)", ref_model, med(bf16["runs"])))
    table = Table(title=f"petcut vs transparent-background Remover — {mode}, {photo.name}, CPU")
    table.add_column("what")
    table.add_column("reference", justify="right")
    table.add_column("petcut", justify="right")
    table.add_column("petcut / ref", justify="right")
    for what, r, p in rows:
        ratio = f"{p / r:.2f}" if r else ""
        table.add_row(what, f"{r:.3f}" if r is not None else "", f"{p:.3f}", ratio)
    console = Console()
    console.print(table)
    mean, worst = parity(ours["alpha"], ref["alpha"])
    console.print(f"alpha parity static: mean {mean:.3f}/255, max {worst:.3f}/255 (target ≤ 1 and ≤ 4)")
    if bf16:
        bf16_mean, bf16_max = parity(bf16["alpha"], ref["alpha"])
        console.print(f"bf16 alpha vs reference fp32: mean {bf16_mean:.2f}/255, max {bf16_max:.2f}/255")
    if dynamic:
        console.print(f"alpha parity dynamic: mean {dynamic[0]:.3f}/255, max {dynamic[1]:.3f}/255")
    console.print(
        f"reference cold: import {ref['cold_import']:.2f} s + Remover() {ref['cold_init']:.2f} s + 32×32 warmup "
        f"{ref['cold_warmup']:.2f} s + first image {ref['cold_first']:.2f} s; type=map {med(ref['map_runs']):.3f} s"
    )
    console.print(
        f"cache hit / first shop request: {med(ours['shop_hit']) / med(ours['shop']):.3%} (target ≤ 5 %); "
        f"speed-up {med(ours['shop']) / med(ours['shop_hit']):.0f}×; old effects time taken from performance.md"
    )
    console.print(
        f"ready / reference cold: {ours['ready'] / ref['cold']:.3f} (target ≤ 0.2); remove-background / "
        f"Remover: {med(ours['runs']) / ref_model:.3f} (target ≤ 0.667)"
    )


if __name__ == "__main__":
    main()
