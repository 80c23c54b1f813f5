"""Models × engines: the OpenVINO engine against torch and the reference, artifacts, engine choice."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from petcut.config import Settings
from petcut.model import prepare
from petcut.model.base import ModelError
from petcut.model.resample import resize_bilinear
from petcut.model.segmenter import load_segmenter
from tests.support.images import load_rgb
from tests.support.shared_data import pet_photo


def settings_for(checkpoint: Path, weights_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {"mode": "fast", "device": "cpu", "checkpoint": checkpoint, "weights_dir": weights_dir}
    values.update(overrides)
    return Settings(**values)


def copy_weights(prepared: Path, tmp_path: Path) -> Path:
    target = tmp_path / "weights"
    shutil.copytree(prepared, target)
    return target


def artifact_dir(weights_dir: Path) -> Path:
    (directory,) = [p for p in (weights_dir / "prepared").iterdir() if p.name.startswith("inspyrenet-")]
    return directory


# --- resampling (no network) ------------------------------------------------------------------------
@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(("src", "dst"), [((384, 384), (1150, 1000)), ((32, 64), (1, 1)), ((64, 96), (10, 2000))])
def test_numpy_bilinear_equals_torch_interpolate(src, dst, align_corners: bool) -> None:
    values = np.random.default_rng(0).random(src, dtype=np.float32)
    expected = F.interpolate(torch.from_numpy(values)[None, None], dst, mode="bilinear", align_corners=align_corners)
    actual = resize_bilinear(values, dst, align_corners=align_corners)
    assert actual.shape == dst and actual.dtype == np.float32
    np.testing.assert_allclose(actual, expected[0, 0].numpy(), atol=1e-4)  # float32 rounding, 0.03/255


# --- the export -------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("size", [(384, 384), (384, 448), (224, 96)])
def test_export_friendly_swin_is_bit_identical_in_eager(fast_segmenter, size: tuple[int, int]) -> None:
    from petcut.model.export import export_friendly_swin

    x = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        original = fast_segmenter.network(x)
        with export_friendly_swin():
            patched = fast_segmenter.network(x)
        restored = fast_segmenter.network(x)
    assert torch.equal(original, patched)
    assert torch.equal(original, restored)


# --- OpenVINO against torch -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def openvino_fp32(random_checkpoint: Path, prepared_weights: Path):
    return {
        resize: load_segmenter(settings_for(random_checkpoint, prepared_weights, resize=resize, precision="fp32"))
        for resize in ("static", "dynamic")
    }


@pytest.mark.slow
def test_auto_engine_is_openvino_with_a_prepared_artifact(openvino_fp32) -> None:
    segmenter = openvino_fp32["static"]
    assert segmenter.engine.name == "openvino"
    assert segmenter.info["engine"] == "openvino" and segmenter.info["model"] == "inspyrenet"
    assert "prepared artifact" in segmenter.engine_reason
    assert "openvino" in segmenter.description


@pytest.mark.slow
@pytest.mark.parametrize(("resize", "photo", "max_side"), [("static", "Tex.jpeg", None), ("dynamic", "Rosie.jpg", 480)])
def test_openvino_fp32_matches_torch(openvino_fp32, fast_segmenter, dynamic_segmenter, resize, photo, max_side) -> None:
    rgb = load_rgb(pet_photo(photo), max_side)
    torch_segmenter = fast_segmenter if resize == "static" else dynamic_segmenter
    expected = torch_segmenter.predict_alpha(rgb)
    actual = openvino_fp32[resize].predict_alpha(rgb)
    diff = np.abs(actual - expected)
    assert diff.mean() <= 1 / 255 and diff.max() <= 4 / 255, (diff.mean(), diff.max())
    assert actual.std() > 0.01


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 1), (16, 16), (15, 200), (200, 15), (10, 2000), (300, 700)])
def test_openvino_dynamic_sizes_match_torch(openvino_fp32, dynamic_segmenter, shape: tuple[int, int]) -> None:
    """Every input size the dynamic policy produces runs on the one dynamic IR, with torch's output."""
    rgb = np.random.default_rng(1).integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    actual = openvino_fp32["dynamic"].predict_alpha(rgb)
    expected = dynamic_segmenter.predict_alpha(rgb)
    assert actual.shape == shape and actual.dtype == np.float32
    assert np.abs(actual - expected).max() <= 4 / 255


