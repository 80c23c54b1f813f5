"""Print effects: one module per effect, discovered by the registry (what each computes: docs/effects.md).

>>> from petcut import effects
>>> out = effects.apply("enhancedblackwhite", rgba, {"grain_strength": 0.05})
"""

from ._errors import EffectParamError, UnknownEffectError
from .registry import ALIASES, aliases, apply, canonical, describe, names, validate_params, warm_up

__all__ = [
    "ALIASES",
    "EffectParamError",
    "UnknownEffectError",
    "aliases",
    "apply",
    "canonical",
    "describe",
    "names",
    "validate_params",
    "warm_up",
]
