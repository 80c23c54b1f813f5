"""Shared fixtures for the imaging tests. Every input is built in code; real photos are read in place."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.support import shared_data

PET_FILES = ("Rosie.jpg", "Squid.jpg", "Tex.jpeg", "polly.jpg")


@pytest.fixture(scope="session")
def pets_dir() -> Path:
    """The shop's photos, all four of ``PET_FILES`` among them (skipped otherwise)."""
    return shared_data.pets_dir(*PET_FILES)


@pytest.fixture(scope="session")
def mpo_pet(pets_dir: Path) -> Path:
    """Whichever of the pet photos Pillow identifies as MPO (a JPEG with a second image)."""
    for name in PET_FILES:
        with Image.open(pets_dir / name) as im:
            if im.format == "MPO":
                return pets_dir / name
    pytest.skip("none of the pet photos is an MPO")
