"""InSPyReNet's network in torch: transparent-background's class, built fast and loaded from a checkpoint.

Used by the torch engine and by ``petcut weights prepare`` (which exports it for OpenVINO); the
OpenVINO path never imports this module.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from petcut.model.base import CheckpointInvalidError, ModelError, WeightsMissingError


def _import_network() -> type:
    """Import InSPyReNet_SwinB without running transparent_background/__init__.py.

    The package's __init__ imports its Remover (downloaders, albumentations) and GUI: seconds of
    import time the service does not need. The network modules are imported under a bare package
    object, which is then removed so a later ``import transparent_background`` still works normally.
    """
    if "transparent_background.InSPyReNet" in sys.modules:
        loaded: type = sys.modules["transparent_background.InSPyReNet"].InSPyReNet_SwinB
        return loaded
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
    network: type = InSPyReNet_SwinB
    return network


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

    def to_2tuple(value: object) -> tuple[object, ...]:
        if isinstance(value, tuple | list):
            return tuple(value)
        return (value, value)

    layers = types.ModuleType("timm.layers")
    vars(layers).update(DropPath=DropPath, to_2tuple=to_2tuple, trunc_normal_=nn.init.trunc_normal_)
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


def load_network(path: Path, base_size: int) -> Any:
    """Build the Swin-B InSPyReNet for ``base_size`` and load ``path`` into it (eval mode, BN folded, CPU)."""
    import torch

    network_class = _import_network()
    with _skip_weight_init(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.meshgrid")  # inside Swin's constructor
        network = network_class(depth=64, pretrained=False, base_size=[base_size, base_size], threshold=None)
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
    return network
