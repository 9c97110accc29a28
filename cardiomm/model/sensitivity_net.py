"""Coil sensitivities learned from the autocalibration (ACS) region of the k-space."""

from __future__ import annotations

import math

import torch
from torch import nn

from cardiomm.model.calibration import estimate_sensitivities_from_frames, time_averaged_kspace
from cardiomm.model.sensitivities import acs_bounds, normalise_by_rss, rectangle_mask
from cardiomm.model.unet import NormalisedUNet, UNetConfig
from cardiomm.physics import (
    channels_to_complex,
    complex_to_channels,
    crop_kspace_centre,
    fft2c,
    ifft2c,
    pad_kspace_centre,
)

# Smallest side of the calibration grid the U-Net runs on (its three stride-2 levels need
# room), in k-space samples; the full matrix when that is smaller.
MIN_CALIBRATION_SIZE = 16


class SensitivityNetwork(nn.Module):
    """A small text-conditioned U-Net refines each coil's ACS image; the result is normalised
    so that the root-sum-of-squares over coils is 1.

    The ACS block holds only low frequencies, so the coil images are formed, and refined, on
    the calibration grid (:func:`calibration_grid`): the central k-space block of the ACS
    region, with the same resolution along ky and kx. The refined maps are brought to the
    full matrix by zero-padding their k-space (sinc interpolation), which keeps them as
    smooth as coil sensitivities are, at a small fraction of the cost of a full-resolution
    U-Net per coil (a 20 x 21 block of a 246 x 256 cine). Untrained, the U-Net adds nothing
    and the maps are the low-resolution estimate from that block.

    Args:
        config: U-Net sizes (conditioning flags included).
        coil_batching: run all coils as one batch (fast). Differential privacy needs it off:
            Opacus takes the first axis as the per-example axis, so coils run one call each.
    """

    def __init__(self, config: UNetConfig, coil_batching: bool = True) -> None:
        super().__init__()
        self.unet = NormalisedUNet(2, 2, config)
        self.coil_batching = coil_batching

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        undersampling: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Coil sensitivities, RSS 1 over coils.

        Args:
            masked_kspace: complex (B, C, H, W), one frame; or (B, T, C, H, W), all frames of
                a slice (see :meth:`_forward_frames`).
            mask: (B, H, W); (B, T, H, W) or broadcastable to it with frames.
            undersampling, metadata: (B, embedding_dim) projected text embeddings, or None.

        Returns:
            complex (B, C, H, W).
        """
        if masked_kspace.ndim == 5:
            return self._forward_frames(masked_kspace, mask, undersampling, metadata)
        matrix = (masked_kspace.shape[-2], masked_kspace.shape[-1])
        bounds = acs_bounds(mask)
        calibration = rectangle_mask(bounds, *matrix).unsqueeze(1)
        grid = calibration_grid(bounds, matrix)
        coil_images = ifft2c(crop_kspace_centre(masked_kspace * calibration, grid))
        refined = self._refine_coils(coil_images, undersampling, metadata)
        return normalise_by_rss(ifft2c(pad_kspace_centre(fft2c(refined), matrix)))

    def _forward_frames(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """Maps seeded by ESPIRiT on the frames' time-averaged k-space, refined on its grid.

        The seed (:func:`estimate_sensitivities_from_frames`) keeps its full resolution; the
        U-Net sees it on the calibration grid of the frames' union mask and its correction
        is brought to the full matrix and added, so that untrained the maps are the seed.

        Args:
            masked_kspace: complex (B, T, C, H, W); mask (B, T, H, W) or broadcastable.

        Returns:
            complex (B, C, H, W).
        """
        matrix = (masked_kspace.shape[-2], masked_kspace.shape[-1])
        seed = estimate_sensitivities_from_frames(masked_kspace, mask)
        sampled = time_averaged_kspace(masked_kspace, mask)[1]
        grid = calibration_grid(acs_bounds(sampled), matrix)
        seed_on_grid = ifft2c(crop_kspace_centre(fft2c(seed), grid))
        correction = self._refine_coils(seed_on_grid, undersampling, metadata) - seed_on_grid
        return normalise_by_rss(seed + ifft2c(pad_kspace_centre(fft2c(correction), matrix)))

    def _refine_coils(
        self,
        coil_images: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """complex (B, C, h, w) -> complex (B, C, h, w), each coil through the U-Net."""
        batch, coils = coil_images.shape[:2]
        if self.coil_batching:
            return self._refine(
                coil_images.reshape(batch * coils, *coil_images.shape[-2:]),
                _repeat_per_coil(undersampling, coils),
                _repeat_per_coil(metadata, coils),
            ).reshape(coil_images.shape)
        return torch.stack(
            [self._refine(coil_images[:, coil], undersampling, metadata) for coil in range(coils)],
            dim=1,
        )

    def _refine(
        self,
        images: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """complex (N, h, w) -> complex (N, h, w)."""
        channels = complex_to_channels(images)
        refined = channels + self.unet(channels, undersampling, metadata)
        return channels_to_complex(refined.float())


def calibration_grid(bounds: torch.Tensor, matrix: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of the central k-space block on which the sensitivity maps are estimated.

    The block reaches as far from the centre (n // 2) as the batch's ACS rectangles do,
    relative to the matrix, along the axis where they reach least: the maps get the same
    resolution along ky and kx (the 20 ACS lines of a 246 x 256 cine give a 20 x 21 block,
    not a 20 x 256 strip), as coil sensitivities are equally smooth along both.

    Args:
        bounds: int64 (batch, 4) from :func:`acs_bounds` (top, bottom, left, right).
        matrix: (ky, kx) of the k-space.

    Returns:
        (h, w), each at least ``MIN_CALIBRATION_SIZE`` and at most the matrix.
    """
    limits = bounds.detach().cpu().tolist()
    shares = []
    for axis, size in enumerate(matrix):
        centre = size // 2
        # Every rectangle of the batch must fit: the widest reach on each axis.
        reach = max(max(centre - row[2 * axis], row[2 * axis + 1] - centre) for row in limits)
        shares.append(2 * reach / size)
    share = min(shares)
    sides = (max(MIN_CALIBRATION_SIZE, math.ceil(share * size)) for size in matrix)
    height, width = (min(side, size) for side, size in zip(sides, matrix, strict=True))
    return height, width


def _repeat_per_coil(embedding: torch.Tensor | None, coils: int) -> torch.Tensor | None:
    return None if embedding is None else embedding.repeat_interleave(coils, dim=0)
