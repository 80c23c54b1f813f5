"""The web page shows the Display P3 photo's cut-out in the right colours (a browser screenshot).

``Squid.jpg`` is an iPhone photo with a Display P3 profile. The cut-out on /ui/ must look like the photo
converted to sRGB: a screenshot of the before/after stage (the cut-out over the whole stage, at the photo's
own size) is compared, inside the subject (the fake model's ellipse, fully opaque), with the reference
conversion (without LittleCMS, tests/imaging/icc.py), not with the P3 numbers petcut used to send.
"""

from __future__ import annotations

import re
from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.support import icc
from tests.support.browser import WAIT_MS, LiveServer
from tests.support.shared_data import pet_photo

pytestmark = pytest.mark.browser


def squid() -> Path:
    return pet_photo("Squid.jpg")


def interior(height: int, width: int) -> np.ndarray:
    """Pixels well inside the fake model's ellipse (radii a third of each side): alpha 1 there."""
    yy, xx = np.mgrid[0:height, 0:width]
    cy, cx = (height - 1) / 2, (width - 1) / 2
    return ((yy - cy) / (height / 3 * 0.8)) ** 2 + ((xx - cx) / (width / 3 * 0.8)) ** 2 <= 1


def aligned(screenshot: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """|screenshot − reference| inside the subject, at the best of the screenshot's ±1 px placements (a
    fractional layout position adds a row or column to an element screenshot)."""
    height, width = reference.shape[:2]
    inside = interior(height, width)
    best = None
    for dy in range(screenshot.shape[0] - height + 1):
        for dx in range(screenshot.shape[1] - width + 1):
            crop = screenshot[dy : dy + height, dx : dx + width].astype(np.float64)
            diff = np.abs(crop - reference)[inside]
            if best is None or diff.mean() < best.mean():
                best = diff
    assert best is not None, (screenshot.shape, reference.shape)
    return best


def test_p3_photo_cutout_is_shown_in_srgb(ready_server: LiveServer, page_factory: Any, tmp_path: Path) -> None:
    path = squid()
    with Image.open(path) as image:
        stored = np.asarray(image.convert("RGB"))
        p3 = image.info["icc_profile"]
    converted = np.clip(np.rint(icc.reference_to_srgb(stored, p3, icc.srgb_decode)), 0, 255)

    page = page_factory(viewport={"width": 1600, "height": 1200}, device_scale_factor=1)
    page.goto(ready_server.url + "/ui/")
    expect(page.locator("#effects-list input[type=checkbox]").first).to_be_visible(timeout=WAIT_MS)
    page.get_by_label("Choose a pet photo").set_input_files(path)
    after = page.locator("#compare-after-img")  # the before/after stage: the photo at its own size
    expect(after).to_be_visible(timeout=WAIT_MS)
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=after.element_handle(), timeout=WAIT_MS)
    page.get_by_label(re.compile("Before / after")).focus()
    page.keyboard.press("Home")  # the cut-out over the whole stage
    expect(page.locator("#compare-after")).to_have_attribute("style", re.compile(r"inset\(0(px)? 0(px)? 0(px)? 0%\)"))
    box = after.bounding_box()
    assert box is not None and (round(box["width"]), round(box["height"])) == stored.shape[1::-1], box  # 1:1
    shot = np.asarray(Image.open(BytesIO(after.screenshot(animations="disabled"))).convert("RGB"))
    Image.fromarray(shot).save(tmp_path / "cutout-stage.png")

    to_converted = aligned(shot, converted)
    assert to_converted.mean() <= 0.5 and np.percentile(to_converted, 99) <= 1, (
        to_converted.mean(),
        np.percentile(to_converted, 99),
    )
    # what petcut showed before colour management: the P3 numbers as if they were sRGB
    to_unconverted = aligned(shot, stored.astype(np.float64))
    assert to_unconverted.mean() >= 1.0 and np.percentile(to_unconverted, 99) >= 5, to_unconverted.mean()
