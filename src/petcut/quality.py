"""Cut-out quality on a labelled set, and IS-Net's published recipe run standalone as the reference.

The labelled set (``shared/data/labelled``, Oxford-IIIT Pet) pairs each photo with a palette PNG:
``0`` background, ``1``/``2`` the pet, ``255`` an undecided border band left out of every score.
:func:`score` gives the IoU of ``alpha ≥ 0.5`` against the pet and the mean absolute error of the alpha,
over the decided pixels. :func:`standalone_isnet` runs an IS-Net ONNX file the way its publisher does
(ONNX Runtime, OpenCV bilinear, ``(v − 128) / 256``) with no petcut code, so that a loss anywhere in
petcut's pipeline shows up as a difference. Used by ``bench/quality.py`` and the tests; not by the service.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PET_CLASSES = (1, 2)
UNDECIDED = 255


@dataclass(frozen=True)
class Score:
    iou: float
    mae: float


@dataclass(frozen=True)
class LabelledPhoto:
    name: str
    photo: Path
    label: Path

    def label_array(self) -> np.ndarray:
        from PIL import Image

        with Image.open(self.label) as image:
            return np.array(image)


def labelled_photos(directory: Path) -> list[LabelledPhoto]:
    """Every photo in ``directory`` with a label of the same stem in ``directory/label``."""
    photos = []
    for photo in sorted(directory.iterdir()):
        label = directory / "label" / f"{photo.stem}.png"
        if photo.suffix.lower() in (".jpg", ".jpeg", ".png") and label.is_file():
            photos.append(LabelledPhoto(photo.stem, photo, label))
    return photos


def score(alpha: np.ndarray, label: np.ndarray) -> Score:
    """IoU of ``alpha ≥ 0.5`` and MAE of ``alpha`` against the pet, over the decided pixels only."""
    if alpha.shape != label.shape:
        raise ValueError(f"alpha {alpha.shape} and label {label.shape} differ in size")
    decided = label != UNDECIDED
    pet = np.isin(label, PET_CLASSES)[decided]
    values = np.asarray(alpha, dtype=np.float64)[decided]
    predicted = values >= 0.5
    union = np.count_nonzero(predicted | pet)
    iou = np.count_nonzero(predicted & pet) / union if union else 1.0
    return Score(iou=float(iou), mae=float(np.abs(values - pet).mean()))


def standalone_isnet(onnx_path: Path, threads: int | None = None) -> Callable[[NDArray[np.uint8]], NDArray[np.float32]]:
    """The published recipe as a function ``rgb (uint8 H×W×3) → alpha (float32 H×W)``: ONNX Runtime on the
    CPU, the photo stretched to 1024×1024 with OpenCV bilinear, ``(v − 128) / 256``, the sigmoid output
    ``output`` resized back with OpenCV bilinear. Needs ``onnxruntime`` (a dev dependency)."""
    import cv2
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def predict(rgb: NDArray[np.uint8]) -> NDArray[np.float32]:
        height, width = rgb.shape[:2]
        x = cv2.resize(rgb, (1024, 1024), interpolation=cv2.INTER_LINEAR).astype(np.float32)
        x = ((x - 128.0) / 256.0).transpose(2, 0, 1)[None]
        (out,) = session.run(["output"], {"input": x})
        resized = cv2.resize(out[0, 0], (width, height), interpolation=cv2.INTER_LINEAR)
        alpha: NDArray[np.float32] = np.clip(resized, 0.0, 1.0)
        return alpha

    return predict
