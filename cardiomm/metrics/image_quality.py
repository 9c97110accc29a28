"""PSNR, SSIM and NMSE of one 2D magnitude image, as the CMRxRecon 2025 evaluation does them.

The challenge divides the reference and the reconstruction each by its own 99.5th percentile,
then scores with data range = the maximum of the normalised reference; SSIM uses a 7x7 uniform
window with sample covariance, K1 = 0.01, K2 = 0.03 (scikit-image's defaults).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy.ndimage import uniform_filter

NORMALISATION_PERCENTILE = 99.5
SSIM_WINDOW = 7
SSIM_K1 = 0.01
SSIM_K2 = 0.03


@dataclasses.dataclass(frozen=True)
class ImageScores:
    """Scores of one reconstruction against its reference."""

    psnr: float
    ssim: float
    nmse: float


def normalize_percentile(image: np.ndarray) -> np.ndarray:
    """|image| / its 99.5th percentile, float64; an all-zero image is returned unscaled."""
    magnitude = np.abs(np.asarray(image)).astype(np.float64)
    scale = np.percentile(magnitude, NORMALISATION_PERCENTILE)
    return magnitude if scale == 0 else magnitude / scale


def psnr(
    reference: np.ndarray, reconstruction: np.ndarray, data_range: float | None = None
) -> float:
    """Peak signal-to-noise ratio in dB; data range defaults to the reference's maximum."""
    reference, reconstruction = _as_float_pair(reference, reconstruction)
    data_range = float(reference.max()) if data_range is None else float(data_range)
    mse = float(np.mean((reference - reconstruction) ** 2))
    if mse == 0.0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def ssim(
    reference: np.ndarray, reconstruction: np.ndarray, data_range: float | None = None
) -> float:
    """Mean structural similarity over all full 7x7 windows of two 2D images (ky, kx)."""
    reference, reconstruction = _as_float_pair(reference, reconstruction)
    if reference.ndim != 2 or min(reference.shape) < SSIM_WINDOW:
        raise ValueError(
            f"ssim needs 2D images of at least {SSIM_WINDOW}x{SSIM_WINDOW}, got {reference.shape}"
        )
    data_range = float(reference.max()) if data_range is None else float(data_range)
    window_size = SSIM_WINDOW**2
    covariance_norm = window_size / (window_size - 1)  # unbiased (sample) covariance

    def local_mean(values: np.ndarray) -> np.ndarray:
        return uniform_filter(values, size=SSIM_WINDOW)

    mean_ref, mean_rec = local_mean(reference), local_mean(reconstruction)
    var_ref = covariance_norm * (local_mean(reference * reference) - mean_ref * mean_ref)
    var_rec = covariance_norm * (local_mean(reconstruction * reconstruction) - mean_rec * mean_rec)
    covariance = covariance_norm * (local_mean(reference * reconstruction) - mean_ref * mean_rec)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    similarity = ((2 * mean_ref * mean_rec + c1) * (2 * covariance + c2)) / (
        (mean_ref**2 + mean_rec**2 + c1) * (var_ref + var_rec + c2)
    )
    # Only windows that lie wholly inside the image count (no dependence on edge padding).
    border = (SSIM_WINDOW - 1) // 2
    return float(similarity[border:-border, border:-border].mean(dtype=np.float64))


def nmse(reference: np.ndarray, reconstruction: np.ndarray) -> float:
    """Normalised mean squared error ||ref - rec||^2 / ||ref||^2."""
    reference, reconstruction = _as_float_pair(reference, reconstruction)
    return float(np.sum((reference - reconstruction) ** 2) / np.sum(reference**2))


def evaluate_image(reference: np.ndarray, reconstruction: np.ndarray) -> ImageScores:
    """Official scores of one 2D magnitude reconstruction (ky, kx) against its reference.

    Each image is divided by its own 99.5th percentile first; data range = the maximum of
    the normalised reference.
    """
    reference_normalised = normalize_percentile(reference)
    reconstruction_normalised = normalize_percentile(reconstruction)
    data_range = float(reference_normalised.max())
    return ImageScores(
        psnr=psnr(reference_normalised, reconstruction_normalised, data_range),
        ssim=ssim(reference_normalised, reconstruction_normalised, data_range),
        nmse=nmse(reference_normalised, reconstruction_normalised),
    )


def _as_float_pair(
    reference: np.ndarray, reconstruction: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    reference = np.asarray(reference, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    if reference.shape != reconstruction.shape:
        raise ValueError(
            f"reference {reference.shape} and reconstruction {reconstruction.shape} differ in shape"
        )
    return reference, reconstruction
