"""Errors raised by the effects package (the API maps both to HTTP 400)."""

from __future__ import annotations

from collections.abc import Sequence


class UnknownEffectError(ValueError):
    """The requested effect name is not in the registry."""

    def __init__(self, name: object, valid_names: Sequence[str]) -> None:
        self.name = name
        self.valid_names = list(valid_names)
        super().__init__(f"unknown effect {name!r}; valid effects: {', '.join(self.valid_names)}")


class EffectParamError(ValueError):
    """A parameter is unknown, of the wrong type or out of range."""

    def __init__(self, effect: str, param: str | None, message: str) -> None:
        self.effect = effect
        self.param = param
        where = f"effect {effect!r}" if param is None else f"effect {effect!r}, parameter {param!r}"
        super().__init__(f"{where}: {message}")
