"""Load and soak against a running petcut: more concurrent clients than capacity, for a fixed time.

    .venv/bin/python bench/load.py --start                   # starts its own server (fast, random weights)
    .venv/bin/python bench/load.py --url http://127.0.0.1:8080 --pid 1234

Phase 1 (saturation): ``--clients`` clients send the shop's request (``use_cache=false``, so every one
is model work) for ``--duration`` seconds while a probe polls ``/health``. Reported: status counts, p50/
p95/p99 latency, /health p99, throughput against the worker's single-request rate measured first.
Phase 2 (soak): requests continue (cache on, 20 distinct photos) until ``--soak`` requests in all; RSS
of the server is read after 50 and after the last. Every non-200 must be a 503/429 with Retry-After.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
PETS = ROOT.parent / "shared" / "data" / "pets"
SHOP = "/api/v2/process-with-effects"
FORM = {"effects": "enhancedblackwhite,color"}


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def rss_mb(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photos(base: bytes, count: int) -> list[bytes]:
    """``count`` distinct JPEGs made from one photo (a different crop each), so cache keys differ."""
    image = Image.open(BytesIO(base)).convert("RGB")
    out = []
    for i in range(count):
        crop = image.crop((i, i, image.width - i, image.height - i))
        buf = BytesIO()
        crop.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


class Stats:
    def __init__(self) -> None:
        self.codes: Counter[int] = Counter()
        self.latencies: list[float] = []
        self.bad: list[str] = []
        self.total = 0


async def shop_request(client: httpx.AsyncClient, data: bytes, use_cache: bool, stats: Stats) -> None:
    params = {"return_all_effects": "true", "effects": "enhancedblackwhite,color", "use_cache": str(use_cache).lower()}
    started = time.perf_counter()
    try:
        response = await client.post(SHOP, params=params, files={"file": ("pet.jpg", data, "image/jpeg")}, data=FORM)
    except httpx.HTTPError as exc:
        stats.codes[0] += 1
        stats.bad.append(f"transport: {type(exc).__name__}")
        return
    stats.total += 1
    stats.codes[response.status_code] += 1
    if response.status_code == 200:
        stats.latencies.append(time.perf_counter() - started)
    elif response.status_code not in (429, 503) or "retry-after" not in response.headers:
        stats.bad.append(f"{response.status_code}: {response.text[:120]}")


async def probe_health(client: httpx.AsyncClient, stop: asyncio.Event, out: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/health")
        out.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.05)


async def saturate(url: str, data: bytes, clients: int, duration: float) -> tuple[Stats, list[float], float]:
    stats, health = Stats(), []
    stop = asyncio.Event()
    limits = httpx.Limits(max_connections=clients + 4)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def worker() -> None:
            while not stop.is_set():
                await shop_request(client, data, False, stats)
                if stats.codes[503] or stats.codes[429]:
                    await asyncio.sleep(0.2)  # a real client honours Retry-After; keep the pressure on anyway

        prober = asyncio.create_task(probe_health(client, stop, health))
        started = time.perf_counter()
        tasks = [asyncio.create_task(worker()) for _ in range(clients)]
        await asyncio.sleep(duration)
        stop.set()
        await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - started
        await prober
    return stats, health, elapsed


async def single_rate(url: str, data: bytes, count: int) -> float:
    stats = Stats()
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        started = time.perf_counter()
        for _ in range(count):
            await shop_request(client, data, False, stats)
        return count / (time.perf_counter() - started)


async def soak(url: str, images: list[bytes], done: int, target: int, pid: int | None) -> tuple[float, float]:
    stats = Stats()
    rss_50 = rss_mb(pid) if done >= 50 else float("nan")
    async with httpx.AsyncClient(base_url=url, timeout=300) as client:
        i = 0
        while done + stats.total < target:
            batch = [shop_request(client, images[(i + k) % len(images)], True, stats) for k in range(4)]
            await asyncio.gather(*batch)
            i += 4
            if np.isnan(rss_50) and done + stats.total >= 50:
                rss_50 = rss_mb(pid)
    if stats.bad:
        print("soak failures:", stats.bad[:5])
    return rss_50, rss_mb(pid)


def start_server(port: int) -> subprocess.Popen:
    from petcut.config import default_cache_dir
    from petcut.model.random_checkpoint import build_random_checkpoint

    ckpt = default_cache_dir() / "bench" / "ckpt_random_seed0.pth"
    if not ckpt.is_file():
        build_random_checkpoint(ckpt, mode="fast", seed=0)
    work = tempfile.mkdtemp(prefix="petcut-load-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCUT_")}
    env.update(PETCUT_CHECKPOINT=str(ckpt), PETCUT_MODE="fast", PETCUT_HOST="127.0.0.1", PETCUT_PORT=str(port),
               PETCUT_LOG_LEVEL="WARNING", PETCUT_RATE_LIMIT_PER_MINUTE="0", PETCUT_DATA_DIR=work)  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "petcut", "serve"], env=env, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code == 200:
                return process
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    process.kill()
    raise SystemExit("the server never became ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--pid", type=int, help="server process id, for RSS")
    parser.add_argument("--start", action="store_true", help="start a server (fast mode, random weights)")
    parser.add_argument("--port", type=int, default=18090)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--soak", type=int, default=500, help="total requests before the last RSS reading")
    parser.add_argument("--photo", default="Squid.jpg")
    args = parser.parse_args()
    if not args.url and not args.start:
        parser.error("give --url (and --pid) or --start")

    from rich.console import Console
    from rich.table import Table

    server = start_server(args.port) if args.start else None
    url = args.url or f"http://127.0.0.1:{args.port}"
    pid = server.pid if server else args.pid
    data = (PETS / args.photo).read_bytes()
    try:
        single = asyncio.run(single_rate(url, data, 3))
        stats, health, elapsed = asyncio.run(saturate(url, data, args.clients, args.duration))
        rss_50, rss_end = asyncio.run(soak(url, photos(data, 20), stats.total + 3, args.soak, pid))
    finally:
        if server:
            server.terminate()
            server.wait(timeout=30)

    throughput = stats.codes[200] / elapsed
    table = Table(title=f"load: {args.clients} clients × {args.duration:.0f} s, shop request, {args.photo}")
    table.add_column("what")
    table.add_column("value", justify="right")
    table.add_column("target", justify="right")
    rows = [
        ("status counts", ", ".join(f"{code}: {n}" for code, n in sorted(stats.codes.items())), "no 500"),
        ("non-200 without Retry-After, or 5xx other than 503", str(len(stats.bad)), "0"),
        ("latency p50 / p95 / p99 (s)", " / ".join(f"{percentile(stats.latencies, q):.2f}" for q in (50, 95, 99)), ""),
        ("/health p99 during saturation (ms)", f"{percentile(health, 99) * 1000:.1f}", "≤ 100"),
        (
            "throughput (req/s) vs single-request rate",
            f"{throughput:.3f} vs {single:.3f} ({throughput / single:.0%})",
            "≥ 90 %",
        ),
        (
            "server RSS after 50 / after last request (MB)",
            f"{rss_50:.0f} / {rss_end:.0f} ({(rss_end - rss_50) / rss_50:+.1%})",
            "≤ +5 %",
        ),
    ]
    for row in rows:
        table.add_row(*row)
    Console().print(table)
    if stats.bad:
        print("unexpected answers:", stats.bad[:10])
    print(f"latency samples: {len(stats.latencies)}; median {statistics.median(stats.latencies or [0]):.2f} s")


if __name__ == "__main__":
    main()
