"""``petcut remove`` writes colour-managed files: the P3 photo converted, the outputs tagged, DPI kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from petcut.cli import app
from petcut.imaging.color import srgb_profile

runner = CliRunner()


@pytest.mark.slow
def test_remove_tags_its_files(pet_photos: list[Path], random_checkpoint: Path, tmp_path: Path) -> None:
    squid = next(p for p in pet_photos if p.stem == "Squid")  # Display P3, 72 dpi
    args = ["remove", str(squid), "--checkpoint", str(random_checkpoint), "--mode", "fast"]
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "p" / "Squid.png") as image:
        assert image.info.get("srgb") == 0 and "icc_profile" not in image.info
        assert image.info["dpi"] == pytest.approx((72, 72), abs=0.05)
    result = runner.invoke(app, [*args, "-o", str(tmp_path / "j"), "--format", "jpeg"])
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "j" / "Squid.jpg") as image:
        assert image.info["icc_profile"] == srgb_profile() and image.info["dpi"] == (72, 72)