@pytest.mark.slow
def test_openvino_default_precision_stays_close(random_checkpoint: Path, prepared_weights: Path, fast_segmenter):
    """Default precision (bf16 where the CPU has it): mean ≤ 1/255 and ≥ 99.5 % of pixels within 4/255."""
    segmenter = load_segmenter(settings_for(random_checkpoint, prepared_weights))
    from petcut.model.engine_openvino import cpu_capability

    assert segmenter.precision == cpu_capability().default_precision
    rgb = load_rgb(pet_photo("Tex.jpeg"))
    diff = np.abs(segmenter.predict_alpha(rgb) - fast_segmenter.predict_alpha(rgb))
    assert diff.mean() <= 1 / 255, diff.mean()
    assert (diff <= 4 / 255).mean() >= 0.995, (diff <= 4 / 255).mean()


# --- artifacts: missing, stale, corrupt ---------------------------------------------------------------
@pytest.mark.slow
def test_missing_artifact_falls_back_to_torch_and_says_why(random_checkpoint: Path, tmp_path: Path) -> None:
    segmenter = load_segmenter(settings_for(random_checkpoint, tmp_path))
    assert segmenter.engine.name == "torch"
    assert "petcut weights prepare" in segmenter.engine_reason


def test_explicit_openvino_without_artifact_is_an_error(random_checkpoint: Path, tmp_path: Path) -> None:
    from petcut.model.base import ArtifactUnusableError
    from petcut.model.runtime import describe_load_error

    with pytest.raises(ArtifactUnusableError, match=r"PETCUT_ENGINE=openvino.*petcut weights prepare") as caught:
        load_segmenter(settings_for(random_checkpoint, tmp_path, engine="openvino"))
    assert "petcut weights prepare" in describe_load_error(caught.value)  # what /ready says


