"""`color`: the cut-out itself, unchanged."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._params import Param

NAME = "color"
DESCRIPTION = "The cut-out in its own colours, unchanged."
PARAMS: tuple[Param, ...] = ()


def render(rgba: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    return rgba.copy()
