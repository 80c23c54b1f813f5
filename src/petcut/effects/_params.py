"""Parameter schema of an effect: declaration, description for the API, validation and coercion."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from ._errors import EffectParamError

ParamType = Literal["float", "int", "bool", "float_list"]

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


@dataclass(frozen=True)
class Param:
    """One declared parameter. ``min``/``max`` are inclusive (per element for ``float_list``)."""

    name: str
    type: ParamType
    default: Any
    description: str
    min: float | None = None
    max: float | None = None
    length: int | None = None  # float_list only: required number of elements

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            "default": list(self.default) if self.type == "float_list" else self.default,
            "min": self.min,
            "max": self.max,
            "description": self.description,
        }
        if self.length is not None:
            out["length"] = self.length
        return out

    def coerce(self, effect: str, value: Any) -> Any:
        """Return ``value`` converted to the declared type, or raise :class:`EffectParamError`."""
        if self.type == "bool":
            return self._to_bool(effect, value)
        if self.type == "float_list":
            return self._to_float_list(effect, value)
        number = self._to_number(effect, value)
        self._check_range(effect, number)
        return number

    def _fail(self, effect: str, message: str) -> EffectParamError:
        return EffectParamError(effect, self.name, message)

    def _to_bool(self, effect: str, value: Any) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise self._fail(effect, f"expected a boolean, got {value!r}")

    def _to_number(self, effect: str, value: Any) -> float | int:
        kind = "an integer" if self.type == "int" else "a number"
        if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
            raise self._fail(effect, f"expected {kind}, got {value!r}")
        try:
            number = float(value)
        except (ValueError, OverflowError):  # OverflowError: an int too large for a float
            raise self._fail(effect, f"expected {kind} within range, got {_short(value)}") from None
        if not math.isfinite(number):
            raise self._fail(effect, f"expected a finite number, got {_short(value)}")
        if self.type == "float":
            return number
        if not number.is_integer():
            raise self._fail(effect, f"expected {kind}, got {value!r}")
        return int(number)

    def _to_float_list(self, effect: str, value: Any) -> list[float]:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
        if not isinstance(value, Sequence) or isinstance(value, str):
            raise self._fail(effect, f"expected a list of numbers, got {value!r}")
        if self.length is not None and len(value) != self.length:
            raise self._fail(effect, f"expected {self.length} numbers, got {len(value)}")
        element = Param(self.name, "float", 0.0, "", self.min, self.max)
        return [element.coerce(effect, item) for item in value]

    def _check_range(self, effect: str, number: float) -> None:
        if (self.min is not None and number < self.min) or (self.max is not None and number > self.max):
            raise self._fail(effect, f"{number!r} is out of range [{self.min}, {self.max}]")


def validate(effect: str, schema: Sequence[Param], params: Mapping[str, Any] | None) -> dict[str, Any]:
    """Full parameter dict for ``effect``: defaults filled in, given values coerced and range-checked."""
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise EffectParamError(effect, None, f"parameters must be an object, got {type(params).__name__}")
    by_name = {p.name: p for p in schema}
    unknown = sorted(str(k) for k in params if k not in by_name)
    if unknown:
        valid = ", ".join(by_name) or "none"
        raise EffectParamError(effect, unknown[0], f"unknown parameter(s) {unknown}; valid parameters: {valid}")
    out: dict[str, Any] = {}
    for p in schema:
        out[p.name] = p.coerce(effect, params[p.name]) if p.name in params else _copy_default(p)
    return out


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _copy_default(p: Param) -> Any:
    return list(p.default) if p.type == "float_list" else p.default
