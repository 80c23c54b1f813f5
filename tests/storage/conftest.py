"""Fixtures for the customer image store: sample images, a local app, and a real GCS emulator."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from petcut.storage import ImageStore
from tests.support.images import image_bytes
from tests.support.servers import free_port, poll_until, stop_process
from tests.support.service import make_app


@pytest.fixture(scope="session")
def png() -> bytes:
    return image_bytes("PNG")


@pytest.fixture(scope="session")
def jpeg() -> bytes:
    return image_bytes("JPEG", seed=3)


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


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[str]:
    """A real ``gcp-storage-emulator`` (in memory) for the session; yields its base URL."""
    executable = Path(sys.executable).parent / "gcp-storage-emulator"
    assert executable.exists(), "gcp-storage-emulator is a dev dependency: pip install -e '.[dev]'"
    port = free_port()
    host = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [str(executable), "start", "--host=127.0.0.1", f"--port={port}", "--in-memory", "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k != "STORAGE_EMULATOR_HOST"},
    )
    try:
        poll_until(
            lambda: httpx.get(host + "/", timeout=0.5).status_code == 200,
            "gcp-storage-emulator answering",
            20,
            interval=0.05,
            alive=lambda: proc.poll() is None,
        )
        yield host
    finally:
        stop_process(proc, 5)


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