@pytest.mark.slow
def test_corrupt_artifact_is_detected(random_checkpoint: Path, prepared_weights: Path, tmp_path: Path) -> None:
    weights = copy_weights(prepared_weights, tmp_path)
    binary = artifact_dir(weights) / prepare.BIN
    data = bytearray(binary.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes, newer mtime
    binary.write_bytes(bytes(data))
    found = prepare.find(settings_for(random_checkpoint, weights), random_checkpoint, 384)
    assert found.artifact is None and "sha256" in found.reason
    segmenter = load_segmenter(settings_for(random_checkpoint, weights))
    assert segmenter.engine.name == "torch" and "unusable" in segmenter.engine_reason


@pytest.mark.slow
def test_truncated_or_stale_artifact_is_detected(random_checkpoint: Path, prepared_weights: Path, tmp_path: Path):
    weights = copy_weights(prepared_weights, tmp_path)
    directory = artifact_dir(weights)
    settings = settings_for(random_checkpoint, weights)
    assert prepare.find(settings, random_checkpoint, 384).artifact is not None
    with (directory / prepare.BIN).open("r+b") as handle:
        handle.truncate(1000)
    assert "bytes, expected" in prepare.find(settings, random_checkpoint, 384).reason
    # another OpenVINO version's (or checkpoint's) artifact is never picked up: the key differs
    stale = directory.with_name(directory.name.replace("-ov", "-ov1999.1"))
    directory.rename(stale)
    found = prepare.find(settings, random_checkpoint, 384)
    assert found.artifact is None and stale.name in found.reason


def test_artifact_key_changes_with_checkpoint_size_and_version() -> None:
    keys = {
        prepare.artifact_key("a" * 32, 384, "2026.4.1"),
        prepare.artifact_key("b" * 32, 384, "2026.4.1"),
        prepare.artifact_key("a" * 32, 1024, "2026.4.1"),
        prepare.artifact_key("a" * 32, 384, "2026.5.0"),
    }
    assert len(keys) == 4


def test_checkpoint_hash_is_remembered_until_the_file_changes(tmp_path: Path) -> None:
    ckpt = tmp_path / "ckpt.pth"
    ckpt.write_bytes(b"weights" * 1000)
    settings = settings_for(ckpt, tmp_path / "w")
    first = prepare.checkpoint_md5(settings, ckpt)
    assert (tmp_path / "w" / "prepared" / "checkpoints.json").is_file()
    assert prepare.checkpoint_md5(settings, ckpt) == first
    ckpt.write_bytes(b"other" * 1000)
    assert prepare.checkpoint_md5(settings, ckpt) != first


# --- cold start without torch -----------------------------------------------------------------------
@pytest.mark.slow
def test_openvino_path_does_not_import_torch(random_checkpoint: Path, prepared_weights: Path) -> None:
    code = (
        "import sys, numpy as np\n"
        "from pathlib import Path\n"
        "from petcut.config import Settings\n"
        "from petcut.model.segmenter import load_segmenter\n"
        f"s = Settings(mode='fast', device='auto', checkpoint=Path({str(random_checkpoint)!r}),"
        f" weights_dir=Path({str(prepared_weights)!r}))\n"
        "seg = load_segmenter(s)\n"
        "alpha = seg.predict_alpha(np.zeros((40, 30, 3), np.uint8))\n"
        "assert seg.engine.name == 'openvino', seg.engine_reason\n"
        "assert alpha.shape == (40, 30)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transparent_background', 'timm'))\n"
        "assert not leaked, leaked[:5]\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PETCUT_")}
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300, env=env)


@pytest.mark.slow
def test_prepare_command_is_idempotent(random_checkpoint: Path, prepared_weights: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from petcut.cli import app

    weights = copy_weights(prepared_weights, tmp_path)
    env = {"PETCUT_WEIGHTS_DIR": str(weights), "PETCUT_CHECKPOINT": str(random_checkpoint), "PETCUT_MODE": "fast"}
    result = CliRunner().invoke(app, ["weights", "prepare"], env=env)
    assert result.exit_code == 0, result.output
    assert "prepared:" in result.output
    meta = json.loads((artifact_dir(weights) / prepare.META).read_text())
    assert meta["base_size"] == 384 and meta["model"] == "inspyrenet"


# --- fault classes ------------------------------------------------------------------------------------
class _FailingRequest:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    def infer(self, inputs: object) -> object:
        raise self.error


def _engine_raising(error: BaseException):
    import threading

    from petcut.model.engine_openvino import OpenVinoEngine

    engine = object.__new__(OpenVinoEngine)  # the compiled network is not what is under test
    engine._request, engine._lock, engine._compiled = _FailingRequest(error), threading.Lock(), None
    return engine


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("std::bad_alloc"), RuntimeError("Out of memory")])
def test_openvino_out_of_memory_is_the_runtimes_oom_fault(error: BaseException) -> None:
    from petcut.model.runtime_errors import Fault, classify

    with pytest.raises(ModelError) as caught:
        _engine_raising(error).run(np.zeros((1, 3, 32, 32), np.float32))
    assert classify(caught.value) is Fault.OOM


def test_other_openvino_errors_are_failed_requests_not_a_poisoned_instance() -> None:
    from petcut.model.runtime_errors import Fault, classify

    with pytest.raises(RuntimeError, match="shape") as caught:
        _engine_raising(RuntimeError("input shape mismatch")).run(np.zeros((1, 3, 32, 32), np.float32))
    assert classify(caught.value) is Fault.OTHER
