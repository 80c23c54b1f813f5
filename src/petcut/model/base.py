"""The contract between the model and everything above it."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

#: an RGB image: uint8 H×W×3
RGBImage = NDArray[np.uint8]
#: a foreground alpha matte: float32 H×W in [0, 1]
AlphaMatte = NDArray[np.float32]


@runtime_checkable
class Segmenter(Protocol):
    """Predicts a foreground alpha matte. Test fakes implement this too."""

    @property
    def description(self) -> str:
        """Short description of what runs (e.g. "InSPyReNet fast/static on cpu fp32")."""
        ...

    def predict_alpha(self, rgb: RGBImage) -> AlphaMatte:
        """``rgb``: uint8 H×W×3. Returns float32 H×W in [0, 1] at the input's resolution."""
        ...


class ModelError(Exception):
    """Base of model errors. ``transient`` errors may be retried; others may not."""

    transient = False


class WeightsMissingError(ModelError):
    """No checkpoint where one was expected; the message says how to provide one."""


class ChecksumMismatchError(ModelError):
    """The checkpoint's md5 differs from the published one."""


class CheckpointInvalidError(ModelError):
    """The file is not a loadable InSPyReNet checkpoint (corrupt, wrong architecture)."""


class ArtifactUnusableError(ModelError):
    """PETCUT_ENGINE=openvino, but the prepared OpenVINO artifact is missing, stale or corrupt."""


class DeviceUnavailableError(ModelError):
    """The configured device does not exist on this machine."""


class DownloadError(ModelError):
    """Downloading weights failed (offline, HTTP error); transient by nature."""

    transient = True


class DeviceFault(ModelError):
    """A non-recoverable accelerator error (illegal memory access, device-side assert)."""


class OutOfMemory(ModelError):
    """The accelerator ran out of memory for this request; the next may succeed."""

    transient = True
