"""Fixtures for the customer image store: sample images, a local app, and a real GCS emulator."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from petcut.api import create_app
from petcut.config import Settings
from petcut.storage import ImageStore


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (24, 16), seed: int = 0) -> bytes:
    image = Image.new("RGB", size)
    image.putdata(
        [
            ((x * 7 + seed) % 256, (y * 13 + seed) % 256, (x * y + seed) % 256)
            for y in range(size[1])
            for x in range(size[0])
        ]
    )
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def png() -> bytes:
    return image_bytes("PNG")


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return image_bytes("JPEG", seed=3)


def make_app(store: ImageStore | None) -> FastAPI:
    """The real app (its model never loads: no lifespan runs) with ``store`` as its image store."""
    app = create_app(Settings(skip_model_preload=True), load_segmenter=_no_model)
    app.state.image_store = store
    return app


def _no_model(settings: Settings):
    raise AssertionError("storage tests never load the model")


@pytest.fixture
def client_for() -> Iterator[Callable[[ImageStore | None], TestClient]]:
    clients: list[TestClient] = []

    def build(store: ImageStore | None) -> TestClient:
        client = TestClient(make_app(store))
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """A real ``gcp-storage-emulator`` (in memory) for the session; yields its base URL."""
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    assert executable.exists(), "gcp-storage-emulator is a dev dependency: pip install -e '.[dev]'"
    port = _free_port()
    host = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(executable), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"},
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            if proc.poll() is not None:
                pytest.fail(f"gcp-storage-emulator exited with {proc.returncode}")
            try:
                if httpx.get(host + "/", timeout=0.5).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("gcp-storage-emulator did not answer within 20 s")
            time.sleep(0.05)
        yield host
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def gcs_bucket(gcs_emulator: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket on the emulator, with ``STORAGE_EMULATOR_HOST`` pointing at it for this test."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator)
    name = f"petcut-test-{uuid.uuid4().hex[:12]}"
    client = storage.Client(project="petcut-test", credentials=AnonymousCredentials())
    client.create_bucket(name)
    client.close()
    return name
