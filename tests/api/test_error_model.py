"""The one error model: every PetcutError is documented under its status, and a 413 from any layer is
the same envelope (docs/api.md, "Every response")."""

from __future__ import annotations

import asyncio
import copy
import gc
import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

import petcut.api.app  # noqa: F401  (every module that defines errors, as the service imports them)
from petcut import errors
from petcut.api.errors import (
    REQUEST_ID_KEY,
    BodyTooLarge,
    ErrorEnvelope,
    envelope,
    install_error_handlers,
    send_error,
)
from petcut.api.openapi import error_catalogue, error_document, error_responses
from petcut.errors import PetcutError, error_classes
from petcut.imaging import errors as imaging_errors
from petcut.storage import errors as storage_errors


def _example_codes(status: int) -> set[str]:
    return set(error_document(status)["content"]["application/json"]["examples"])


def test_every_error_class_is_in_the_catalogue_under_each_of_its_statuses() -> None:
    catalogue = error_catalogue()
    classes = list(error_classes())
    assert len(classes) > 20, classes  # the layers' errors are all PetcutErrors
    for cls in classes:
        for status in (cls.status, *cls.other_statuses):
            assert cls in catalogue[status], (cls, status)
            assert cls.code in _example_codes(status), (cls, status)
            assert f"`{cls.code}`" in error_document(status)["description"]


def test_the_layers_errors_have_their_status_on_the_class() -> None:
    from petcut.effects import EffectParamError, UnknownEffectError
    from petcut.model.runtime_errors import DeadlineExceeded, Unavailable
    from petcut.pipeline import NoSubjectError

    expected = {
        imaging_errors.UnsupportedImageFormat: 415,
        imaging_errors.ImageDecodeError: 422,
        storage_errors.ImageNotFound: 404,
        storage_errors.StorageUnavailable: 503,
        UnknownEffectError: 400,
        EffectParamError: 400,
        Unavailable: 503,
        DeadlineExceeded: 504,
        NoSubjectError: 422,
    }
    for cls, status in expected.items():
        assert issubclass(cls, PetcutError) and cls.status == status, cls
    assert issubclass(storage_errors.ImageNotFound, LookupError)
    assert issubclass(storage_errors.InvalidIdentifier, ValueError)
    assert issubclass(NoSubjectError, ValueError) and issubclass(UnknownEffectError, ValueError)


def test_a_class_defined_later_is_documented_when_the_schema_is_written() -> None:
    documented = error_responses(418)

    class Teapot(PetcutError):
        status = 418
        code = "teapot"
        description = "Short and stout."
        response_headers = ("Retry-After",)

    try:
        written = copy.deepcopy(documented[418])  # what FastAPI does when it writes the schema
        assert "teapot" in written["content"]["application/json"]["examples"]
        assert "Short and stout." in written["description"]
        assert written["headers"]["Retry-After"]["required"] is True
        assert written["model"] is ErrorEnvelope
    finally:
        del Teapot
        gc.collect()
    assert 418 not in error_catalogue()


def test_the_service_schema_documents_its_errors_by_code() -> None:
    from petcut.api import create_app
    from petcut.config import Settings

    schema = create_app(Settings(), load_segmenter=lambda settings: None).openapi()  # type: ignore[arg-type,return-value]
    remove = schema["paths"]["/api/v2/remove-background"]["post"]["responses"]
    codes_413 = set(remove["413"]["content"]["application/json"]["examples"])
    assert {"payload_too_large", "too_many_pixels"} <= codes_413
    assert "no_subject_found" in remove["422"]["content"]["application/json"]["examples"]
    assert remove["503"]["headers"]["Retry-After"]["required"] is True
    assert remove["503"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorEnvelope")


# --- one 413 -----------------------------------------------------------------------------------------------
TOO_LARGE = {
    "api": BodyTooLarge(1024),
    "shared": errors.PayloadTooLarge(),
    "imaging": imaging_errors.PayloadTooLarge(),
    "storage": storage_errors.PayloadTooLarge("The image is larger than the upload limit (1024 bytes)."),
}


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/raise/{layer}")
    async def raise_it(layer: str) -> None:
        raise TOO_LARGE[layer]

    return app


def _shape(body: dict) -> tuple:
    return (tuple(sorted(body)), tuple(sorted(body["error"])), body["success"], body["error"]["code"])


def test_a_413_from_every_layer_is_the_same_envelope() -> None:
    assert all(isinstance(error, errors.PayloadTooLarge) for error in TOO_LARGE.values())
    with TestClient(_app()) as client:
        shapes = set()
        for layer in TOO_LARGE:
            response = client.get(f"/raise/{layer}")
            assert response.status_code == 413, (layer, response.text)
            assert response.headers["content-type"] == "application/json"
            body = response.json()
            ErrorEnvelope.model_validate(body)
            assert body["error"]["message"], body
            shapes.add(_shape(body))
    assert shapes == {(("error", "success"), ("code", "message", "request_id"), False, "payload_too_large")}


def test_send_error_writes_the_same_envelope_as_the_handler() -> None:
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(send_error(send, BodyTooLarge(), "abc123", {"X-Request-ID": "abc123"}))  # type: ignore[arg-type]
    start, body = sent
    assert start["status"] == 413
    assert (b"x-request-id", b"abc123") in start["headers"]
    assert json.loads(body["body"]) == envelope(
        "payload_too_large", "The request body is larger than the upload limit.", "abc123"
    )
    assert REQUEST_ID_KEY  # the edge layer's scope key stays importable


@pytest.mark.parametrize("status", [503])
def test_a_503_always_carries_retry_after_and_a_state(status: int) -> None:
    with TestClient(_app()) as client:
        TOO_LARGE["unavailable"] = storage_errors.StorageUnavailable()
        try:
            response = client.get("/raise/unavailable")
        finally:
            del TOO_LARGE["unavailable"]
    assert response.status_code == status
    body = response.json()
    assert body["retry_after"] == int(response.headers["retry-after"]) == 5
    assert body["status"] == "unavailable" and body["error"]["code"] == "storage_unavailable"
