"""A real server whose fake model is slow only for images 333 pixels wide (issue 15's drain tests):
warmup and ordinary requests are quick, so the usual job duration is known and small."""

from __future__ import annotations

import os
import time

import numpy as np

from petcut.config import Settings
from petcut.model.base import Segmenter
from tests.api.fakes import FakeSegmenter, ellipse_alpha
from tests.api.server_process import ServerProcess

SLOW_WIDTH = 333

SCRIPT = """
from petcut.api.server import run
from tests.api.hardening_server import marked_slow_loader
run(load_segmenter=marked_slow_loader)
"""


class MarkedSlowSegmenter(FakeSegmenter):
    def __init__(self, slow_s: float) -> None:
        super().__init__()
        self.slow_s = slow_s

    def predict_alpha(self, rgb: np.ndarray) -> np.ndarray:
        if rgb.shape[1] == SLOW_WIDTH:
            time.sleep(self.slow_s)
        return ellipse_alpha(*rgb.shape[:2])


def marked_slow_loader(settings: Settings) -> Segmenter:
    return MarkedSlowSegmenter(float(os.environ.get("PETCUT_TEST_SLOW_S", "30")))


class HardeningServer(ServerProcess):
    script = SCRIPT
