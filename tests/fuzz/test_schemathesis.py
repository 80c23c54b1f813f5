"""Contract fuzzing: schemathesis against the app's own OpenAPI schema, in-process (ASGI), with a fake
segmenter and the model ready: no 5xx, and every response conforms to the schema (status code
documented, content type, headers, body schema).

Checks: ``not_a_server_error``, status code / content type / headers / body schema conformance, and
``negative_data_rejection`` (a request the schema calls invalid gets a 4xx) except for multipart bodies,
where form semantics are lenient on purpose (a repeated text field counts once, an empty optional field
is absent) and schemathesis calls those "schema-violating". Not run:
``positive_data_acceptance`` (a schema cannot say "a decodable image": schema-valid junk bytes get 415/422
by design) and ``unsupported_method`` (see docs/security.md, "Fuzzing": the 405 Allow header of routes
registered twice, such as GET+POST /warmup, names one method).

Multipart ``file`` parts are schemathesis's bytes (→ 4xx) or, for half the cases (chosen from the
bytes, so a case replays identically), a real tiny image so the 2xx paths are validated too. Bounded and
deterministic in CI: ``FUZZ_EXAMPLES`` per operation (default 25), derandomized unless
``FUZZ_EXPLORE=1``; about ten seconds in all.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import zlib
from io import BytesIO
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from PIL import Image
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from petcut.api import create_app
from petcut.model.runtime import State
from tests.support.fakes import Loader
from tests.support.service import fuzz_settings

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
EXPLORE = os.environ.get("FUZZ_EXPLORE") == "1"


def _image(fmt: str, mode: str = "RGB") -> bytes:
    buffer = BytesIO()
    Image.new(mode, (12, 9), (200, 120, 40) if mode == "RGB" else (200, 120, 40, 128)).save(buffer, fmt)
    return buffer.getvalue()


IMAGES = [_image("PNG", "RGBA"), _image("JPEG"), _image("WEBP"), _image("GIF")]


def _schema() -> dict:
    root = Path(tempfile.mkdtemp(prefix="petcut-schema-"))
    try:
        return create_app(fuzz_settings(root), load_segmenter=Loader()).openapi()
    finally:
        shutil.rmtree(root, ignore_errors=True)


schema = schemathesis.openapi.from_dict(_schema())


@pytest.fixture
def app(tmp_path: Path):
    """A fresh app per operation (schemathesis's plugin ends every ASGI lifespan when a test ends)."""
    app = create_app(fuzz_settings(tmp_path), load_segmenter=Loader())
    with asgi.get_client(app) as client:  # starts the lifespan
        assert client.get("/health").status_code == 200
    deadline = time.monotonic() + 30
    while app.state.runtime.state is not State.READY:
        assert time.monotonic() < deadline, "the fake model never became ready"
        time.sleep(0.02)
    return app


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=not EXPLORE,
    database=None,
)
def test_api_contract(case, app) -> None:
    multipart = (case.media_type or "").startswith("multipart/")
    if isinstance(case.body, dict) and isinstance(case.body.get("file"), bytes):
        pick = zlib.crc32(case.body["file"]) % (2 * len(IMAGES))
        if pick < len(IMAGES):
            case.body["file"] = IMAGES[pick]
    case.call_and_validate(app=app, checks=CHECKS if multipart else [*CHECKS, negative_data_rejection])
