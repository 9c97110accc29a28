"""One unrolled cascade: coil combine, image network, expand, soft data consistency."""

from __future__ import annotations

import torch
from torch import nn

from cardiomm.model.unet import NormalisedUNet, UNetConfig
from cardiomm.physics import (
    channels_to_complex,
    complex_to_channels,
    expand_to_kspace,
    reduce_to_image,
)


class DataConsistencyWeight(nn.Module):
    """Scales a (real-viewed) k-space correction by |l| / (1 + |l|); l is learned, starts at 1.

    A separate module with one real input keeps Opacus's per-sample gradients of l correct.
    """

    def __init__(self, initial: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(initial)))

    def forward(self, correction: torch.Tensor) -> torch.Tensor:
        trust = self.weight.abs()
        return correction * (trust / (1.0 + trust))


class SoftDataConsistency(nn.Module):
    """k = (k_net + |l| k0) / (1 + |l|) where sampled, k_net elsewhere.

    As |l| grows the sampled k-space is kept exactly; at l = 1 (the start) network and
    measurement are averaged.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust = DataConsistencyWeight()

    def forward(
        self, predicted: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """predicted, measured complex (B, C, H, W); mask (B, H, W) -> complex (B, C, H, W)."""
        correction = mask.unsqueeze(1) * (measured - predicted)
        scaled = self.trust(torch.view_as_real(correction).contiguous())
        return predicted + torch.view_as_complex(scaled)


class Cascade(nn.Module):
    """One unrolled step: (k-space, measurement, mask, sensitivities) -> refined k-space."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.image_net = NormalisedUNet(2, 2, config)
        self.data_consistency = SoftDataConsistency()

    def forward(
        self,
        kspace: torch.Tensor,
        measured: torch.Tensor,
        mask: torch.Tensor,
        sensitivities: torch.Tensor,
        undersampling: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """kspace, measured, sensitivities complex (B, C, H, W); mask (B, H, W)."""
        image = complex_to_channels(reduce_to_image(kspace, sensitivities))
        refined = image + self.image_net(image, undersampling, metadata)
        # Physics stays in float32 / complex64 even under bf16 autocast.
        predicted = expand_to_kspace(channels_to_complex(refined.float()), sensitivities)
        return self.data_consistency(predicted, measured, mask)
