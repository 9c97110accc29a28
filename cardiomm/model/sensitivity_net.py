"""Coil sensitivities learned from the autocalibration (ACS) region of the k-space."""

from __future__ import annotations

import torch
from torch import nn

from cardiomm.model.sensitivities import acs_region
from cardiomm.model.unet import NormalisedUNet, UNetConfig
from cardiomm.physics import channels_to_complex, complex_to_channels, ifft2c, rss

# Floor of the RSS normalisation, relative to each sample's largest RSS value.
_RSS_FLOOR = 1e-6


class SensitivityNetwork(nn.Module):
    """A small text-conditioned U-Net refines each coil's low-resolution ACS image; the
    result is normalised so the root-sum-of-squares over coils is 1.

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
        """masked_kspace complex (B, C, H, W), mask (B, H, W) -> complex (B, C, H, W)."""
        calibration = acs_region(mask).unsqueeze(1)
        coil_images = ifft2c(masked_kspace * calibration)
        batch, coils = coil_images.shape[:2]
        if self.coil_batching:
            refined = self._refine(
                coil_images.reshape(batch * coils, *coil_images.shape[-2:]),
                _repeat_per_coil(undersampling, coils),
                _repeat_per_coil(metadata, coils),
            ).reshape(coil_images.shape)
        else:
            refined = torch.stack(
                [
                    self._refine(coil_images[:, coil], undersampling, metadata)
                    for coil in range(coils)
                ],
                dim=1,
            )
        norm = rss(refined).unsqueeze(1)
        floor = _RSS_FLOOR * norm.flatten(1).amax(dim=1).clamp_min(1e-12)
        return refined / torch.maximum(norm, floor[:, None, None, None])

    def _refine(
        self,
        images: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """complex (N, H, W) -> complex (N, H, W)."""
        channels = complex_to_channels(images)
        refined = channels + self.unet(channels, undersampling, metadata)
        return channels_to_complex(refined.float())


def _repeat_per_coil(embedding: torch.Tensor | None, coils: int) -> torch.Tensor | None:
    return None if embedding is None else embedding.repeat_interleave(coils, dim=0)
