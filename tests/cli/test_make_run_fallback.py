"""``make run``'s choice of model, on the real Makefile with a stand-in ``petcut`` that records its calls.

The stand-in answers ``weights path`` with a missing file, fails or succeeds each ``weights download``
as the test says, and on ``serve`` prints the model environment it was started with. ``STAMP`` points
at a fresh file so make installs nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

FAKE_PETCUT = """#!/bin/sh
echo "$*" >> "$CALLS"
case "$*" in
  "weights path"*) echo "$WEIGHTS_PATH" ;;
  "weights download --model isnet") exit "$ISNET_RC" ;;
  "weights download"*) exit "$INSPYRENET_RC" ;;
  serve*) echo "serve model=${PETCUT_MODEL:-unset} fallback=${PETCUT_MODEL_FALLBACK:-unset}" ;;
esac
"""


def make_run(
    tmp_path: Path, *, inspyrenet_rc: int = 1, isnet_rc: int = 1, present: bool = False, **env: str
) -> tuple[str, str, list[str]]:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    petcut = bin_dir / "petcut"
    petcut.write_text(FAKE_PETCUT)
    petcut.chmod(0o755)
    stamp = tmp_path / "stamp"
    stamp.touch()  # newer than pyproject.toml: the venv target has nothing to do
    os.utime(stamp, (os.path.getmtime(ROOT / "pyproject.toml") + 10,) * 2)
    calls = tmp_path / "calls"
    weights = tmp_path / "weights.file"
    if present:
        weights.touch()
    run_env = {
        "PATH": os.environ["PATH"],
        "CALLS": str(calls),
        "WEIGHTS_PATH": str(weights),
        "INSPYRENET_RC": str(inspyrenet_rc),
        "ISNET_RC": str(isnet_rc),
        **env,
    }
    result = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "run", f"BIN={bin_dir}", f"STAMP={stamp}"],
        capture_output=True, text=True, env=run_env, timeout=60, check=True,
    )  # fmt: skip
    return result.stdout, result.stderr, calls.read_text().splitlines()


def test_weights_present_inspyrenet_is_prepared_isnet_is_not(tmp_path: Path) -> None:
    stdout, _, calls = make_run(tmp_path / "a", present=True)
    assert calls == ["weights path", "weights prepare", "serve --port 8080"]
    stdout, _, calls = make_run(tmp_path / "b", present=True, PETCUT_MODEL="isnet")
    assert calls == ["weights path", "serve --port 8080"]  # OpenVINO compiles the ONNX file itself
    assert "serve model=isnet fallback=unset" in stdout


def test_inspyrenet_downloadable_serves_inspyrenet(tmp_path: Path) -> None:
    stdout, _, calls = make_run(tmp_path, inspyrenet_rc=0, isnet_rc=0)
    assert "serve model=unset fallback=unset" in stdout
    assert not any("--model isnet" in call for call in calls)


def test_no_model_configured_and_inspyrenet_unreachable_falls_back_to_isnet_and_says_so(tmp_path: Path) -> None:
    stdout, stderr, calls = make_run(tmp_path, inspyrenet_rc=1, isnet_rc=0)
    assert calls[:3] == ["weights path", "weights download", "weights download --model isnet"]
    assert "serve model=isnet fallback=true" in stdout
    assert "serving IS-Net in place of InSPyReNet" in stderr and "AGPL" in stderr


def test_explicit_inspyrenet_never_switches(tmp_path: Path) -> None:
    stdout, stderr, calls = make_run(tmp_path, inspyrenet_rc=1, isnet_rc=0, PETCUT_MODEL="inspyrenet")
    assert "serve model=inspyrenet fallback=unset" in stdout
    assert not any("--model isnet" in call for call in calls)
    assert "/ready says why" in stderr


def test_nothing_downloadable_still_serves_and_says_why(tmp_path: Path) -> None:
    stdout, stderr, _ = make_run(tmp_path, inspyrenet_rc=1, isnet_rc=1)
    assert "serve model=unset fallback=unset" in stdout
    assert "/ready says why" in stderr
