"""Shared fixtures for the imaging tests. Every input is built in code; real photos are read in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import PETS as PETS_DIR

PET_FILES = ("Rosie.jpg", "Squid.jpg", "Tex.jpeg", "polly.jpg")


@pytest.fixture(scope="session")
def pets_dir() -> Path:
    if not all((PETS_DIR / name).is_file() for name in PET_FILES):
        pytest.skip(f"real pet photos not found under {PETS_DIR}")
    return PETS_DIR


@pytest.fixture(scope="session")
def mpo_pet(pets_dir: Path) -> Path:
    """Whichever of the pet photos Pillow identifies as MPO (a JPEG with a second image)."""
    for name in PET_FILES:
        with Image.open(pets_dir / name) as im:
            if im.format == "MPO":
                return pets_dir / name
    pytest.skip("none of the pet photos is an MPO")
