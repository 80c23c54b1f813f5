"""Errors raised by the effects package: both are 400s of the shared error model (docs/api.md)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from petcut.errors import InvalidParameter, PetcutError

#: what the API calls the effect parameters (``effect_params``, JSON ``{effect: {param: value}}``)
PARAMS_FIELD = "effect_params"


class UnknownEffectError(PetcutError, ValueError):
    """The requested effect name is not in the registry (400 ``unknown_effect``, with the valid names)."""

    status = 400
    code = "unknown_effect"
    default_message = "Unknown effect."
    description = "An effect name is not in the registry; `valid_effects` lists the names."

    def __init__(self, name: object, valid_names: Sequence[str], *, aliases: Mapping[str, str] | None = None) -> None:
        self.name = name
        self.valid_names = list(valid_names)
        message = f"Unknown effect {name!r}; valid effects: {', '.join(self.valid_names)}"
        extra: dict[str, object] = {"valid_effects": self.valid_names}
        if aliases:
            message += f" (old names accepted: {', '.join(f'{old} → {new}' for old, new in aliases.items())})"
            extra["aliases"] = dict(aliases)
        super().__init__(message + ".", extra=extra)


class EffectParamError(InvalidParameter):
    """A parameter is unknown, of the wrong type or out of range (400 ``invalid_parameter`` on
    ``effect_params``)."""

    description = "An effect parameter is unknown, of the wrong type or out of range."

    def __init__(self, effect: str, param: str | None, message: str) -> None:
        self.effect = effect
        self.param = param
        where = f"effect {effect!r}" if param is None else f"effect {effect!r}, parameter {param!r}"
        super().__init__(PARAMS_FIELD, f"{where}: {message}")
