"""The atheris harness for the image decoder (fuzz/fuzz_decode.py), run for a bounded time in a subprocess
so that a hang or an OOM kills the fuzzer, not pytest: exit 0 means no exception other than the typed
``ImageError``s, no input over 5 s and RSS under 2 GiB.

``FUZZ_SECONDS`` (default 45) sets the budget; ``FUZZ_EXPLORE=1`` picks a random libFuzzer seed instead
of the fixed one. Without atheris the harness's plain mutation loop runs instead (same bounds).
"""

from __future__ import annotations

import base64
import importlib.util
import os
import random
import subprocess
import sys
import warnings
from pathlib import Path

HARNESS = Path(__file__).resolve().parents[2] / "fuzz" / "fuzz_decode.py"
SECONDS = int(os.environ.get("FUZZ_SECONDS", "45"))
SEED = random.randrange(1, 2**31) if os.environ.get("FUZZ_EXPLORE") == "1" else 20_240_611


def fuzz_command(artifacts: Path) -> list[str]:
    if importlib.util.find_spec("atheris") is not None:
        return [
            sys.executable,
            str(HARNESS),
            f"-max_total_time={SECONDS}",
            "-timeout=5",
            "-rss_limit_mb=2048",
            f"-seed={SEED}",
            f"-artifact_prefix={artifacts}/",
            "-print_final_stats=1",
        ]
    return [
        sys.executable,
        str(HARNESS),
        "--mutate",
        f"--seconds={SECONDS}",
        "--timeout=5",
        "--rss-limit-mb=2048",
        f"--seed={SEED}",
        f"--artifacts={artifacts}",
    ]


def test_decode_image_survives_fuzzing(tmp_path: Path) -> None:
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    process = subprocess.run(
        fuzz_command(artifacts),
        cwd=tmp_path,  # libFuzzer may write files into its working directory
        capture_output=True,
        text=True,
        timeout=SECONDS + 120,
        check=False,
    )
    output = process.stdout + process.stderr
    crashes = sorted(p for p in artifacts.iterdir() if p.is_file())
    # libFuzzer's RSS limit is process-wide and sampled once a second: the input it names when the limit
    # trips is whatever ran then, not necessarily the one that allocated. A finding counts only when
    # its input reproduces alone, under the same limits, in a fresh process; crashes always do.
    confirmed = [p for p in crashes if not p.name.startswith("oom-") or reproduces(p, artifacts)]
    found = "\n".join(f"{p.name}: {base64.b64encode(p.read_bytes()[:4096]).decode()}" for p in confirmed)
    assert not confirmed, f"fuzzer findings (seed {SEED}); inputs (base64, first 4 KiB):\n{found}\n\n{output[-6000:]}"
    if crashes:
        warnings.warn(f"fuzzer RSS limit tripped but no input reproduces it alone: {[p.name for p in crashes]}",
                      stacklevel=1)  # fmt: skip
    else:
        assert process.returncode == 0, f"fuzzer exit {process.returncode} (seed {SEED})\n{output[-6000:]}"
    assert "Done" in output or "no crash" in output or crashes, output[-3000:]


def reproduces(artifact: Path, directory: Path) -> bool:
    """Run one saved input alone with the fuzzer's limits; True when it fails again."""
    if importlib.util.find_spec("atheris") is None:
        return True
    command = [sys.executable, str(HARNESS), "-timeout=5", "-rss_limit_mb=2048", str(artifact)]
    rerun = subprocess.run(command, cwd=directory, capture_output=True, text=True, timeout=120, check=False)
    return rerun.returncode != 0
