"""One weights-source interface for both models: which file, what is missing, how to provide it."""

from __future__ import annotations

from pathlib import Path

import pytest

from petcut.config import Settings
from petcut.model.base import ChecksumMismatchError, WeightsMissingError
from petcut.model.checkpoint import InSPyReNetWeights
from petcut.model.isnet_weights import IsNetWeights
from petcut.model.weights import weights_source


def test_the_configured_model_picks_its_source(tmp_path: Path) -> None:
    inspyrenet = weights_source(Settings(mode="fast", weights_dir=tmp_path))
    isnet = weights_source(Settings(model="isnet", isnet_variant="small", weights_dir=tmp_path))
    assert isinstance(inspyrenet, InSPyReNetWeights) and isinstance(isnet, IsNetWeights)
    assert inspyrenet.default_path() == tmp_path / "ckpt_fast.pth"
    assert isnet.default_path() == tmp_path / "isnet-small.onnx"


@pytest.mark.parametrize(
    ("options", "missing", "how"),
    [
        ({"mode": "fast"}, "no weights for mode 'fast'", "petcut weights download --mode fast"),
        ({"model": "isnet"}, "no IS-Net medium weights", "petcut weights download --model isnet --variant medium"),
    ],
)
def test_locate_says_what_is_missing_and_how_to_provide_it(
    options: dict[str, str], missing: str, how: str, tmp_path: Path
) -> None:
    source = weights_source(Settings(**options, weights_dir=tmp_path))
    with pytest.raises(WeightsMissingError) as caught:
        source.locate()
    assert missing in str(caught.value) and how in str(caught.value) and how in source.how_to_provide()
    source.default_path().write_bytes(b"x")
    assert source.locate() == source.default_path()


def test_verify_checks_the_pinned_checksum(tmp_path: Path) -> None:
    for options in ({"mode": "fast"}, {"model": "isnet"}):
        source = weights_source(Settings(**options, weights_dir=tmp_path))
        path = source.default_path()
        path.write_bytes(b"not the weights")
        with pytest.raises(ChecksumMismatchError):
            source.verify(path, use_stamp=False)
