"""Export InSPyReNet to ONNX with dynamic height and width (for the OpenVINO engine).

transparent-background's Swin code computes window padding, the shift mask and a batch size through
Python floats and ``int(np.ceil(...))`` on tensor sizes, so a traced export freezes the traced input
size: the graph gives wrong results or fails at any other size. :func:`export_friendly_swin` swaps three
functions for integer-arithmetic versions (``//`` and ``%`` on sizes, the shift mask built from integer
comparisons) while the export runs; eager output is bit-identical with or without them (tested). The
original functions are restored afterwards, so the torch engine runs the package's code unchanged.

Only :mod:`petcut.model.prepare` calls this (at install or image-build time, never per request).
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: input sides are multiples of this (the network's coarsest stride); the exported graph allows
#: any multiple from 32 up to MAX_SIDE
STRIDE = 32
MAX_SIDE = 4096


def _window_reverse(windows: Any, window_size: int, H: Any, W: Any) -> Any:
    B = windows.shape[0] // ((H // window_size) * (W // window_size))
    x = windows.view(B, H // window_size, W // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(B, H, W, -1)


def _block_forward(self: Any, x: Any, mask_matrix: Any) -> Any:
    """SwinTransformerBlock.forward with the padding crop unconditional (a no-op without padding)."""
    import torch
    import torch.nn.functional as F

    swin = sys.modules["transparent_background.backbones.SwinTransformer"]
    B, _, C = x.shape
    H, W = self.H, self.W
    shortcut = x
    x = self.norm1(x).view(B, H, W, C)
    ws = self.window_size
    pad_r = (ws - W % ws) % ws
    pad_b = (ws - H % ws) % ws
    x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
    _, Hp, Wp, _ = x.shape
    if self.shift_size > 0:
        shifted_x = torch.roll(x, shifts=(-self.shift_size, -self.shift_size), dims=(1, 2))
        attn_mask = mask_matrix
    else:
        shifted_x = x
        attn_mask = None
    x_windows = swin.window_partition(shifted_x, ws).view(-1, ws * ws, C)
    attn_windows = self.attn(x_windows, mask=attn_mask).view(-1, ws, ws, C)
    shifted_x = swin.window_reverse(attn_windows, ws, Hp, Wp)
    if self.shift_size > 0:
        x = torch.roll(shifted_x, shifts=(self.shift_size, self.shift_size), dims=(1, 2))
    else:
        x = shifted_x
    x = x[:, :H, :W, :].contiguous().view(B, H * W, C)
    x = shortcut + self.drop_path(x)
    return x + self.drop_path(self.mlp(self.norm2(x)))


def _layer_forward(self: Any, x: Any, H: Any, W: Any) -> Any:
    """BasicLayer.forward with the shift mask computed from integer comparisons, not slice writes.

    Region ids are the original's: ``cnt`` counts the 3×3 grid of (row band, column band) row-major,
    a band being [0, Hp-ws), [Hp-ws, Hp-shift), [Hp-shift, Hp).
    """
    import torch

    swin = sys.modules["transparent_background.backbones.SwinTransformer"]
    ws, shift = self.window_size, self.shift_size
    Hp = (H + ws - 1) // ws * ws
    Wp = (W + ws - 1) // ws * ws
    rows = torch.arange(Hp, device=x.device)
    cols = torch.arange(Wp, device=x.device)
    row_band = (rows >= Hp - ws).to(torch.float32) + (rows >= Hp - shift).to(torch.float32)
    col_band = (cols >= Wp - ws).to(torch.float32) + (cols >= Wp - shift).to(torch.float32)
    img_mask = (row_band[:, None] * 3 + col_band[None, :]).view(1, Hp, Wp, 1)
    mask_windows = swin.window_partition(img_mask, ws).view(-1, ws * ws)
    attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
    attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0).masked_fill(attn_mask == 0, 0.0)
    for blk in self.blocks:
        blk.H, blk.W = H, W
        x = blk(x, attn_mask)
    if self.downsample is not None:
        x_down = self.downsample(x, H, W)
        Wh, Ww = (H + 1) // 2, (W + 1) // 2
        return x, H, W, x_down, Wh, Ww
    return x, H, W, x, H, W


@contextlib.contextmanager
def export_friendly_swin() -> Iterator[None]:
    """Swap in the integer-arithmetic Swin functions for the duration of the block."""
    swin = sys.modules["transparent_background.backbones.SwinTransformer"]
    patches = [
        (swin, "window_reverse", _window_reverse),
        (swin.SwinTransformerBlock, "forward", _block_forward),
        (swin.BasicLayer, "forward", _layer_forward),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def export_onnx(network: Any, path: Path, *, sample_size: tuple[int, int] = (384, 384), dynamic: bool = True) -> Path:
    """Write ``network`` (an eval-mode InSPyReNet on the CPU, fp32) to ``path`` as ONNX.

    The input ``image`` is float32 [1, 3, H, W] with H and W any multiple of 32 up to MAX_SIDE; the
    output ``alpha`` is [1, 1, H, W] in [0, 1] (the network's own sigmoid and min-max normalisation).
    ``dynamic=False`` freezes ``sample_size`` (for comparing speed; petcut serves the dynamic graph).
    """
    import torch

    height, width = sample_size
    sample = torch.zeros(1, 3, height, width)
    h = torch.export.Dim("h32", min=1, max=MAX_SIDE // STRIDE)
    w = torch.export.Dim("w32", min=1, max=MAX_SIDE // STRIDE)
    dynamic_shapes = {"image": {2: STRIDE * h, 3: STRIDE * w}} if dynamic else None
    path.parent.mkdir(parents=True, exist_ok=True)
    with export_friendly_swin(), torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            _Wrapped(network),
            (sample,),
            dynamo=True,
            input_names=["image"],
            output_names=["alpha"],
            dynamic_shapes=dynamic_shapes,
            optimize=True,
            external_data=True,
            verbose=False,
        )
        assert program is not None  # dynamo=True always returns the program
        program.save(str(path), external_data=True)
    return path


def _Wrapped(network: Any) -> Any:
    """The network as a module whose forward takes the image argument by the ONNX input's name."""
    from torch import nn

    class Wrapped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, image: Any) -> Any:
            return self.network(image)

    return Wrapped()
