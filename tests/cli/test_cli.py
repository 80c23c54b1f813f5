"""The petcut command, end to end, on the shared pet photos with the random-weight checkpoint."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps
from typer.testing import CliRunner

from petcut.cli import app

runner = CliRunner()


def oriented_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).size


@pytest.mark.slow
def test_remove_every_pet_photo_dynamic_and_go_on_past_a_bad_file(
    pet_photos: list[Path], random_checkpoint: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "notes.png"
    bad.write_text("this is not an image")
    out = tmp_path / "out"
    options = ["-o", str(out), "--checkpoint", str(random_checkpoint), "--mode", "fast", "--resize", "dynamic"]
    result = subprocess.run(
        [sys.executable, "-m", "petcut", "remove", *map(str, pet_photos), str(bad), *options],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 1, result.stderr  # one file failed, the others were written
    assert "notes.png" in result.stderr and "1 of 5 failed" in result.stderr
    for photo in pet_photos:
        written = out / f"{photo.stem}.png"
        with Image.open(written) as image:
            assert image.mode == "RGBA"
            assert image.size == oriented_size(photo)
            alpha = image.getchannel("A")
            assert alpha.getextrema()[1] > 0  # a real matte, not an empty image
    assert not (out / "notes.png").exists()


@pytest.mark.slow
def test_remove_writes_masks_and_other_formats(pet_photos: list[Path], random_checkpoint: Path, tmp_path: Path) -> None:
    squid = next(p for p in pet_photos if p.stem == "Squid")
    args = ["remove", str(squid), "--checkpoint", str(random_checkpoint), "--mode", "fast"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "m"), "--mask"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "m" / "Squid.png") as mask:
        assert mask.mode == "L" and mask.size == oriented_size(squid)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "w"), "--format", "webp"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "w" / "Squid.webp") as image:
        assert image.format == "WEBP" and image.mode == "RGBA"
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "j"), "--format", "jpeg"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "j" / "Squid.jpg") as image:
        assert image.format == "JPEG" and image.mode == "RGB"


def test_remove_with_missing_weights_fails_clearly(pet_photos: list[Path], tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PETCUT_WEIGHTS_DIR", str(tmp_path / "empty"))
    result = runner.invoke(app, ["remove", str(pet_photos[0]), "-o", str(tmp_path / "o"), "--mode", "fast"])
    assert result.exit_code == 2
    assert "petcut weights download" in result.output


def test_invalid_setting_names_the_variable(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INSPIRENET_RESIZE", "sideways")
    result = runner.invoke(app, ["weights", "path"])
    assert result.exit_code == 2
    assert "INSPIRENET_RESIZE" in result.output


def test_weights_path_and_verify(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PETCUT_WEIGHTS_DIR", str(tmp_path))
    result = runner.invoke(app, ["weights", "path", "--mode", "fast"])
    assert result.exit_code == 0 and result.output.strip() == str(tmp_path / "ckpt_fast.pth")
    result = runner.invoke(app, ["weights", "verify", "--mode", "fast"])
    assert result.exit_code == 1 and "no weights" in result.output
    (tmp_path / "ckpt_fast.pth").write_bytes(b"corrupt")
    result = runner.invoke(app, ["weights", "verify", "--mode", "fast"])
    assert result.exit_code == 1 and "md5" in result.output


def test_weights_download_offline_says_so(monkeypatch, tmp_path: Path) -> None:
    from petcut.model import checkpoint

    info = checkpoint.ModeInfo("fast", "http://127.0.0.1:9/ckpt_fast.pth", "0" * 32, "ckpt_fast.pth", (384, 384))
    monkeypatch.setattr(checkpoint, "published_modes", lambda: {"fast": info})
    monkeypatch.setenv("PETCUT_WEIGHTS_DIR", str(tmp_path))
    result = runner.invoke(app, ["weights", "download", "--mode", "fast"])
    assert result.exit_code == 1
    assert "Offline?" in result.output
    assert list(tmp_path.iterdir()) == []


def test_bad_format_is_refused(tmp_path: Path) -> None:
    result = runner.invoke(app, ["remove", "x.jpg", "-o", str(tmp_path), "--format", "bmp"])
    assert result.exit_code == 2 and "--format" in result.output


def test_serve_with_an_invalid_setting_logs_one_json_line_and_exits_2() -> None:
    import json
    import os

    env = {**os.environ, "INSPIRENET_MODE": "turbo"}
    result = subprocess.run([sys.executable, "-m", "petcut", "serve"], env=env, capture_output=True, text=True,
                            timeout=60)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["severity"] == "CRITICAL" and "INSPIRENET_MODE" in record["message"]
