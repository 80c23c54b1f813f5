"""Cut-out quality on the labelled photos: petcut's pipeline beside IS-Net's published recipe, in one run.

    PYTHONPATH=src .venv/bin/python bench/quality.py [--model isnet] [--variant medium|small]
        [--precision fp32,bf16] [--resize static,dynamic] [--no-standalone] [--weights-dir DIR]
    PYTHONPATH=src .venv/bin/python bench/quality.py --model inspyrenet --mode base --checkpoint ckpt.pth

For each labelled photo of ``shared/data/labelled`` (Oxford-IIIT Pet; label PNGs: 0 background, 1/2 the
pet, 255 undecided and left out): IoU of ``alpha ≥ 0.5`` and the mean absolute error of the alpha over
the decided pixels. petcut runs its own path (the upload's bytes → ``decode_image`` → the model loaded by
``load_segmenter`` → alpha at full size) for each precision and resize setting asked for; the standalone
column (IS-Net only) runs the same ONNX file with the published recipe on ONNX Runtime, with no petcut
code (``petcut.quality.standalone_isnet``). Also printed: the CPU, OpenVINO's view of it, and the median
seconds per photo of each column.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from machine import cpu_description

ROOT = Path(__file__).resolve().parents[1]
LABELLED = ROOT.parent / "shared" / "data" / "labelled"
REF = "standalone ORT fp32"


def cpu_summary() -> str:
    from petcut.model.engine_openvino import cpu_capability, openvino_version

    capability = cpu_capability()
    return f"CPU: {cpu_description()}\nOpenVINO {openvino_version()}: {capability.name}, native bf16: {capability.bf16}"


def read_photo_standalone(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="isnet", choices=["isnet", "inspyrenet"])
    parser.add_argument("--variant", default="medium", choices=["medium", "small"])
    parser.add_argument("--mode", default="base")
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--engine", default="auto")
    parser.add_argument("--precision", default="fp32,bf16", help="comma list (auto, fp32, bf16)")
    parser.add_argument("--resize", default="static,dynamic", help="comma list (static, dynamic)")
    parser.add_argument("--weights-dir", type=Path)
    parser.add_argument("--labelled", type=Path, default=LABELLED)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-standalone", action="store_true")
    args = parser.parse_args()

    from petcut.config import Settings
    from petcut.imaging import decode_image
    from petcut.model.segmenter import load_segmenter
    from petcut.quality import labelled_photos, score

    photos = labelled_photos(args.labelled)
    if not photos:
        print(f"no labelled photos in {args.labelled}", file=sys.stderr)
        return 2
    print(cpu_summary())
    base: dict[str, object] = {"model": args.model, "isnet_variant": args.variant, "mode": args.mode,
                               "engine": args.engine, "device": "cpu", "torch_threads": args.threads}  # fmt: skip
    if args.weights_dir:
        base["weights_dir"] = args.weights_dir
    if args.checkpoint:
        base["checkpoint"] = args.checkpoint
    labels = {p.name: p.label_array() for p in photos}
    columns: dict[str, dict[str, object]] = {}  # column → {"scores": {...}, "seconds": [...], "alphas": {...}}

    if args.model == "isnet" and not args.no_standalone:
        from petcut.model import isnet_weights
        from petcut.quality import standalone_isnet

        onnx = isnet_weights.IsNetWeights(Settings(**base)).locate()
        predict = standalone_isnet(onnx, args.threads)
        predict(np.zeros((64, 64, 3), np.uint8))  # first-run costs out of the timings
        column: dict[str, object] = {"scores": {}, "seconds": [], "alphas": {}}
        for photo in photos:
            rgb = read_photo_standalone(photo.photo)
            started = time.perf_counter()
            alpha = predict(rgb)
            column["seconds"].append(time.perf_counter() - started)  # type: ignore[union-attr]
            column["alphas"][photo.name] = alpha  # type: ignore[index]
            column["scores"][photo.name] = score(alpha, labels[photo.name])  # type: ignore[index]
        columns[REF] = column

    models_run: dict[object, str] = {}
    for precision in args.precision.split(","):
        for resize in args.resize.split(","):
            settings = Settings(**base, precision=precision, resize=resize)
            segmenter = load_segmenter(settings)
            name = f"petcut {segmenter.precision} {resize}"
            same = models_run.get((segmenter.model, segmenter.engine.name, segmenter.precision))
            if same is not None:  # the model object holds every pre/post-processing choice: same result
                columns[f"{name}*"] = columns[same]
                print(f"{name}: the same model configuration as {same!r} ({segmenter.model}): same alphas")
                continue
            models_run[(segmenter.model, segmenter.engine.name, segmenter.precision)] = name
            segmenter.predict_alpha(np.zeros((64, 64, 3), np.uint8))
            column = {"scores": {}, "seconds": [], "alphas": {}}
            for photo in photos:
                decoded = decode_image(
                    photo.photo.read_bytes(), max_bytes=settings.max_upload_bytes, max_pixels=settings.max_pixels
                )
                started = time.perf_counter()
                alpha = segmenter.predict_alpha(decoded.rgb)
                column["seconds"].append(time.perf_counter() - started)  # type: ignore[union-attr]
                column["alphas"][photo.name] = alpha  # type: ignore[index]
                column["scores"][photo.name] = score(alpha, labels[photo.name])  # type: ignore[index]
            columns[name] = column
            print(f"{name}: {segmenter.description} ({segmenter.engine_reason})")

    names = list(columns)
    if any(n.endswith("*") for n in names):
        print("*: the same model configuration as the column before it (IS-Net's graph is 1024×1024 whatever "
              "PETCUT_RESIZE says): the same input tensor, the same alphas")  # fmt: skip
    width = max(len(n) for n in names)
    print(f"\n{'photo':24} {'size':>9}  " + "  ".join(f"{n:>{width}}" for n in names))
    print(f"{'':24} {'':>9}  " + "  ".join(f"{'IoU / MAE':>{width}}" for _ in names))
    for photo in photos:
        h, w = labels[photo.name].shape
        cells = []
        for n in names:
            s = columns[n]["scores"][photo.name]  # type: ignore[index]
            cells.append(f"{f'{s.iou:.4f} / {s.mae:.4f}':>{width}}")
        print(f"{photo.name:24} {f'{w}x{h}':>9}  " + "  ".join(cells))
    means = {n: (np.mean([s.iou for s in columns[n]["scores"].values()]),  # type: ignore[union-attr]
                 np.mean([s.mae for s in columns[n]["scores"].values()])) for n in names}  # type: ignore[union-attr]  # fmt: skip
    print(f"{'mean':24} {'':>9}  " + "  ".join(f"{f'{means[n][0]:.4f} / {means[n][1]:.4f}':>{width}}" for n in names))
    print(f"{'s/photo (median)':24} {'':>9}  "
          + "  ".join(f"{statistics.median(columns[n]['seconds']):>{width}.2f}" for n in names))  # type: ignore[arg-type]  # fmt: skip
    if REF in columns:
        ref = columns[REF]
        print()
        for n in names[1:]:
            diff = [float(np.abs(columns[n]["alphas"][p.name] - ref["alphas"][p.name]).mean()) for p in photos]  # type: ignore[index]
            delta = means[n][0] - means[REF][0]
            verdict = "ok" if delta >= -0.005 else "WORSE than standalone by more than 0.005"
            print(f"{n}: mean IoU {delta:+.4f} vs standalone ({verdict}); mean |alpha − standalone| "
                  f"{np.mean(diff):.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
