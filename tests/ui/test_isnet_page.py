"""The web page with the trained IS-Net: a real cut-out, checked on a screenshot.

With the before/after slider at 0 % the cut-out layer covers the whole comparison; on the screenshot
its corners must show the page's transparency checker (the photo's background is gone) and the middle
of the dog must show the dog (opaque). The corners and the dog point are chosen where the photo's own
colours are far from the checker's, so a cut-out that kept the background fails.
"""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageOps
from playwright.sync_api import expect

from petcut.api.app import default_loader
from tests.support.browser import WAIT_MS
from tests.support.shared_data import pet_photo

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHECKER = np.array([[0xD9, 0xDD, 0xE4], [0xFF, 0xFF, 0xFF]], dtype=np.float32)  # style.css .checker
DOG = (0.64, 0.28)  # Squid's black ear, as fractions of (width, height)
CORNERS = [(0.03, 0.97), (0.97, 0.97), (0.97, 0.03)]  # the dark bowl, the cushion, the doorway


def window(image: np.ndarray, fx: float, fy: float, radius: int = 3) -> np.ndarray:
    """The pixels (N×3, float) of a small square around the point at fractions (fx, fy)."""
    height, width = image.shape[:2]
    y, x = int(fy * (height - 1)), int(fx * (width - 1))
    patch = image[max(0, y - radius) : y + radius + 1, max(0, x - radius) : x + radius + 1, :3]
    return patch.reshape(-1, 3).astype(np.float32)


def checker_share(pixels: np.ndarray, tolerance: float = 12.0) -> float:
    """The share of ``pixels`` showing one of the checker's two colours (the checker's squares have hard
    edges, so each pixel is compared, never their mean)."""
    distances = np.linalg.norm(pixels[:, None, :] - CHECKER[None], axis=2).min(axis=1)
    return float(np.mean(distances <= tolerance))


def test_page_shows_a_real_cutout(live_server: Any, page_factory: Any, isnet_weights_dir: Path, tmp_path: Path) -> None:
    photo_path = pet_photo("Squid.jpg")
    with Image.open(photo_path) as image:
        photo = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
    # the chosen points make the check meaningful: there, the photo itself looks nothing like the checker
    assert checker_share(window(photo, *DOG), tolerance=40) == 0
    for corner in CORNERS:
        assert checker_share(window(photo, *corner), tolerance=40) == 0, corner

    server = live_server(default_loader, model="isnet", weights_dir=isnet_weights_dir, inference_timeout_s=120,
                         queue_timeout_s=120, warmup_wait_s=120)  # fmt: skip
    server.wait_ready(timeout=240)
    page = page_factory(viewport={"width": 1280, "height": 1000})
    page.goto(server.url + "/ui/")
    expect(page.locator("#model-state")).to_have_attribute("data-state", "ready", timeout=WAIT_MS)
    page.get_by_label("Choose a pet photo").set_input_files(photo_path)
    expect(page.locator("#results-summary")).to_contain_text("Done in", timeout=120_000)
    page.wait_for_function(
        "() => ['compare-before', 'compare-after-img'].every(id => { const i = document.getElementById(id);"
        " return i.complete && i.naturalWidth > 0; })"
    )
    slider = page.get_by_label(re.compile("Before / after"))
    slider.focus()
    page.keyboard.press("Home")  # the cut-out over the whole stage
    expect(page.locator("#compare-after")).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 0%\)"))
    shot = page.locator("#compare-stage").screenshot(path=str(tmp_path / "isnet-cutout.png"))
    screen = np.asarray(Image.open(BytesIO(shot)).convert("RGB"))
    # the stage has a 1 px border: look just inside it
    screen = screen[2:-2, 2:-2]

    for corner in CORNERS:
        assert checker_share(window(screen, *corner)) >= 0.9, f"corner {corner} is not transparent"
    dog = window(screen, *DOG)
    assert checker_share(dog, tolerance=40) == 0, "the dog is not opaque"
    difference = float(np.linalg.norm(dog.mean(axis=0) - window(photo, *DOG).mean(axis=0)))
    assert difference < 40, "the dog does not look like the photo's dog"
