"""One forward pass of InSPyReNet on each engine and precision, at several input sizes, in one run.

    .venv/bin/python bench/engines.py [--runs 3] [--static] [--sizes 384x384,512x576,1024x1024]

Engines: torch eager fp32 (BatchNorm folded), torch bf16 autocast, OpenVINO fp32 and bf16 on the dynamic
IR that ``petcut weights prepare`` makes. ``--static`` also exports an IR frozen at 384×384 (the fast mode's
static size) to compare the dynamic IR's speed against it. Same seeded random-weight checkpoint for all;
the table gives the median of --runs after one warm-up pass, and each engine's largest difference from
torch fp32 on the network's output (in [0, 1]: the graph ends in its sigmoid and min-max normalisation).
Inputs are random normal, so a random-weight network's output is not saturated everywhere.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from machine import checkpoint_path, cpu_description


def timed(fn, x: np.ndarray, runs: int) -> tuple[float, np.ndarray]:
    out = fn(x)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = fn(x)
        times.append(time.perf_counter() - started)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="384x384,512x576,768x768")
    parser.add_argument("--static", action="store_true", help="also export and time a static 384×384 IR")
    parser.add_argument("--checkpoint")
    args = parser.parse_args()

    import openvino as ov
    import torch
    from rich.console import Console
    from rich.table import Table

    from petcut.config import Settings, default_cache_dir
    from petcut.model import prepare
    from petcut.model.engine_openvino import OpenVinoEngine
    from petcut.model.engine_torch import TorchEngine
    from petcut.model.inspyrenet_torch import load_network

    console = Console()
    console.print(f"CPU: {cpu_description()}; torch {torch.__version__}, OpenVINO {ov.__version__}")
    ckpt = checkpoint_path(args.checkpoint)
    weights = default_cache_dir() / "bench" / "weights-fast"
    settings = Settings(mode="fast", device="cpu", checkpoint=ckpt, weights_dir=weights)
    started = time.perf_counter()
    artifact = prepare.prepare(settings)
    console.print(f"dynamic IR: {artifact.directory} ({time.perf_counter() - started:.1f} s to find or prepare)")
    network = load_network(ckpt, 384)
    engines = {
        "torch fp32": TorchEngine(network, device="cpu", precision="fp32"),
        "torch bf16 autocast": TorchEngine(network, device="cpu", precision="bf16"),
        "OpenVINO fp32 (dynamic IR)": OpenVinoEngine(artifact.xml, precision="fp32"),
        "OpenVINO bf16 (dynamic IR)": OpenVinoEngine(artifact.xml, precision="bf16"),
    }
    if args.static:
        from petcut.model.export import export_onnx

        work = Path(tempfile.mkdtemp(prefix="petcut-static-ir-"))
        started = time.perf_counter()
        onnx_path = export_onnx(network, work / "static.onnx", sample_size=(384, 384), dynamic=False)
        ov.save_model(ov.convert_model(str(onnx_path)), str(work / "static.xml"), compress_to_fp16=False)
        console.print(f"static 384×384 IR exported in {time.perf_counter() - started:.1f} s")
        engines["OpenVINO fp32 (static IR)"] = OpenVinoEngine(work / "static.xml", precision="fp32")
        engines["OpenVINO bf16 (static IR)"] = OpenVinoEngine(work / "static.xml", precision="bf16")

    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",")]
    table = Table(title="one forward pass (s, median) — max |Δ| from torch fp32 in [0, 1] output")
    table.add_column("engine")
    for height, width in sizes:
        table.add_column(f"{height}×{width}", justify="right")
    rng = np.random.default_rng(0)
    inputs = {size: rng.standard_normal((1, 3, *size)).astype(np.float32) for size in sizes}
    baseline: dict[tuple[int, int], np.ndarray] = {}
    for name, engine in engines.items():
        cells = []
        for size in sizes:
            if "static" in name and size != (384, 384):
                cells.append("—")
                continue
            seconds, out = timed(engine.run, inputs[size], args.runs)
            if name == "torch fp32":
                baseline[size] = out
                cells.append(f"{seconds:.3f}")
            else:
                cells.append(f"{seconds:.3f} (Δ {np.abs(out - baseline[size]).max():.1e})")
        table.add_row(name, *cells)
    console.print(table)


if __name__ == "__main__":
    main()
