"""The network alone (fast mode, one 384×384 input) under each speed-up candidate, in one process.

    .venv/bin/python bench/network_candidates.py [--checkpoint CKPT] [--runs 4] [--compile] [--onnx]

Rows: the reference's way (eager fp32 under ``no_grad``, BatchNorms unfolded), petcut's default (BatchNorms
folded, ``inference_mode``), bf16 autocast, and optionally ``torch.compile`` (``--compile``: minutes to
compile) and ONNX Runtime (``--onnx``: needs ``onnxruntime``, ``onnx`` and ``onnxscript`` importable, e.g.
``pip install --target /tmp/ort onnxruntime onnx onnxscript`` and ``PYTHONPATH=/tmp/ort``). Each row
prints its best and median time, its set-up time and its largest difference from the reference output.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch


def timed(fn: Callable[[], torch.Tensor], runs: int) -> tuple[list[float], torch.Tensor]:
    out = fn()  # first call outside the timing: allocations, oneDNN primitives
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - started)
    return times, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint")
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--onnx", action="store_true")
    args = parser.parse_args()

    from petcut.model.inspyrenet_torch import _import_network, fold_batch_norms

    if args.checkpoint:
        ckpt = Path(args.checkpoint)
    else:
        from petcut.config import default_cache_dir
        from petcut.model.random_checkpoint import build_random_checkpoint

        ckpt = default_cache_dir() / "bench" / "ckpt_random_seed0.pth"
        if not ckpt.is_file():
            build_random_checkpoint(ckpt, mode="fast", seed=0)
    network = _import_network()(depth=64, pretrained=False, base_size=[384, 384], threshold=None)
    network.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
    network.eval()
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    rows: list[tuple[str, list[float], float, float]] = []

    def add(name: str, setup_s: float, fn: Callable[[], torch.Tensor]) -> None:
        times, out = timed(fn, args.runs)
        rows.append((name, times, setup_s, float((out.float() - reference).abs().max())))
        print(f"{name}: best {min(times):.3f} s", flush=True)

    with torch.no_grad():
        reference = network(x)
    add("reference: eager fp32, no_grad", 0.0, lambda: torch.no_grad()(network)(x))

    started = time.perf_counter()
    folded = copy.deepcopy(network)
    fold_batch_norms(folded)
    folded_s = time.perf_counter() - started
    add("petcut: BN folded, inference_mode", folded_s, lambda: torch.inference_mode()(folded)(x))

    def bf16() -> torch.Tensor:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            return folded(x)

    add("petcut + bf16 autocast (opt-in)", folded_s, bf16)

    if args.compile:
        started = time.perf_counter()
        compiled = torch.compile(folded, dynamic=False)
        with torch.inference_mode():
            compiled(x)
        add("BN folded + torch.compile", time.perf_counter() - started, lambda: torch.inference_mode()(compiled)(x))

    if args.onnx:
        import onnxruntime as ort

        started = time.perf_counter()
        path = Path(tempfile.mkdtemp()) / "net.onnx"
        torch.onnx.export(folded, (x,), str(path), dynamo=True, input_names=["x"], output_names=["y"])
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"x": x.numpy()}
        add("BN folded → ONNX Runtime", time.perf_counter() - started,
            lambda: torch.from_numpy(session.run(None, feed)[0]))  # fmt: skip

    base = min(rows[0][1])
    print(f"\n{'candidate':40s} {'best':>8s} {'median':>8s} {'vs ref':>7s} {'set-up':>8s} {'max diff':>9s}")
    for name, times, setup_s, diff in rows:
        best = min(times)
        print(f"{name:40s} {best:8.3f} {statistics.median(times):8.3f} {best / base:7.2f} {setup_s:8.1f} {diff:9.2e}")


if __name__ == "__main__":
    main()
