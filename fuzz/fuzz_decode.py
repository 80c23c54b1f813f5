#!/usr/bin/env python
"""Fuzz ``petcut.imaging.decode_image``: any exception other than an ``ImageError`` subclass is a crash.

With atheris (coverage-guided libFuzzer; ``pip install atheris``)::

    python fuzz/fuzz_decode.py -max_total_time=3600 -timeout=5 -rss_limit_mb=2048 [CORPUS_DIR ...]

Every libFuzzer flag works. Without a corpus directory the seeds are generated here (tiny PNG, JPEG,
GIF, WebP, TIFF, HEIC and AVIF in the modes the decoder converts) into a temporary directory. libFuzzer
turns an input slower than ``-timeout`` seconds into a crash, and going over ``-rss_limit_mb`` too;
crash inputs are written to ``-artifact_prefix`` (reproduce: ``python fuzz/fuzz_decode.py CRASH_FILE``).

Without atheris (``--mutate``, or automatically when it cannot be imported): a plain mutation loop over
the same seeds (bit flips, byte changes, splices, truncations, header-field bumps), with the same three
bounds enforced by hand: SIGALRM per input, RLIMIT_AS for memory and ``--seconds`` overall.

The limits are the service's defaults (50 MiB, 24 MP), so memory and time are the ones production sees.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import signal
import sys
import tempfile
import time
import traceback
import warnings
from io import BytesIO
from pathlib import Path

MAX_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 24_000_000


def seeds() -> dict[str, bytes]:
    """Small valid images of every accepted format, in the modes and layouts the decoder handles."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 255, (12, 16, 3), dtype=np.uint8))
    rgba = Image.fromarray(rng.integers(0, 255, (12, 16, 4), dtype=np.uint8))
    out: dict[str, bytes] = {}

    def save(name: str, image: Image.Image, fmt: str, **kwargs: object) -> None:
        buffer = BytesIO()
        image.save(buffer, fmt, **kwargs)
        out[name] = buffer.getvalue()

    save("rgb.png", rgb, "PNG")
    save("rgba.png", rgba, "PNG")
    save("grey16.png", Image.fromarray(rng.integers(0, 65535, (12, 16), dtype=np.uint16)), "PNG")
    save("la.png", rgba.convert("LA"), "PNG")
    palette = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    save("palette-trns.png", palette, "PNG", transparency=3)
    save("interlaced.png", rgb, "PNG", optimize=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90
    save("exif.jpg", rgb, "JPEG", exif=exif, quality=70)
    save("progressive.jpg", rgb, "JPEG", progressive=True)
    save("cmyk.jpg", rgb.convert("CMYK"), "JPEG")
    save("grey.jpg", rgb.convert("L"), "JPEG")
    frames = [rgb.convert("P"), rgb.rotate(90, expand=False).convert("P")]
    save("anim.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    save("still.gif", palette, "GIF", transparency=3)
    save("lossy.webp", rgb, "WEBP", quality=50)
    save("alpha.webp", rgba, "WEBP", lossless=True)
    save("anim.webp", rgb, "WEBP", save_all=True, append_images=[rgb.rotate(180)], duration=50)
    save("page.tiff", rgb, "TIFF", compression="tiff_deflate")
    save("pages.tiff", rgb, "TIFF", save_all=True, append_images=[rgba])
    save("float.tiff", Image.fromarray(rng.random((12, 16), dtype=np.float32)), "TIFF")
    try:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        save("photo.heic", rgb, "HEIF", quality=50)
    except Exception as exc:  # an encoder missing in this build: fuzz the rest
        print(f"fuzz_decode: no HEIC seed ({type(exc).__name__}: {exc})", file=sys.stderr)
    try:
        save("photo.avif", rgb, "AVIF", quality=50)
    except Exception as exc:
        print(f"fuzz_decode: no AVIF seed ({type(exc).__name__}: {exc})", file=sys.stderr)
    return out


def write_seeds(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (directory / name).write_bytes(data)
    return directory


def check_one(data: bytes) -> None:
    """The property: decode or raise an ImageError, nothing else."""
    from petcut.imaging import ImageError, decode_image

    with contextlib.suppress(ImageError):
        decode_image(data, max_bytes=MAX_BYTES, max_pixels=MAX_PIXELS)


# --- atheris ------------------------------------------------------------------------------------------
def run_atheris(argv: list[str]) -> None:
    import atheris

    with atheris.instrument_imports(include=["petcut", "PIL", "pillow_heif"]):
        import petcut.imaging.decode  # noqa: F401  (instrumented for coverage)

        # one decode loads every Pillow plugin and pillow-heif now, so they are instrumented too
        check_one(seeds()["rgb.png"])

    if not any(not arg.startswith("-") for arg in argv[1:]):  # no corpus or input given: generate seeds
        argv = [*argv, str(write_seeds(Path(tempfile.mkdtemp(prefix="petcut-fuzz-corpus-"))))]
    atheris.Setup(argv, check_one)
    atheris.Fuzz()


# --- the fallback mutation loop -------------------------------------------------------------------------
class InputTimeout(BaseException):
    """Raised by SIGALRM: an input took longer than the per-input limit (never an Exception subclass)."""


def mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        op = rng.randrange(7)
        if not buf:
            buf = bytearray(rng.randbytes(rng.randint(1, 64)))
        pos = rng.randrange(len(buf))
        if op == 0:  # bit flip
            buf[pos] ^= 1 << rng.randrange(8)
        elif op == 1:  # interesting byte
            buf[pos] = rng.choice((0x00, 0x01, 0x7F, 0x80, 0xFF, rng.randrange(256)))
        elif op == 2:  # interesting 16/32-bit value (sizes, lengths, offsets in headers)
            value = rng.choice((0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, rng.getrandbits(32)))
            width = rng.choice((2, 4))
            buf[pos : pos + width] = value.to_bytes(4, rng.choice(("big", "little")))[:width]
        elif op == 3:  # truncate
            del buf[rng.randrange(len(buf)) :]
        elif op == 4:  # delete a block
            del buf[pos : pos + rng.randint(1, 32)]
        elif op == 5:  # duplicate a block
            buf[pos:pos] = buf[pos : pos + rng.randint(1, 64)]
        else:  # splice with another seed
            other = rng.choice(corpus)
            cut = rng.randrange(len(other)) if other else 0
            buf[pos:] = other[cut:]
    return bytes(buf)


def run_mutation(seconds: float, timeout: int, rss_limit_mb: int, seed: int, artifacts: Path) -> int:
    import resource

    limit = rss_limit_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit * 2, limit * 2))  # address space: generous over RSS

    def on_alarm(signum: int, frame: object) -> None:
        raise InputTimeout()

    signal.signal(signal.SIGALRM, on_alarm)
    corpus = list(seeds().values())
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = 0
    while time.monotonic() < deadline:
        data = corpus[runs % len(corpus)] if runs < len(corpus) else mutate(rng.choice(corpus), rng, corpus)
        runs += 1
        signal.alarm(timeout)
        try:
            check_one(data)
        except InputTimeout:
            return _crash(artifacts, data, f"timeout: over {timeout} s", runs)
        except BaseException:
            return _crash(artifacts, data, traceback.format_exc(), runs)
        finally:
            signal.alarm(0)
        if len(data) <= 64 * 1024 and rng.random() < 0.02:  # keep some mutants to mutate further
            corpus.append(data)
    print(f"fuzz_decode --mutate: {runs} inputs in {seconds:.0f} s, no crash", file=sys.stderr)
    return 0


def _crash(artifacts: Path, data: bytes, why: str, runs: int) -> int:
    import hashlib

    artifacts.mkdir(parents=True, exist_ok=True)
    path = artifacts / f"crash-{hashlib.sha1(data).hexdigest()}"
    path.write_bytes(data)
    print(f"fuzz_decode --mutate: CRASH after {runs} inputs, input saved to {path}\n{why}", file=sys.stderr)
    return 1


def main() -> None:
    # Pillow warns about odd but harmless data (TIFF tags, EXIF); the property is about exceptions, and
    # one warning line per distinct message would drown the fuzzer's own output
    warnings.simplefilter("ignore")
    argv = list(sys.argv)
    if "--mutate" not in argv:
        try:
            import atheris  # noqa: F401
        except ImportError:
            print("fuzz_decode: atheris is not installed; using the plain mutation loop", file=sys.stderr)
        else:
            run_atheris(argv)
            return
    parser = argparse.ArgumentParser(description="fuzz decode_image without atheris")
    parser.add_argument("--mutate", action="store_true")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--timeout", type=int, default=5)
    parser.add_argument("--rss-limit-mb", type=int, default=2048)
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "0")))
    parser.add_argument("--artifacts", type=Path, default=Path(tempfile.gettempdir()) / "petcut-fuzz-artifacts")
    args, _ = parser.parse_known_args(argv[1:])
    sys.exit(run_mutation(args.seconds, args.timeout, args.rss_limit_mb, args.seed, args.artifacts))


if __name__ == "__main__":
    main()
