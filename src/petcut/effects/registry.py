"""The effect registry: discovers the effect modules of this package and applies effects by name.

Every public module of ``petcut.effects`` other than this one is an effect and must define ``NAME``,
``DESCRIPTION``, ``PARAMS`` (a tuple of :class:`Param`) and ``render(rgba, params) -> rgba``.
Modules whose name starts with ``_`` hold shared code. Discovery runs on first use, not at import.
Registry order is the module names' alphabetical order. The old services' names are accepted as
aliases (:data:`ALIASES`) wherever a name is looked up.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ._common import check_rgba
from ._errors import UnknownEffectError
from ._params import Param, validate

#: Old services' effect names → registry names. The shop's ``api-client.js`` still sends
#: ``optimized_popart`` (the InSPyReNet service's name for pop art); ``blackwhite`` is the later service's.
ALIASES: Mapping[str, str] = {"optimized_popart": "popart", "blackwhite": "enhancedblackwhite"}


@dataclass(frozen=True)
class Effect:
    name: str
    description: str
    params: tuple[Param, ...]
    render: Callable[[np.ndarray, Mapping[str, Any]], np.ndarray]

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "params": {p.name: p.describe() for p in self.params},
        }


@functools.cache
def _effects() -> dict[str, Effect]:
    package = __name__.rpartition(".")[0]
    found: dict[str, Effect] = {}
    for info in sorted(pkgutil.iter_modules(importlib.import_module(package).__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "registry":
            continue
        effect = _effect_of(importlib.import_module(f"{package}.{info.name}"))
        if effect.name in found:
            raise RuntimeError(f"two effect modules are named {effect.name!r}")
        found[effect.name] = effect
    for alias, target in ALIASES.items():
        if alias in found or target not in found:
            raise RuntimeError(f"effect alias {alias!r} → {target!r} clashes with an effect or names none")
    return found


def _effect_of(module: ModuleType) -> Effect:
    missing = [a for a in ("NAME", "DESCRIPTION", "PARAMS", "render") if not hasattr(module, a)]
    if missing:
        raise RuntimeError(f"effect module {module.__name__} does not define {', '.join(missing)}")
    return Effect(module.NAME, module.DESCRIPTION, tuple(module.PARAMS), module.render)


def get(name: str) -> Effect:
    """The effect called ``name`` (a registry name or an alias)."""
    return _effects()[canonical(name)]


def canonical(name: str) -> str:
    """The registry name of ``name`` (itself, or what an alias stands for); UnknownEffectError otherwise."""
    effects = _effects()
    if isinstance(name, str):
        name = ALIASES.get(name, name)
        if name in effects:
            return name
    raise UnknownEffectError(name, list(effects))


def aliases() -> dict[str, str]:
    """Alias → registry name, JSON-serialisable."""
    _effects()  # checks that every alias names an effect
    return dict(ALIASES)


def names() -> list[str]:
    """Effect names in registry order."""
    return list(_effects())


def describe() -> list[dict[str, Any]]:
    """Every effect with its parameters (type, default, range, description), JSON-serialisable."""
    return [effect.describe() for effect in _effects().values()]


def validate_params(name: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Full parameters of effect ``name``: defaults filled in, values coerced to the declared types.

    Raises UnknownEffectError for an unknown effect and EffectParamError for an unknown parameter,
    a value of the wrong type or out of range.
    """
    effect = get(name)
    return validate(effect.name, effect.params, params)


def apply(name: str, rgba: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Render effect ``name`` on an RGBA uint8 (H, W, 4) image; returns a new RGBA uint8 image, same alpha."""
    effect = get(name)
    full = validate(effect.name, effect.params, params)
    return effect.render(check_rgba(rgba), full)


def warm_up() -> None:
    """Run every effect once on a small image: compiles the numba kernels and builds lookup tables."""
    rgba = np.zeros((16, 16, 4), dtype=np.uint8)
    rgba[4:12, 4:12] = (120, 90, 60, 255)
    for effect in _effects().values():
        apply(effect.name, rgba)
        for p in effect.params:  # each boolean switch flipped, so that optional code paths compile too
            if p.type == "bool":
                apply(effect.name, rgba, {p.name: not p.default})
