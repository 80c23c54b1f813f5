"""petcut against the reference (transparent-background's Remover), in fresh processes, in one run.

    .venv/bin/python bench/compare_reference.py [--base] [--runs 5] [--photo Tex.jpeg] [--torch] [--device cuda]

petcut runs on its default engine (OpenVINO on the CPU, from the artifact `petcut weights prepare` makes;
prepared once here and timed), at the default precision and at fp32, and with --torch on the torch engine
too. With --device cuda (a lent GPU) the reference and petcut both run there, base mode suggested.

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

from machine import checkpoint_path, cpu_description

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "data" / "pets"
OLD_EFFECTS_S = {"enhancedblackwhite": 0.17, "color": 0.0}  # docs/benchmarks.md: the old service's effect times

REFERENCE = r"""
import json, os, sys, time, resource
import numpy as np
t0 = time.perf_counter()
from transparent_background import Remover
from PIL import Image
t_import = time.perf_counter()
remover = Remover(mode=os.environ["MODE"], ckpt=os.environ["CKPT"], device=os.environ["DEVICE"],
                  resize=os.environ["RESIZE"])
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


def prepare_artifact(ckpt: Path, mode: str, weights_dir: Path) -> float:
    """``petcut weights prepare`` in a fresh process (a no-op when already prepared); returns seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCUT_")}
    env.update(PETCUT_CHECKPOINT=str(ckpt), PETCUT_MODE=mode, PETCUT_WEIGHTS_DIR=str(weights_dir))
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "petcut", "weights", "prepare"], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    return time.perf_counter() - started


def run_reference(ckpt: Path, photo: Path, mode: str, resize: str, runs: int, work: Path, device: str = "cpu") -> dict:
    numba_cache = Path(tempfile.mkdtemp(dir=work, prefix="numba-"))
    env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_cache), "TRANSPARENT_BACKGROUND_FILE_PATH": str(work),
           "DEVICE": device, "MODE": mode, "RESIZE": resize, "CKPT": str(ckpt), "PHOTO": str(photo), "RUNS": str(runs),
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
                   PETCUT_RATE_LIMIT_PER_MINUTE="0")  # fmt: skip
        env.update(extra_env)
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
        result["engine"] = server.client.get("/ready").json().get("engine") or {}
        _, first = server.post("/api/v2/remove-background", data, {})
        result["cold"] = time.perf_counter() - server.started
        result["first_request"] = first
        remove, no_cache = "/api/v2/remove-background", {"use_cache": "false"}
        before = phase_totals(server)
        result["runs"] = [server.post(remove, data, no_cache)[1] for _ in range(runs)]
        after = phase_totals(server)
        result["phases"] = {
            phase: (after[phase][0] - before.get(phase, (0.0, 0))[0])
            / max(1, after[phase][1] - before.get(phase, (0, 0))[1])
            for phase in after
        }
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


def phase_totals(server: Server) -> dict[str, tuple[float, int]]:
    """(seconds, count) of each ``petcut_inference_seconds`` phase so far, from /metrics."""
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    for line in server.client.get("/metrics").text.splitlines():
        if line.startswith("petcut_inference_seconds_sum{") or line.startswith("petcut_inference_seconds_count{"):
            name, _, value = line.rpartition(" ")
            phase = name.split('phase="', 1)[1].split('"', 1)[0]
            if "_sum{" in name:
                sums[phase] = float(value)
            else:
                counts[phase] = int(float(value))
    return {phase: (sums[phase], counts.get(phase, 0)) for phase in sums}


def parity(ours: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    diff = np.abs(ours - ref)
    return float(diff.mean() * 255), float(diff.max() * 255)


def cold_start(ckpt: Path, mode: str, work: Path, port: int, **extra_env: str) -> float:
    """Process start → /ready 200 of a server that is then stopped."""
    server = Server(ckpt, mode, "static", port, work, **extra_env)
    try:
        return server.wait_for("/ready")
    finally:
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", action="store_true", help="base mode (1024 px) instead of fast (384 px)")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--photo", default="Tex.jpeg")
    parser.add_argument("--checkpoint", help="reuse this checkpoint instead of the cached random one")
    parser.add_argument("--port", type=int, default=18089)
    parser.add_argument("--skip-dynamic", action="store_true", help="skip the dynamic-resize runs")
    parser.add_argument("--torch", action="store_true", help="also measure petcut on the torch engine (fp32)")
    parser.add_argument("--device", default="cpu", help="cpu, or cuda on a lent GPU (torch engine, fp16)")
    args = parser.parse_args()

    from rich.console import Console
    from rich.table import Table

    console = Console()
    mode = "base" if args.base else "fast"
    ckpt = checkpoint_path(args.checkpoint)
    photo = PETS / args.photo
    work = Path(tempfile.mkdtemp(prefix="petcut-bench-"))
    gpu = args.device != "cpu"
    console.print(f"mode={mode} photo={photo.name} runs={args.runs} device={args.device} work={work}")
    console.print(f"CPU: {cpu_description()}")

    from petcut.config import default_cache_dir

    weights = default_cache_dir() / "bench" / f"weights-{mode}"
    prepare_s = None if gpu else prepare_artifact(ckpt, mode, weights)
    ports = iter(range(args.port, args.port + 20))
    common = {"PETCUT_WEIGHTS_DIR": str(weights), "PETCUT_DEVICE": args.device}

    ref = run_reference(ckpt, photo, mode, "static", args.runs, work, args.device)
    ours = run_petcut(ckpt, photo, mode, "static", args.runs, work, next(ports), **common)
    fp32 = None if gpu else run_petcut(ckpt, photo, mode, "static", args.runs, work, next(ports),
                                       PETCUT_PRECISION="fp32", **common)  # fmt: skip
    eager = None
    if args.torch and not gpu:
        eager = run_petcut(ckpt, photo, mode, "static", args.runs, work, next(ports), PETCUT_ENGINE="torch", **common)
    restart = cold_start(ckpt, mode, work, next(ports), **common)  # OpenVINO's compile cache is warm now
    fresh = work / "unprepared"
    fresh_cold = None
    if not gpu:  # start → ready when the artifact must first be prepared (then served)
        started = time.perf_counter()
        prepare_artifact(ckpt, mode, fresh)
        fresh_cold = (
            time.perf_counter()
            - started
            + cold_start(ckpt, mode, work, next(ports), **{**common, "PETCUT_WEIGHTS_DIR": str(fresh)})
        )
    dyn = None
    if not args.skip_dynamic:
        small = work / "dynamic-photo.jpg"  # dynamic on a half-size copy: full size is slow on 2 cores
        with Image.open(photo) as image:
            image.convert("RGB").resize((image.width // 2, image.height // 2)).save(small, quality=95)
        runs = max(2, args.runs // 2)
        dyn = (run_reference(ckpt, small, mode, "dynamic", runs, work, args.device),
               run_petcut(ckpt, small, mode, "dynamic", runs, work, next(ports), **common))  # fmt: skip

    med = statistics.median
    ref_model = med(ref["runs"])
    old_effects = sum(OLD_EFFECTS_S.values())
    engine = ours["engine"]
    what = f"{engine.get('engine')} {engine.get('precision')}"
    rows: list[tuple[str, float | None, float, str]] = [
        ("cold start → first served image (s)", ref["cold"], ours["cold"], ""),
        ("  start → /health 200 (s)", None, ours["health"], "≤ 1 s"),
        ("  start → /ready 200, first start (OpenVINO compiles) (s)", ref["cold"], ours["ready"], ""),
        ("  start → /ready 200, restart (compile cache warm) (s)", ref["cold"], restart, "≤ 0.1"),
        (f"per image, remove-background, {what} (s)", ref_model, med(ours["runs"]), "≤ 0.25"),
        ("shop request, 2 effects, no cache (s) [ref: model + old effects]", ref_model + old_effects,
         med(ours["shop"]), "≤ 0.3"),
        ("shop request, cache hit (s)", med(ours["shop"]), med(ours["shop_hit"]), "≤ 0.05"),
        ("peak RSS (MB)", ref["peak_rss_mb"], ours["peak_rss_mb"], ""),
    ]  # fmt: skip
    if prepare_s is not None:
        rows.insert(4, ("  prepare the artifact (this run; ~0 when already prepared) (s)", None, prepare_s, ""))
    if fresh_cold is not None:
        rows.insert(5, ("  prepare + start → /ready (s)", ref["cold"], fresh_cold, ""))
    if fp32:
        rows.append((f"per image, {fp32['engine'].get('engine')} fp32 (s)", ref_model, med(fp32["runs"]), "≤ 0.6"))
        rows.append(("peak RSS fp32 (MB)", ref["peak_rss_mb"], fp32["peak_rss_mb"], ""))
    if eager:
        rows.append(("per image, torch engine fp32 (s)", ref_model, med(eager["runs"]), ""))
        rows.append(("peak RSS torch (MB)", ref["peak_rss_mb"], eager["peak_rss_mb"], ""))
    if dyn:
        rows.append(("per image, dynamic resize, half-size photo (s)", med(dyn[0]["runs"]), med(dyn[1]["runs"]),
                     "≤ 0.35"))  # fmt: skip
    table = Table(title=f"petcut vs transparent-background Remover — {mode}, {photo.name}, {args.device}")
    for column in ("what", "reference", "petcut", "petcut / ref", "target"):
        table.add_column(column, justify="left" if column == "what" else "right")
    for label, r, p, target in rows:
        ratio = f"{p / r:.3f}" if r else ""
        table.add_row(label, f"{r:.3f}" if r is not None else "", f"{p:.3f}", ratio, target)
    console.print(table)
    console.print(f"engine: {engine}")
    phases = ours.get("phases", {})
    if phases:
        shown = ", ".join(f"{phase} {seconds * 1000:.0f} ms" for phase, seconds in sorted(phases.items()))
        network = phases.get("compute", 0.0)
        console.print(f"per-request phases (means, remove-background): {shown}")
        console.print(
            f"overhead around the model (request − compute, incl. decode, foreground, encode, HTTP): "
            f"{(med(ours['runs']) - network) * 1000:.0f} ms (target ≤ 100 ms; compute includes pre/post-processing)"
        )
    mean, worst = parity(ours["alpha"], ref["alpha"])
    within = float((np.abs(ours["alpha"] - ref["alpha"]) <= 4 / 255).mean())
    console.print(f"alpha vs reference, {what}: mean {mean:.3f}/255, max {worst:.1f}/255, {within:.4%} within 4/255")
    if fp32:
        mean, worst = parity(fp32["alpha"], ref["alpha"])
        console.print(f"alpha vs reference, fp32: mean {mean:.3f}/255, max {worst:.3f}/255 (target ≤ 1 and ≤ 4)")
    if dyn:
        mean, worst = parity(dyn[1]["alpha"], dyn[0]["alpha"])
        console.print(f"alpha vs reference, dynamic, {what}: mean {mean:.3f}/255, max {worst:.1f}/255")
    console.print(
        f"reference cold: import {ref['cold_import']:.2f} s + Remover() {ref['cold_init']:.2f} s + 32×32 warmup "
        f"{ref['cold_warmup']:.2f} s + first image {ref['cold_first']:.2f} s; type=map {med(ref['map_runs']):.3f} s"
    )


if __name__ == "__main__":
    main()
