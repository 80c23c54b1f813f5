"""InSPyReNet as a Segmenter: transparent-background's network, petcut's pre- and post-processing.

Preprocessing matches ``transparent_background.Remover`` on PIL input exactly (PIL bilinear resize,
ImageNet normalisation in float32, the same static/dynamic sizes) except that no side ever rounds to
zero: tiny or extremely thin images are resized up to the minimum and the alpha is resized back.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import time
import types
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from petcut.config import Settings
from petcut.model import checkpoint
from petcut.model.base import (
    CheckpointInvalidError,
    DeviceUnavailableError,
    ModelError,
    WeightsMissingError,
)

log = logging.getLogger(__name__)

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
#: the reference's dynamic-resize cap on the shorter side
DYNAMIC_SHORT_SIDE = 1280
#: petcut's extra guard: the longer side of a dynamic input never exceeds this many short-side caps
DYNAMIC_MAX_ASPECT = 2
MIN_SIDE = 32


def _round32(value: float) -> int:
    return max(MIN_SIDE, round(value / 32) * 32)


def input_size(width: int, height: int, *, resize: str, base_size: int, short_cap: int) -> tuple[int, int]:
    """The network input (width, height) for an image, as the reference computes it.

    static: ``base_size`` square. dynamic: the reference's rule (shorter side capped at ``short_cap``,
    both sides rounded to multiples of 32), with every side at least 32 and the longer side at most
    ``DYNAMIC_MAX_ASPECT * short_cap`` so that no decodable image fails or exhausts memory.
    """
    if resize == "static":
        return base_size, base_size
    w, h = float(width), float(height)
    if w >= h and h > short_cap:
        w, h = w / (h / short_cap), short_cap
    elif h > w and w > short_cap:
        w, h = short_cap, h / (w / short_cap)
    longest = DYNAMIC_MAX_ASPECT * short_cap
    if max(w, h) > longest:
        scale = longest / max(w, h)
        w, h = w * scale, h * scale
    return _round32(w), _round32(h)


def _import_network() -> type:
    """Import InSPyReNet_SwinB without running transparent_background/__init__.py.

    The package's __init__ imports its Remover (downloaders, albumentations) and GUI: seconds of
    import time the service does not need. The network modules are imported under a bare package
    object, which is then removed so a later ``import transparent_background`` still works normally.
    """
    if "transparent_background.InSPyReNet" in sys.modules:
        return sys.modules["transparent_background.InSPyReNet"].InSPyReNet_SwinB
    spec = importlib.util.find_spec("transparent_background")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError("transparent-background is not installed")
    had_package = "transparent_background" in sys.modules
    if not had_package:
        package = types.ModuleType("transparent_background")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        sys.modules["transparent_background"] = package
    try:
        with _light_timm_layers():
            from transparent_background.InSPyReNet import InSPyReNet_SwinB
    finally:
        if not had_package:
            del sys.modules["transparent_background"]
    return InSPyReNet_SwinB


@contextlib.contextmanager
def _light_timm_layers() -> Iterator[None]:
    """Serve the three names the Swin backbone takes from ``timm.layers`` without importing timm.

    ``timm.layers`` imports torchvision's detection models and with them ``torch._dynamo``: about two
    seconds of every cold start, for ``DropPath`` (the identity at inference), ``to_2tuple`` and
    ``trunc_normal_`` (torch's own, same signature). The stand-in is removed again afterwards, so a
    later ``import timm`` gets the real package. When timm is already imported, it is used as is.
    """
    if "timm.layers" in sys.modules:
        yield
        return
    import torch
    from torch import nn

    class DropPath(nn.Module):
        """timm's stochastic depth: drops whole samples in training, the identity in eval mode."""

        def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True) -> None:
            super().__init__()
            self.drop_prob = drop_prob
            self.scale_by_keep = scale_by_keep

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if self.drop_prob == 0.0 or not self.training:
                return x
            keep = 1.0 - self.drop_prob
            mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
            if keep > 0.0 and self.scale_by_keep:
                mask.div_(keep)
            return x * mask

    def to_2tuple(value: object) -> tuple:
        if isinstance(value, tuple | list):
            return tuple(value)
        return (value, value)

    layers = types.ModuleType("timm.layers")
    layers.DropPath, layers.to_2tuple, layers.trunc_normal_ = DropPath, to_2tuple, nn.init.trunc_normal_
    stand_ins = {"timm.layers": layers}
    if "timm" not in sys.modules:
        stand_ins["timm"] = types.ModuleType("timm")
    sys.modules.update(stand_ins)
    try:
        yield
    finally:
        for name, module in stand_ins.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]


