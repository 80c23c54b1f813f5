"""``petcut weights … --model isnet`` and ``petcut remove --model isnet``."""

from __future__ import annotations

import shutil
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from petcut.cli import app
from tests.support.servers import free_port
from tests.support.shared_data import pet_photo

runner = CliRunner()


def test_weights_path_names_the_variant_file(tmp_path: Path) -> None:
    result = runner.invoke(app, ["weights", "path", "--model", "isnet", "--variant", "small"],
                           env={"PETCUT_WEIGHTS_DIR": str(tmp_path)})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(tmp_path / "isnet-small.onnx")
    env = {"PETCUT_WEIGHTS_DIR": str(tmp_path), "PETCUT_MODEL": "isnet"}
    env_chosen = runner.invoke(app, ["weights", "path"], env=env)
    assert env_chosen.stdout.strip() == str(tmp_path / "isnet-medium.onnx")


def test_weights_download_offline_says_so_and_exits_1(tmp_path: Path) -> None:
    registry = f"https://127.0.0.1:{free_port()}"  # nothing listens there
    result = runner.invoke(app, ["weights", "download", "--model", "isnet"],
                           env={"PETCUT_WEIGHTS_DIR": str(tmp_path), "PETCUT_NPM_REGISTRY": registry})  # fmt: skip
    assert result.exit_code == 1
    assert "Offline?" in result.output and registry in result.output
    assert [p.name for p in tmp_path.iterdir()] == []


def test_weights_verify_missing_isnet_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["weights", "verify", "--model", "isnet"], env={"PETCUT_WEIGHTS_DIR": str(tmp_path)})
    assert result.exit_code == 1
    assert "petcut weights download --model isnet" in result.output


def test_unknown_model_or_variant_is_a_usage_error(tmp_path: Path) -> None:
    for args in (["--model", "u2net"], ["--model", "isnet", "--variant", "large"]):
        result = runner.invoke(app, ["weights", "path", *args])
        assert result.exit_code == 2, args
        assert "PETCUT_" in result.output


@pytest.mark.slow
def test_verify_download_and_remove_with_the_trained_isnet(isnet_weights_dir: Path, tmp_path: Path) -> None:
    weights = tmp_path / "weights"
    weights.mkdir()
    for name in ("isnet-medium.onnx", "isnet-LICENSE.md"):
        shutil.copy2(isnet_weights_dir / name, weights / name)
    env = {"PETCUT_WEIGHTS_DIR": str(weights)}
    verified = runner.invoke(app, ["weights", "verify", "--model", "isnet"], env=env)
    assert verified.exit_code == 0 and "matches the pinned sha256" in verified.stdout
    present = runner.invoke(app, ["weights", "download", "--model", "isnet"], env=env)  # no network needed
    assert present.exit_code == 0 and "already present and verified" in present.stdout
    assert "AGPL" in present.output

    out = tmp_path / "out"
    photo = pet_photo("Squid.jpg")
    removed = runner.invoke(app, ["remove", str(photo), "-o", str(out), "--model", "isnet"], env=env)
    assert removed.exit_code == 0, removed.output
    rgba = np.asarray(Image.open(BytesIO((out / "Squid.png").read_bytes())))
    height, width = rgba.shape[:2]
    assert rgba.shape[2] == 4
    assert rgba[int(0.22 * height), int(0.47 * width), 3] >= 200  # the dog's face
    assert rgba[5, 5, 3] <= 20 and rgba[-5, -5, 3] <= 20  # the corners are background

    with (weights / "isnet-medium.onnx").open("r+b") as handle:
        handle.seek(1000)
        handle.write(b"corrupt")
    broken = runner.invoke(app, ["weights", "verify", "--model", "isnet"], env=env)
    assert broken.exit_code == 1 and "sha256" in broken.output
