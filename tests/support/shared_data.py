"""The data beside the checkout: the shop's pet photos and the labelled photos (``../shared/data``).

A clone with nothing beside it still passes: every test that needs these photos asks for them here, and
is skipped with the reason when they are absent (see docs/architecture.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
PETS = SHARED_DATA / "pets"
LABELLED = SHARED_DATA / "labelled"
PHOTO_SUFFIXES = (".jpg", ".jpeg")


def pets_dir(*required: str) -> Path:
    """The shop's pet photos (``PETCUT_TEST_PETS`` or ``../shared/data/pets``, read-only), holding every
    file named in ``required``. Called in a test or a fixture: without them the test is skipped."""
    env = os.environ.get("PETCUT_TEST_PETS")
    path = Path(env) if env else PETS
    if not path.is_dir():
        pytest.skip(f"the shop's pet photos are not at {path} (../shared is absent beside this checkout)")
    missing = [name for name in required if not (path / name).is_file()]
    if missing:
        pytest.skip(f"the shop's pet photos {missing} are not in {path}")
    return path


def pet_photo(name: str) -> Path:
    """One of the shop's photos by name (skips as :func:`pets_dir` does)."""
    return pets_dir(name) / name


def pet_photos() -> list[Path]:
    """Every JPEG among the shop's photos, sorted (skips as :func:`pets_dir` does)."""
    return sorted(p for p in pets_dir().iterdir() if p.suffix.lower() in PHOTO_SUFFIXES)


def labelled_dir() -> Path:
    """The labelled photos (Oxford-IIIT Pet, ``../shared/data/labelled``), or skip saying where they were
    looked for."""
    if not LABELLED.is_dir():
        pytest.skip(f"the labelled photos are not at {LABELLED} (../shared is absent beside this checkout)")
    return LABELLED


def persistent_cache_dir() -> Path:
    """Downloads the tests keep between runs (CI caches it): PETCUT_TEST_CACHE or ~/.cache/petcut-test."""
    return Path(os.environ.get("PETCUT_TEST_CACHE") or Path.home() / ".cache" / "petcut-test")