@contextlib.contextmanager
def _skip_weight_init() -> Iterator[None]:
    """Skip random initialisation while building a network whose every weight is loaded next."""
    import torch

    names = [
        "uniform_", "normal_", "trunc_normal_", "constant_", "zeros_", "ones_",
        "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_", "xavier_normal_",
    ]  # fmt: skip
    targets = [torch.nn.init]
    swin = sys.modules.get("transparent_background.backbones.SwinTransformer")
    if swin is not None:
        targets.append(swin)
    saved = [(module, name, getattr(module, name)) for module in targets for name in names if hasattr(module, name)]

    def keep(tensor: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        return tensor

    for module, name, _ in saved:
        setattr(module, name, keep)
    try:
        yield
    finally:
        for module, name, original in saved:
            setattr(module, name, original)


def fold_batch_norms(network: object) -> int:
    """Fold each inference-mode BatchNorm into the convolution before it (same maths, one op fewer).

    InSPyReNet's decoder wraps every convolution as ``conv → bn (→ relu)``; folding removes about 200
    BatchNorm passes per image (~5-7 % of CPU inference time). Returns how many were folded.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    layers = sys.modules.get("transparent_background.modules.layers")
    wrapper = getattr(layers, "Conv2d", None)
    folded = 0
    for module in network.modules():  # type: ignore[attr-defined]
        if wrapper is not None and isinstance(module, wrapper) and module.bn is not None and not module.bn.training:
            module.conv = fuse_conv_bn_eval(module.conv, module.bn)
            module.bn = None
            folded += 1
    return folded


def resolve_device(requested: str) -> str:
    """``auto`` → cuda, then mps, then cpu. A requested device that is missing is an error."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps and mps.is_available())
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if requested == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError("PETCUT_DEVICE=cuda but no CUDA device is available")
    if requested == "mps" and not has_mps:
        raise DeviceUnavailableError("PETCUT_DEVICE=mps but the MPS backend is not available")
    return requested


def resolve_precision(requested: str, device: str) -> str:
    if requested == "auto":
        return "fp16" if device == "cuda" else "fp32"
    if requested == "fp16" and device != "cuda":
        raise DeviceUnavailableError(f"PETCUT_PRECISION=fp16 needs CUDA, the device is {device}")
    return requested


@dataclass
class InSPyReNetSegmenter:
    """The loaded network plus the resize policy. Only the runtime's worker thread calls it."""

    network: object
    device: str
    precision: str
    resize: str
    base_size: int
    short_cap: int
    description: str

    def _tensor(self, rgb: np.ndarray) -> object:
        import torch

        height, width = rgb.shape[:2]
        size = input_size(width, height, resize=self.resize, base_size=self.base_size, short_cap=self.short_cap)
        resized = Image.fromarray(rgb).resize(size, Image.BILINEAR)
        array = np.asarray(resized, dtype=np.float32)
        array /= 255.0
        array -= MEAN
        array /= STD
        tensor = torch.from_numpy(array.transpose(2, 0, 1)).unsqueeze(0)
        return tensor.to(self.device, non_blocking=True)

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected uint8 H×W×3, got {rgb.dtype} {rgb.shape}")
        height, width = rgb.shape[:2]
        x = self._tensor(rgb)
        autocast = (
            torch.autocast(self.device, dtype=torch.float16 if self.precision == "fp16" else torch.bfloat16)
            if self.precision in ("fp16", "bf16")
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            pred = self.network(x)
        with torch.inference_mode():
            pred = F.interpolate(pred.float(), (height, width), mode="bilinear", align_corners=True)
            alpha = pred[0, 0].cpu().numpy()
        return np.clip(alpha, 0.0, 1.0, out=alpha)


def load_segmenter(settings: Settings) -> InSPyReNetSegmenter:
    """Locate, verify and load the checkpoint for ``settings``; raise ModelError subclasses on failure."""
    import torch

    started = time.perf_counter()
    device = resolve_device(settings.device)
    precision = resolve_precision(settings.precision, device)
    info = checkpoint.mode_info(settings.mode)
    path = checkpoint.locate(settings)
    if checkpoint.should_verify(settings, path):
        checkpoint.verify(path, settings.mode)
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)

    network_class = _import_network()
    with _skip_weight_init(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.meshgrid")  # inside Swin's constructor
        network = network_class(depth=64, pretrained=False, base_size=list(info.base_size), threshold=None)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except FileNotFoundError as exc:
        raise WeightsMissingError(f"{path} disappeared before it could be loaded") from exc
    except Exception as exc:  # torch raises many types for a file that is not a checkpoint
        raise CheckpointInvalidError(f"{path} is not a loadable checkpoint ({type(exc).__name__})") from exc
    if not isinstance(state, dict):
        raise CheckpointInvalidError(f"{path} does not hold a state dict")
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise CheckpointInvalidError(
            f"{path} does not match the InSPyReNet Swin-B architecture: {str(exc)[:300]}"
        ) from exc
    network.eval()
    fold_batch_norms(network)
    network = network.to(device)

    base = settings.target_size or info.base_size[0]
    short_cap = settings.target_size or DYNAMIC_SHORT_SIDE
    description = f"InSPyReNet {settings.mode}/{settings.resize} on {device} {precision}"
    log.info(
        "model loaded",
        extra={"checkpoint": str(path), "device": device, "seconds": round(time.perf_counter() - started, 3)},
    )
    return InSPyReNetSegmenter(
        network=network,
        device=device,
        precision=precision,
        resize=settings.resize,
        base_size=base,
        short_cap=short_cap,
        description=description,
    )
