"""Differentiable SSIM in torch, the same window and constants as the evaluation."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cardiomm.metrics.image_quality import SSIM_K1, SSIM_K2, SSIM_WINDOW


def ssim_torch(
    reference: torch.Tensor, reconstruction: torch.Tensor, data_range: torch.Tensor | float
) -> torch.Tensor:
    """Per-image SSIM over full 7x7 windows.

    Args:
        reference: real (batch, ky, kx) or (batch, 1, ky, kx).
        reconstruction: same shape as ``reference``.
        data_range: scalar or (batch,) tensor, e.g. each reference's maximum.

    Returns:
        (batch,) SSIM values; equal to :func:`cardiomm.metrics.ssim` in float64.
    """
    if reference.shape != reconstruction.shape:
        raise ValueError(
            f"shapes differ: {tuple(reference.shape)} vs {tuple(reconstruction.shape)}"
        )
    if reference.dim() == 3:
        reference, reconstruction = reference.unsqueeze(1), reconstruction.unsqueeze(1)
    if reference.dim() != 4 or reference.shape[1] != 1:
        raise ValueError(
            f"expected (batch, ky, kx) or (batch, 1, ky, kx), got {tuple(reference.shape)}"
        )
    batch = reference.shape[0]
    data_range = torch.as_tensor(data_range, dtype=reference.dtype, device=reference.device)
    data_range = data_range.reshape(-1, 1, 1, 1).expand(batch, 1, 1, 1)
    # SSIM is unchanged when both images and the data range are scaled together; scaling to
    # a unit range keeps the squares near 1 whatever the vendor's intensity scale is.
    reference = reference / data_range
    reconstruction = reconstruction / data_range
    window_size = SSIM_WINDOW**2
    covariance_norm = window_size / (window_size - 1)

    def local_mean(values: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(values, SSIM_WINDOW, stride=1)

    mean_ref, mean_rec = local_mean(reference), local_mean(reconstruction)
    var_ref = covariance_norm * (local_mean(reference * reference) - mean_ref * mean_ref)
    var_rec = covariance_norm * (local_mean(reconstruction * reconstruction) - mean_rec * mean_rec)
    covariance = covariance_norm * (local_mean(reference * reconstruction) - mean_ref * mean_rec)
    c1 = SSIM_K1**2
    c2 = SSIM_K2**2
    similarity = ((2 * mean_ref * mean_rec + c1) * (2 * covariance + c2)) / (
        (mean_ref**2 + mean_rec**2 + c1) * (var_ref + var_rec + c2)
    )
    return similarity.flatten(1).mean(dim=1)
