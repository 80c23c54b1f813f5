"""The real InSPyReNet network (random weights) through petcut's loader and pre/post-processing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from petcut.config import Settings
from petcut.model.base import CheckpointInvalidError, DeviceUnavailableError, WeightsMissingError
from petcut.model.engine_torch import resolve_device, resolve_precision
from petcut.model.inspyrenet import input_size
from petcut.model.segmenter import load_segmenter
from tests.support.images import load_rgb
from tests.support.shared_data import pet_photo


def reference_dynamic_size(width: int, height: int) -> tuple[int, int]:
    """What transparent-background's own dynamic_resize produces for an image of this size."""
    from transparent_background.utils import dynamic_resize

    return dynamic_resize(L=1280)(Image.new("RGB", (width, height))).size


@pytest.mark.parametrize(
    "size", [(1000, 1150), (480, 640), (3024, 4032), (4032, 3024), (1281, 1280), (2000, 1300), (64, 64), (100, 60)]
)
def test_dynamic_size_matches_reference_for_normal_sizes(size: tuple[int, int]) -> None:
    assert input_size(*size, resize="dynamic", base_size=384, short_cap=1280) == reference_dynamic_size(*size)


@pytest.mark.parametrize("size", [(1, 1), (16, 16), (15, 200), (200, 15), (20000, 10), (10, 20000)])
def test_dynamic_size_never_rounds_to_zero(size: tuple[int, int]) -> None:
    width, height = input_size(*size, resize="dynamic", base_size=384, short_cap=1280)
    assert width >= 32 and height >= 32
    assert width % 32 == 0 and height % 32 == 0
    assert max(width, height) <= 2 * 1280


def test_reference_itself_fails_on_the_old_warmup_image() -> None:
    """The 16×16 dynamic-resize warmup that killed the old service: the reference rounds it to 0×0."""
    with pytest.raises(ValueError, match="height and width must be > 0"):
        reference_dynamic_size(16, 16)


def test_static_size_is_the_mode_square() -> None:
    assert input_size(3024, 4032, resize="static", base_size=384, short_cap=1280) == (384, 384)


@pytest.mark.slow
@pytest.mark.parametrize("shape", [(1, 1), (16, 16), (15, 200), (200, 15), (10, 2000)])
def test_tiny_and_extreme_sizes_segment_dynamic(dynamic_segmenter, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, size=(*shape, 3), dtype=np.uint8)
    alpha = dynamic_segmenter.predict_alpha(rgb)
    assert alpha.shape == shape
    assert alpha.dtype == np.float32
    assert 0.0 <= alpha.min() <= alpha.max() <= 1.0


@pytest.mark.slow
def test_sixteen_square_under_dynamic_resize_segments(dynamic_segmenter) -> None:
    rgb = np.full((16, 16, 3), 127, dtype=np.uint8)
    alpha = dynamic_segmenter.predict_alpha(rgb)
    assert alpha.shape == (16, 16)
    assert np.isfinite(alpha).all()


@pytest.mark.slow
def test_extreme_aspect_20000_by_10(fast_segmenter, dynamic_segmenter) -> None:
    rgb = np.zeros((10, 20000, 3), dtype=np.uint8)
    rgb[:, ::7] = 255
    for segmenter in (fast_segmenter, dynamic_segmenter):
        alpha = segmenter.predict_alpha(rgb)
        assert alpha.shape == (10, 20000)


def reference_map(checkpoint: Path, resize: str, image: Image.Image, home: Path) -> np.ndarray:
    import os

    os.environ["TRANSPARENT_BACKGROUND_FILE_PATH"] = str(home)
    from transparent_background import Remover

    remover = Remover(mode="fast", ckpt=str(checkpoint), device="cpu", resize=resize)
    return np.asarray(remover.process(image, type="map"))[..., 0]


