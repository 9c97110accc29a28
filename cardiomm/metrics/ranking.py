"""Which images of a series the CMRxRecon 2025 ranking scores, and its centre crop.

The official scripts are MATLAB: slice indices are 1-based there and ``round`` sends halves
away from zero; the functions here return 0-based indices with the same picks.
"""

from __future__ import annotations

import math

import numpy as np

from cardiomm.metrics.image_quality import ImageScores, evaluate_image

RANKED_FIRST_FRAMES = 3


def matlab_round(value: float) -> int:
    """MATLAB's round for non-negative values: halves go up (2.5 -> 3), unlike Python's."""
    return math.floor(value + 0.5)


def ranking_slices(num_slices: int) -> list[int]:
    """The two central slices when there are 3 or more, else all (0-based)."""
    if num_slices < 3:
        return list(range(num_slices))
    upper = matlab_round(num_slices / 2)  # MATLAB slices round(nz/2)-1 and round(nz/2), 1-based
    return [upper - 2, upper - 1]


def ranking_frames(num_frames: int, is_mapping: bool) -> list[int]:
    """All frames of a mapping series, else the first min(3, frames) (0-based)."""
    if is_mapping:
        return list(range(num_frames))
    return list(range(min(RANKED_FIRST_FRAMES, num_frames)))


def ranking_images(num_frames: int, num_slices: int, is_mapping: bool) -> list[tuple[int, int]]:
    """(frame, slice) pairs that the ranking scores."""
    return [
        (frame, slice_index)
        for slice_index in ranking_slices(num_slices)
        for frame in ranking_frames(num_frames, is_mapping)
    ]


def ranking_crop_shape(
    num_ky: int, num_kx: int, oversampling_removed: bool = False
) -> tuple[int, int]:
    """(round(ny / 2), round(nx / 3)): the ranked region; nx is the 2x-oversampled readout.

    With ``oversampling_removed`` the readout was already halved, and the same anatomy is
    kept: round(2 nx / 3).
    """
    readout = 2 * num_kx if oversampling_removed else num_kx
    return matlab_round(num_ky / 2), matlab_round(readout / 3)


def ranking_crop(image: np.ndarray, oversampling_removed: bool = False) -> np.ndarray:
    """Centre crop of (..., ky, kx) to :func:`ranking_crop_shape`."""
    num_ky, num_kx = image.shape[-2:]
    crop_ky, crop_kx = ranking_crop_shape(num_ky, num_kx, oversampling_removed)
    start_ky = num_ky // 2 - crop_ky // 2
    start_kx = num_kx // 2 - crop_kx // 2
    return image[..., start_ky : start_ky + crop_ky, start_kx : start_kx + crop_kx]


def evaluate_series(
    reference: np.ndarray,
    reconstruction: np.ndarray,
    is_mapping: bool,
    crop: bool = True,
    oversampling_removed: bool = False,
) -> ImageScores:
    """Per-file scores: the mean over the ranked images of a series.

    Args:
        reference: magnitude images (frames, slices, ky, kx) of the fully sampled RSS.
        reconstruction: the same shape.
        is_mapping: whether every frame is scored (see ``metadata.is_mapping_series``).
        crop: apply the ranking's centre crop first.
        oversampling_removed: the readout was halved already (see :func:`ranking_crop`).
    """
    if reference.shape != reconstruction.shape or reference.ndim != 4:
        raise ValueError(
            "evaluate_series expects two (frames, slices, ky, kx) arrays of one shape, got "
            f"{reference.shape} and {reconstruction.shape}"
        )
    num_frames, num_slices = reference.shape[:2]
    scores = []
    for frame, slice_index in ranking_images(num_frames, num_slices, is_mapping):
        ref_image = reference[frame, slice_index]
        rec_image = reconstruction[frame, slice_index]
        if crop:
            ref_image = ranking_crop(ref_image, oversampling_removed)
            rec_image = ranking_crop(rec_image, oversampling_removed)
        scores.append(evaluate_image(ref_image, rec_image))
    return ImageScores(
        psnr=float(np.mean([s.psnr for s in scores])),
        ssim=float(np.mean([s.ssim for s in scores])),
        nmse=float(np.mean([s.nmse for s in scores])),
    )
