"""The old services' effect names: accepted wherever a name is looked up, never listed as effects."""

from __future__ import annotations

import pytest

from petcut import effects
from petcut.effects import UnknownEffectError
from tests.support.images import random_rgba


def test_aliases_name_registry_effects() -> None:
    assert effects.aliases() == {"optimized_popart": "popart", "blackwhite": "enhancedblackwhite"}
    for alias, name in effects.aliases().items():
        assert name in effects.names() and alias not in effects.names()
        assert effects.canonical(alias) == name
    assert effects.canonical("popart") == "popart"
    assert not set(effects.aliases()) & {d["name"] for d in effects.describe()}


@pytest.mark.parametrize(("alias", "name"), [("optimized_popart", "popart"), ("blackwhite", "enhancedblackwhite")])
def test_an_alias_renders_its_effect(alias: str, name: str) -> None:
    rgba = random_rgba(24, 32, seed=4)
    assert effects.validate_params(alias) == effects.validate_params(name)
    assert (effects.apply(alias, rgba) == effects.apply(name, rgba)).all()


@pytest.mark.parametrize("name", ["optimised_popart", "OPTIMIZED_POPART ", "", None, "black_white"])
def test_unknown_names_still_raise_with_the_valid_list(name: object) -> None:
    with pytest.raises(UnknownEffectError) as info:
        effects.canonical(name)  # type: ignore[arg-type]
    assert info.value.valid_names == effects.names()
