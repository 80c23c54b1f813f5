"""Registry, parameter validation and the contract every effect keeps."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from petcut import effects
from petcut.effects import EffectParamError, UnknownEffectError
from tests.support.images import random_rgba, uniform_rgba

REQUIRED = {"color", "enhancedblackwhite", "dithering", "popart", "retro8bit"}


def test_names_include_the_shop_effects():
    names = effects.names()
    assert set(names) >= REQUIRED
    assert len(names) == len(set(names))
    assert [d["name"] for d in effects.describe()] == names


def test_describe_is_json_and_well_formed():
    described = json.loads(json.dumps(effects.describe()))
    for effect in described:
        assert set(effect) == {"name", "description", "params"}
        assert effect["description"]
        for pname, p in effect["params"].items():
            assert p["type"] in {"float", "int", "bool", "float_list"}, pname
            assert p["description"]
            defaults = p["default"] if p["type"] == "float_list" else [p["default"]]
            if p["type"] == "bool":
                assert isinstance(p["default"], bool)
                continue
            for value in defaults:
                assert p["min"] <= value <= p["max"], (effect["name"], pname)


def test_validate_fills_defaults():
    full = effects.validate_params("enhancedblackwhite", None)
    assert full == {
        "contrast_boost": 1.12,
        "edge_strength": 0.9,
        "halation_strength": 0.12,
        "grain_strength": 0.08,
        "grain_size": 2.0,
        "preserve_highlights": True,
        "gray_weights": [0.18, 0.72, 0.10],
    }
    assert effects.validate_params("dithering", {}) == {
        "pixel_spacing": 2,
        "dot_size": 2,
        "gamma_correction": 0.45,
        "enhancement_strength": 0.3,
        "adaptive_threshold": True,
    }
    assert effects.validate_params("retro8bit") == {
        "pixelation_factor": 6,
        "edge_threshold": 40,
        "preserve_edges": True,
        "error_diffusion": False,
    }
    assert effects.validate_params("popart") == {}
    assert effects.validate_params("color") == {}


def test_validate_coerces_to_declared_types():
    full = effects.validate_params(
        "retro8bit", {"pixelation_factor": "8", "edge_threshold": 12, "preserve_edges": "false"}
    )
    assert full["pixelation_factor"] == 8 and type(full["pixelation_factor"]) is int
    assert full["edge_threshold"] == 12.0 and type(full["edge_threshold"]) is float
    assert full["preserve_edges"] is False
    assert effects.validate_params("retro8bit", {"pixelation_factor": 4.0})["pixelation_factor"] == 4
    weights = effects.validate_params("enhancedblackwhite", {"gray_weights": (0.3, 0.6, 0.1)})["gray_weights"]
    assert weights == [0.3, 0.6, 0.1]
    assert effects.validate_params("enhancedblackwhite", {"gray_weights": "0.3,0.6,0.1"})["gray_weights"] == [
        0.3,
        0.6,
        0.1,
    ]


def test_defaults_are_not_shared_between_calls():
    first = effects.validate_params("enhancedblackwhite")
    first["gray_weights"][0] = 99
    assert effects.validate_params("enhancedblackwhite")["gray_weights"][0] == 0.18


def test_unknown_param_is_an_error():
    with pytest.raises(EffectParamError) as info:
        effects.validate_params("dithering", {"pixel_spacing": 2, "dot_sise": 3})
    message = str(info.value)
    assert "dithering" in message and "dot_sise" in message and "dot_size" in message
    assert info.value.effect == "dithering" and info.value.param == "dot_sise"
    with pytest.raises(EffectParamError):
        effects.validate_params("popart", {"anything": 1})


@pytest.mark.parametrize(
    ("name", "params", "param"),
    [
        ("dithering", {"pixel_spacing": 0}, "pixel_spacing"),
        ("dithering", {"pixel_spacing": 1000}, "pixel_spacing"),
        ("enhancedblackwhite", {"contrast_boost": -1.0}, "contrast_boost"),
        ("enhancedblackwhite", {"gray_weights": [0.5, 2.0, 0.1]}, "gray_weights"),
        ("retro8bit", {"pixelation_factor": 0}, "pixelation_factor"),
    ],
)
def test_out_of_range_is_an_error(name, params, param):
    with pytest.raises(EffectParamError, match="out of range") as info:
        effects.validate_params(name, params)
    assert name in str(info.value) and param in str(info.value)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("dithering", {"pixel_spacing": 2.5}),
        ("dithering", {"pixel_spacing": "two"}),
        ("dithering", {"pixel_spacing": True}),
        ("dithering", {"adaptive_threshold": "maybe"}),
        ("dithering", {"adaptive_threshold": 2}),
        ("enhancedblackwhite", {"contrast_boost": [1.0]}),
        ("enhancedblackwhite", {"contrast_boost": None}),
        ("enhancedblackwhite", {"contrast_boost": math.nan}),
        ("enhancedblackwhite", {"contrast_boost": "inf"}),
        ("enhancedblackwhite", {"gray_weights": [0.5, 0.5]}),
        ("enhancedblackwhite", {"gray_weights": 0.5}),
        ("enhancedblackwhite", {"gray_weights": ["a", "b", "c"]}),
    ],
)
def test_wrong_type_is_an_error(name, params):
    with pytest.raises(EffectParamError) as info:
        effects.validate_params(name, params)
    assert name in str(info.value) and next(iter(params)) in str(info.value)


def test_params_must_be_a_mapping():
    with pytest.raises(EffectParamError):
        effects.validate_params("popart", ["contrast"])


@pytest.mark.parametrize("bad", ["sepia", "", "Color", None])
def test_unknown_effect(bad):
    with pytest.raises(UnknownEffectError) as info:
        effects.validate_params(bad)
    assert isinstance(info.value, ValueError)
    assert info.value.valid_names == effects.names()
    for name in REQUIRED:
        assert name in str(info.value)
    with pytest.raises(UnknownEffectError):
        effects.apply(bad, uniform_rgba(2, 2, (0, 0, 0)))


def test_apply_validates_params():
    with pytest.raises(EffectParamError):
        effects.apply("dithering", uniform_rgba(4, 4, (0, 0, 0)), {"dot_size": 0})


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4, 3), np.uint8),
        np.zeros((4, 4, 4), np.float32),
        np.zeros((4, 4), np.uint8),
        np.zeros((0, 4, 4), np.uint8),
        [[0, 0, 0, 0]],
    ],
)
def test_apply_rejects_non_rgba(bad):
    with pytest.raises(ValueError, match=r"RGBA|empty|numpy"):
        effects.apply("color", bad)


# --- the contract of every effect ---------------------------------------------------------------

ALL = effects.names()


@pytest.mark.parametrize("name", ALL)
def test_shape_dtype_alpha_and_input_untouched(name):
    rgba = random_rgba(37, 29, seed=1)
    before = rgba.copy()
    out = effects.apply(name, rgba)
    assert out.dtype == np.uint8 and out.shape == rgba.shape
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert np.array_equal(rgba, before)
    assert not np.shares_memory(out, rgba)


@pytest.mark.parametrize("name", ALL)
def test_deterministic(name):
    rgba = random_rgba(40, 32, seed=2)
    assert np.array_equal(effects.apply(name, rgba), effects.apply(name, rgba.copy()))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(1, 1), (1, 9), (9, 1), (2, 3), (5, 7)])
def test_tiny_images(name, shape):
    rgba = random_rgba(*shape, seed=3)
    rgba[..., 3] = 255
    out = effects.apply(name, rgba)
    assert out.shape == rgba.shape and np.array_equal(out[..., 3], rgba[..., 3])


@pytest.mark.parametrize("name", ALL)
def test_non_contiguous_input(name):
    big = random_rgba(60, 50, seed=4)
    view = big[::2, 1::2]
    assert np.array_equal(effects.apply(name, view), effects.apply(name, view.copy()))


@pytest.mark.parametrize("name", ALL)
def test_fully_transparent_image(name):
    out = effects.apply(name, uniform_rgba(12, 10, (90, 120, 30), alpha=0))
    assert np.all(out[..., 3] == 0)


def test_color_is_the_identity():
    rgba = random_rgba(23, 31, seed=5)
    assert np.array_equal(effects.apply("color", rgba), rgba)


def test_numba_is_imported_only_when_a_kernel_first_runs():
    code = (
        "import sys, petcut.effects as e; "
        "assert 'numba' not in sys.modules, 'numba imported with the package'; "
        "e.names(); e.describe(); e.validate_params('dithering'); "
        "assert 'numba' not in sys.modules, 'numba imported by discovery'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_module_without_the_effect_attributes_is_rejected():
    from types import ModuleType

    from petcut.effects.registry import _effect_of

    module = ModuleType("petcut.effects.half_done")
    module.NAME = "half_done"
    with pytest.raises(RuntimeError, match="DESCRIPTION, PARAMS, render"):
        _effect_of(module)


def test_warm_up_runs():
    effects.warm_up()
