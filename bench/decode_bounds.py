"""What the decode bounds cost (docs/security.md): the shop's photos decoded unbounded (reference: Pillow's
``Image.open`` + full decode to RGB, as petcut did before) and by petcut's bounded ``decode_image``
(JPEG scan count, deadline checks every 4 KiB read, cancellation), side by side, in one run. Then a
scan bomb, to show what the bounds buy.

    .venv/bin/python bench/decode_bounds.py [--repeat 7] [--photos DIR]

Printed per photo: best of N wall time and process CPU time for each side, and the difference. The
bounded decode runs the same Pillow decoder over the same bytes; the only extra work is one byte
search for SOS markers and a clock read per 4 KiB fed to the decoder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from io import BytesIO
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from machine import cpu_description

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from petcut.config import Settings  # noqa: E402
from petcut.imaging import bounds  # noqa: E402
from petcut.imaging.decode import decode_image  # noqa: E402

PETS = ROOT.parent / "shared" / "data" / "pets"


def reference(data: bytes) -> np.ndarray:
    """Unbounded: the same steps as decode_image (open, full decode, EXIF orientation in place, RGB copy)
    from a plain BytesIO with Pillow's default 64 KiB decoder feed, no scan count, no deadline."""
    with Image.open(BytesIO(data)) as im:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)
        rgb = im if im.mode == "RGB" else im.convert("RGB")
        return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def measure(fns, data: bytes, repeat: int) -> list[tuple[float, float]]:  # type: ignore[no-untyped-def]
    """Best wall and CPU time of each of ``fns``, calls interleaved so machine load hits both alike."""
    for fn in fns:
        fn(data)  # warm: plugin registration, page cache
    walls: list[list[float]] = [[] for _ in fns]
    cpus: list[list[float]] = [[] for _ in fns]
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            w0, c0 = time.perf_counter(), time.process_time()
            fn(data)
            walls[i].append(time.perf_counter() - w0)
            cpus[i].append(time.process_time() - c0)
    return [(min(w), min(c)) for w, c in zip(walls, cpus, strict=True)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--photos", type=Path, default=PETS)
    args = parser.parse_args()
    settings = Settings()
    limits = {"max_bytes": settings.max_upload_bytes, "max_pixels": settings.max_pixels}

    def petcut(data: bytes):  # type: ignore[no-untyped-def]
        return decode_image(data, max_scans=settings.max_jpeg_scans, timeout_s=settings.decode_timeout_s, **limits)

    photos = sorted(p for p in args.photos.glob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
    if not photos:
        sys.exit(f"no photos in {args.photos}")
    print(f"CPU: {cpu_description()}; Python {platform.python_version()}, Pillow {Image.__version__}")
    print(
        f"bounds: PETCUT_MAX_JPEG_SCANS={settings.max_jpeg_scans}, PETCUT_DECODE_TIMEOUT_S={settings.decode_timeout_s}"
    )
    print(f"best of {args.repeat}; load average {os.getloadavg()[0]:.1f}\n")
    header = f"{'photo':<14}{'size':>14}{'scans':>7}{'reference':>18}{'petcut':>18}{'difference':>14}"
    print(header + "\n" + f"{'':<35}{'wall / CPU':>18}{'wall / CPU':>18}{'wall':>14}")
    total_ref = total_ours = 0.0
    for photo in photos:
        data = photo.read_bytes()
        ours_image = petcut(data)
        ref_image = reference(data)
        assert np.array_equal(ours_image.rgb, ref_image), f"{photo.name}: the bounded decode differs"
        scans = bounds.count_jpeg_scans(data) if data[:2] == b"\xff\xd8" else 0
        (ref_wall, ref_cpu), (our_wall, our_cpu) = measure([reference, petcut], data, args.repeat)
        total_ref, total_ours = total_ref + ref_wall, total_ours + our_wall
        size = f"{ours_image.width}×{ours_image.height}"
        print(
            f"{photo.name:<14}{size:>14}{scans:>7}{ref_wall * 1e3:>9.1f}/{ref_cpu * 1e3:>6.1f} ms"
            f"{our_wall * 1e3:>9.1f}/{our_cpu * 1e3:>6.1f} ms{(our_wall - ref_wall) * 1e3:>+11.1f} ms"
        )
    print(f"{'all photos':<35}{total_ref * 1e3:>15.1f} ms{total_ours * 1e3:>15.1f} ms"
          f"{(total_ours / total_ref - 1) * 100:>+12.1f} %")  # fmt: skip

    from tests.support.bombs import scan_bomb

    bomb = scan_bomb(side=2400, repeats=2000)
    print(f"\nscan bomb: {len(bomb) / 1024:.0f} KiB progressive JPEG, 2400×2400, "
          f"{bounds.count_jpeg_scans(bomb)} scans")  # fmt: skip
    w0 = time.perf_counter()
    reference(bomb)
    print(f"  reference (unbounded): decoded in {time.perf_counter() - w0:.2f} s")
    w0 = time.perf_counter()
    try:
        petcut(bomb)
    except bounds.TooManyScans as exc:
        print(f"  petcut: refused ({exc.code}) in {(time.perf_counter() - w0) * 1e3:.2f} ms, before decoding")
    w0 = time.perf_counter()
    try:
        decode_image(bomb, timeout_s=0.5, **limits)
    except bounds.DecodeTimeout as exc:
        print(f"  petcut without the scan limit, 0.5 s deadline: refused ({exc.code}) after "
              f"{time.perf_counter() - w0:.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
