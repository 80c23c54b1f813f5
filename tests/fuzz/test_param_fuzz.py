"""Property fuzzing of the structured parameters schemathesis only sees as strings:
the ``effect_params`` JSON (query and form field) and ``crop_margin``. Any value gets a 200 or a 400 that
names the field: never a 5xx, whatever the nesting, size or magnitude of the numbers.

Deterministic in CI (derandomized), ``FUZZ_EXAMPLES`` examples per test (default 25).
"""

from __future__ import annotations

import json
import os
import time
from io import BytesIO
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis.python import asgi

from petcut.api import create_app
from petcut.model.runtime import State
from tests.support.fakes import Loader
from tests.support.service import fuzz_settings

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=os.environ.get("FUZZ_EXPLORE") != "1",
    database=None,
)
EFFECTS = ["enhancedblackwhite", "retro8bit", "color", "dithering", "popart"]
PARAM_NAMES = ["pixelation_factor", "gray_weights", "contrast", "brightness", "palette_size", "x"]


def _image() -> bytes:
    buffer = BytesIO()
    Image.new("RGB", (12, 9), (200, 120, 40)).save(buffer, "PNG")
    return buffer.getvalue()


IMAGE = _image()

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**400, -(10**400), 2**63, 1e308, -1e308, 5e-324])
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(EFFECTS + PARAM_NAMES) | st.text(max_size=6), children, max_size=4)
    ),
    max_leaves=24,
)
effect_params = (
    json_values.map(json.dumps)
    | st.builds(lambda n, c: c[0] * n + c[1] * n, st.integers(1, 6000), st.sampled_from([("[", "]"), ('{"a":', "}")]))
    | st.text(max_size=40)
)
margins = st.from_regex(r"-?[0-9]{0,400}(\.[0-9]{0,30})?\s?(px|%)?", fullmatch=True) | st.text(max_size=20)


@pytest.fixture
def client(tmp_path: Path):
    """One app per test (schemathesis's plugin ends every ASGI lifespan when a test ends)."""
    app = create_app(fuzz_settings(tmp_path), load_segmenter=Loader())
    with asgi.get_client(app) as test_client:
        deadline = time.monotonic() + 30
        while app.state.runtime.state is not State.READY:
            assert time.monotonic() < deadline, "the fake model never became ready"
            time.sleep(0.02)
        yield test_client


def _check(response, field: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code < 500, (response.status_code, response.text[:300])
    if response.status_code >= 400:
        assert response.status_code == 400, response.text[:300]
        error = response.json()["error"]
        assert error["code"] in ("invalid_parameter", "unknown_effect"), error
        if error["code"] == "invalid_parameter":
            assert field in error["message"], error


@FUZZ
@given(raw=effect_params, in_form=st.booleans(), effects=st.sampled_from(EFFECTS))
def test_any_effect_params_is_200_or_a_400_naming_it(client, raw: str, in_form: bool, effects: str) -> None:
    files: dict = {"file": ("pet.png", IMAGE, "image/png")}
    params = {"effects": effects, "return_all_effects": "true"}
    if in_form:
        files["effect_params"] = (None, raw)
    else:
        params["effect_params"] = raw
    _check(client.post("/api/v2/process-with-effects", params=params, files=files), "effect_params")


@FUZZ
@given(margin=margins, crop=st.booleans())
def test_any_crop_margin_is_200_or_a_400_naming_it(client, margin: str, crop: bool) -> None:
    files = {"file": ("pet.png", IMAGE, "image/png")}
    params = {"crop": str(crop).lower(), "crop_margin": margin}
    _check(client.post("/api/v2/remove-background", params=params, files=files), "crop_margin")