@pytest.mark.slow
@pytest.mark.parametrize("engine", ["torch", "openvino"])
@pytest.mark.parametrize(("resize", "photo", "max_side"), [("static", "Tex.jpeg", None), ("dynamic", "Rosie.jpg", 480)])
def test_alpha_parity_with_reference(
    random_checkpoint: Path,
    prepared_weights: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    engine: str,
    resize: str,
    photo: str,
    max_side,
) -> None:
    """fp32 against ``Remover.process(type="map")`` on the same checkpoint, on each engine."""
    monkeypatch.setenv("TRANSPARENT_BACKGROUND_FILE_PATH", str(tmp_path))
    rgb = load_rgb(pet_photo(photo), max_side)
    expected = reference_map(random_checkpoint, resize, Image.fromarray(rgb), tmp_path).astype(np.float32) / 255
    segmenter = load_segmenter(
        Settings(
            mode="fast",
            resize=resize,
            device="cpu",
            engine=engine,
            precision="fp32",
            checkpoint=random_checkpoint,
            weights_dir=prepared_weights,
        )
    )
    assert segmenter.engine.name == engine
    alpha = segmenter.predict_alpha(rgb)
    assert alpha.shape == expected.shape
    diff = np.abs(alpha - expected)
    assert diff.mean() <= 1 / 255, diff.mean()
    assert diff.max() <= 4 / 255, diff.max()
    assert alpha.std() > 0.01  # a real matte, not a constant that would trivially agree


@pytest.mark.slow
def test_bf16_on_cpu_runs_and_stays_close(random_checkpoint: Path, fast_segmenter) -> None:
    bf16 = load_segmenter(
        Settings(mode="fast", device="cpu", engine="torch", precision="bf16", checkpoint=random_checkpoint)
    )
    rgb = load_rgb(pet_photo("Squid.jpg"), 320)
    a32, a16 = fast_segmenter.predict_alpha(rgb), bf16.predict_alpha(rgb)
    assert a16.shape == a32.shape and a16.dtype == np.float32
    assert np.corrcoef(a32.ravel(), a16.ravel())[0, 1] > 0.9


def test_garbage_checkpoint_is_invalid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x00not a checkpoint" * 100)
    with pytest.raises(CheckpointInvalidError):
        load_segmenter(Settings(mode="fast", device="cpu", checkpoint=bad))


def test_wrong_architecture_is_invalid(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(3, 3).state_dict(), wrong)
    with pytest.raises(CheckpointInvalidError, match="architecture"):
        load_segmenter(Settings(mode="fast", device="cpu", checkpoint=wrong))


def test_missing_weights_say_how_to_get_them(tmp_path: Path) -> None:
    with pytest.raises(WeightsMissingError, match="petcut weights download"):
        load_segmenter(Settings(mode="fast", device="cpu", weights_dir=tmp_path))


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_configured_missing_device_is_an_error_not_a_fallback() -> None:
    with pytest.raises(DeviceUnavailableError, match="PETCUT_DEVICE=cuda"):
        resolve_device("cuda")


def test_auto_device_and_precision_on_cpu() -> None:
    device = resolve_device("auto")
    assert device in {"cpu", "cuda", "mps"}
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda") == "fp16"
    with pytest.raises(DeviceUnavailableError):
        resolve_precision("fp16", "cpu")


def test_service_import_does_not_import_transparent_background_package() -> None:
    """Loading the network must not run transparent_background/__init__ (its GUI and downloaders)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from petcut.model.inspyrenet_torch import _import_network\n"
        "_import_network()\n"
        "assert 'transparent_background.Remover' not in sys.modules\n"
        "assert 'albumentations' not in sys.modules\n"
        "assert 'timm' not in sys.modules and 'torchvision' not in sys.modules\n"  # a cold start without them
        "assert 'torch._dynamo' not in sys.modules\n"
        "import transparent_background\n"  # the real package still imports afterwards
        "assert hasattr(transparent_background, 'Remover')\n"
        "import timm.layers\n"
        "assert timm.layers.DropPath.__module__.startswith('timm')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


@pytest.mark.slow
def test_batch_norms_are_folded_without_changing_the_output(random_checkpoint: Path, fast_segmenter) -> None:
    import sys

    from petcut.model.inspyrenet_torch import _import_network

    wrapper = sys.modules["transparent_background.modules.layers"].Conv2d
    assert not [m for m in fast_segmenter.network.modules() if isinstance(m, wrapper) and m.bn is not None]
    unfolded = _import_network()(depth=64, pretrained=False, base_size=[384, 384], threshold=None)
    unfolded.load_state_dict(torch.load(random_checkpoint, map_location="cpu", weights_only=True))
    unfolded.eval()
    x = torch.randn(1, 3, 384, 384, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.allclose(fast_segmenter.network(x), unfolded(x), atol=1e-4)
