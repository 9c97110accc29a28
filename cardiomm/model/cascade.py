"""One unrolled cascade: a VarNet-style gradient step with a learned image-space refinement.

    k_{t+1} = k_t - eta_t * M (k_t - k_0) + F(S R_t(S^H k_t))

k_0 is the measured (zero-filled) k-space, M the sampling mask, S the coil sensitivities,
F the centred FFT and R_t the cascade's image network, whose output starts at exactly zero
(zero last layer, residual output without the input mean). The estimate is kept in k-space
and the network only adds to it, so an untrained cascade returns its input unchanged: the
measured samples are never replaced by a projection through untrained sensitivities, and an
untrained CardioMM returns the zero-filled image.
"""

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
    """Multiplies a (real-viewed) k-space residual by a learned step size eta (starts at 1).

    A separate module with one real input keeps Opacus's per-sample gradients of eta correct.
    """

    def __init__(self, initial: float = 1.0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(float(initial)))

    def forward(self, residual: torch.Tensor) -> torch.Tensor:
        return residual * self.weight


class GradientDataConsistency(nn.Module):
    """The data-consistency step ``k - eta * M (k - k0)``.

    At eta = 1 the sampled locations are reset to the measurement; elsewhere k is untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self.step = DataConsistencyWeight()

    def forward(
        self, kspace: torch.Tensor, measured: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        """kspace, measured complex (..., C, H, W); mask (..., H, W) -> complex (..., C, H, W)
        (a frame window's (B, F, ...) included: each frame with its own mask)."""
        residual = mask.unsqueeze(-3) * (kspace - measured)
        scaled = self.step(torch.view_as_real(residual).contiguous())
        return kspace - torch.view_as_complex(scaled)


class Cascade(nn.Module):
    """One unrolled step: (k-space, measurement, mask, sensitivities) -> refined k-space."""

    def __init__(self, config: UNetConfig, image_channels: int = 2) -> None:
        super().__init__()
        self.image_net = NormalisedUNet(image_channels, image_channels, config)
        self.data_consistency = GradientDataConsistency()

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
        refinement = self.refinement(kspace, sensitivities, undersampling, metadata)
        return self.data_consistency(kspace, measured, mask) + refinement

    def refinement(
        self,
        kspace: torch.Tensor,
        sensitivities: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """The image network's correction in k-space: F(S R(S^H k)), complex like ``kspace``."""
        image = complex_to_channels(reduce_to_image(kspace, sensitivities))
        # Physics stays in float32 / complex64 even under bf16 autocast.
        correction = channels_to_complex(self.image_net(image, undersampling, metadata).float())
        return expand_to_kspace(correction, sensitivities)
