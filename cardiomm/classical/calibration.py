"""Coil sensitivities for the classical baselines: ESPIRiT (sigpy) on the best-sampled
calibration data a scan offers.

Where the mask changes from frame to frame (ktGaussian, ktRadial) the time-averaged k-space
(sum of the sampled data over frames divided by how often each location was sampled) holds
a fully sampled centre much larger than one frame's ACS block: the standard calibration
source of k-t acquisitions (TSENSE, k-t SENSE). Where every frame has the same mask
(Uniform) the average is the ACS itself. ESPIRiT runs on the largest centred square of the
average that every sample of which was acquired in some frame, capped at
:data:`MAX_CALIBRATION_WIDTH`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# A larger calibration square costs ESPIRiT more and gains nothing for smooth maps.
MAX_CALIBRATION_WIDTH = 32
# Fewer samples than this per side cannot hold an ESPIRiT kernel and its neighbourhood.
MIN_CALIBRATION_WIDTH = 8


class CalibrationError(ValueError):
    """The data hold no usable calibration region (named in the message)."""


@dataclasses.dataclass(frozen=True)
class EspiritSettings:
    """sigpy ESPIRiT's settings (``sigpy.mri.app.EspiritCalib``).

    Attributes:
        kernel_width: k-space kernel side.
        threshold: singular values kept, relative to the largest (``thresh``).
        crop: maps are zero where the eigenvalue is below this (``crop``; 0 keeps all).
        max_iter: power iterations per pixel.
    """

    kernel_width: int = 6
    threshold: float = 0.02
    crop: float = 0.95
    max_iter: int = 30

    def __post_init__(self) -> None:
        if self.kernel_width < 2:
            raise ValueError(f"kernel_width must be >= 2, got {self.kernel_width}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"threshold must lie in (0, 1), got {self.threshold}")
        if not 0 <= self.crop < 1:
            raise ValueError(f"crop must lie in [0, 1), got {self.crop}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be >= 1, got {self.max_iter}")


def time_averaged_kspace(masked_kspace: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """The sampled data averaged over frames, per location: complex (coils, ky, kx).

    Args:
        masked_kspace: complex (frames, coils, ky, kx), zeros where not sampled.
        masks: (frames, ky, kx), 1 / True where sampled.
    """
    _check_cine(masked_kspace, masks)
    counts = np.asarray(masks, dtype=np.float32).sum(axis=0)
    total = (masked_kspace * np.asarray(masks, dtype=np.float32)[:, None]).sum(axis=0)
    return (total / np.maximum(counts, 1.0)).astype(np.complex64)


def calibration_width(masks: np.ndarray) -> int:
    """Side of the largest centred square sampled in at least one frame, capped at
    :data:`MAX_CALIBRATION_WIDTH` (the square starts at ``size // 2 - width // 2``, as the
    ACS block does).

    Raises:
        CalibrationError: the square is smaller than :data:`MIN_CALIBRATION_WIDTH`.
    """
    union = np.asarray(masks).astype(bool).any(axis=0)
    num_ky, num_kx = union.shape
    best = 0
    for width in range(1, min(num_ky, num_kx, MAX_CALIBRATION_WIDTH) + 1):
        rows = slice(num_ky // 2 - width // 2, num_ky // 2 - width // 2 + width)
        columns = slice(num_kx // 2 - width // 2, num_kx // 2 - width // 2 + width)
        if not union[rows, columns].all():
            break
        best = width
    if best < MIN_CALIBRATION_WIDTH:
        raise CalibrationError(
            f"the sampled k-space centre is {best} x {best}: ESPIRiT needs at least "
            f"{MIN_CALIBRATION_WIDTH} x {MIN_CALIBRATION_WIDTH} fully sampled samples"
        )
    return best


def espirit_maps(
    masked_kspace: np.ndarray, masks: np.ndarray, settings: EspiritSettings | None = None
) -> np.ndarray:
    """ESPIRiT sensitivities of a cine slice from its time-averaged k-space.

    Args:
        masked_kspace: complex (frames, coils, ky, kx); one frame for frameless series.
        masks: (frames, ky, kx).
        settings: ESPIRiT's settings.

    Returns:
        complex64 (coils, ky, kx), root-sum-of-squares 1 where the object is (0 where cropped).

    Raises:
        CalibrationError: no usable calibration region.
    """
    from sigpy.mri.app import EspiritCalib

    settings = settings or EspiritSettings()
    width = calibration_width(masks)
    if settings.kernel_width >= width:
        raise CalibrationError(
            f"an ESPIRiT kernel of {settings.kernel_width} does not fit a {width} x {width} "
            "calibration square"
        )
    average = time_averaged_kspace(masked_kspace, masks)
    maps = EspiritCalib(
        average,
        calib_width=width,
        thresh=settings.threshold,
        kernel_width=settings.kernel_width,
        crop=settings.crop,
        max_iter=settings.max_iter,
        show_pbar=False,
    ).run()
    maps = np.asarray(maps, dtype=np.complex64)
    if not np.isfinite(maps).all():
        raise CalibrationError("ESPIRiT returned non-finite maps")
    return maps


def _check_cine(masked_kspace: np.ndarray, masks: np.ndarray) -> None:
    if masked_kspace.ndim != 4 or not np.iscomplexobj(masked_kspace):
        raise ValueError(
            "masked k-space must be complex (frames, coils, ky, kx), got "
            f"{masked_kspace.dtype} {masked_kspace.shape}"
        )
    expected = (masked_kspace.shape[0], *masked_kspace.shape[2:])
    if tuple(np.shape(masks)) != expected:
        raise ValueError(f"masks must be (frames, ky, kx) = {expected}, got {np.shape(masks)}")
