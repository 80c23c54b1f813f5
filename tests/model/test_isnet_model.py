"""IS-Net's pre- and post-processing and its loader's refusals, without the weights (fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from petcut.config import Settings
from petcut.model.base import ModelError, WeightsMissingError
from petcut.model.isnet import IsNet, load_isnet


def test_preprocess_keeps_rgb_order_and_normalises_as_published() -> None:
    rgb = np.zeros((30, 20, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 255, 128, 0
    x = IsNet().preprocess(rgb)
    assert x.shape == (1, 3, 1024, 1024) and x.dtype == np.float32 and x.flags.c_contiguous
    assert np.allclose(x[0, 0], (255 - 128) / 256) and np.allclose(x[0, 1], 0.0) and np.allclose(x[0, 2], -0.5)


def test_preprocess_stretches_without_keeping_the_aspect_ratio() -> None:
    rgb = np.zeros((100, 400, 3), np.uint8)
    rgb[:, :200] = 255  # the left half white: stretched, it stays the left half of the square
    x = IsNet().preprocess(rgb)[0, 0]
    assert np.allclose(x[:, :500], (255 - 128) / 256) and np.allclose(x[:, 524:], -0.5)


def test_postprocess_resizes_back_and_keeps_the_layout() -> None:
    out = np.zeros((1, 1, 1024, 1024), np.float32)
    out[0, 0, :512, :] = 1.0  # the top half is the subject
    out[0, 0, 0, 0] = 1.7  # out of range values are clipped
    alpha = IsNet().postprocess(out, (300, 200))
    assert alpha.shape == (300, 200) and alpha.dtype == np.float32
    assert alpha.max() <= 1.0 and alpha[:140].min() == 1.0 and alpha[160:].max() == 0.0


def test_the_variant_and_the_fallback_are_described() -> None:
    assert IsNet.from_settings(Settings(model="isnet", isnet_variant="small")).describe() == "IS-Net small 1024"
    fallback = IsNet.from_settings(Settings(model="isnet", model_fallback=True))
    assert "InSPyReNet weights could not be downloaded" in fallback.describe()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [({"engine": "torch"}, "OpenVINO CPU engine"), ({"device": "cuda"}, "PETCUT_DEVICE=cuda")],
)
def test_isnet_refuses_engines_it_does_not_run_on(tmp_path: Path, overrides: dict, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        load_isnet(Settings(model="isnet", weights_dir=tmp_path, **overrides))


def test_missing_weights_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError, match="petcut weights download --model isnet"):
        load_isnet(Settings(model="isnet", weights_dir=tmp_path))
