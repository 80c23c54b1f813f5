"""Seeded random-weight checkpoints with the real architecture, for tests and benchmarks.

Nothing here can download trained weights; a random network exercises every line of the real loading
and inference code and gives the reference and petcut the same numbers to agree on.
"""

from __future__ import annotations

from pathlib import Path

from petcut.model.checkpoint import mode_info


def build_random_checkpoint(path: Path, *, mode: str = "fast", seed: int = 0) -> Path:
    """Save an InSPyReNet Swin-B state dict with seeded random weights to ``path`` (atomically)."""
    import torch

    from petcut.model.inspyrenet_torch import _import_network

    network_class = _import_network()
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        network = network_class(depth=64, pretrained=False, base_size=list(mode_info(mode).base_size), threshold=None)
    finally:
        torch.random.set_rng_state(generator_state)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    torch.save(network.state_dict(), partial)
    partial.replace(path)
    return path
