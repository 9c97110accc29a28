"""Image quality as the CMRxRecon 2025 evaluation computes it, the ranking selection, and a
torch SSIM loss for training."""

from cardiomm.metrics.image_quality import (
    ImageScores,
    evaluate_image,
    nmse,
    normalize_percentile,
    psnr,
    ssim,
)
from cardiomm.metrics.ranking import (
    evaluate_series,
    ranking_crop,
    ranking_crop_shape,
    ranking_frames,
    ranking_images,
    ranking_slices,
)
from cardiomm.metrics.ssim_loss import ssim_torch

__all__ = [
    "ImageScores",
    "evaluate_image",
    "evaluate_series",
    "nmse",
    "normalize_percentile",
    "psnr",
    "ranking_crop",
    "ranking_crop_shape",
    "ranking_frames",
    "ranking_images",
    "ranking_slices",
    "ssim",
    "ssim_torch",
]
