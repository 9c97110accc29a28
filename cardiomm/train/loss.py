"""The training loss: 1 - SSIM on the RSS image (+ optional L1), and the FedProx term."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from cardiomm.metrics import ssim_torch


def reconstruction_loss(
    reconstruction: torch.Tensor, target: torch.Tensor, l1_weight: float = 0.0
) -> torch.Tensor:
    """1 - SSIM (data range = each target's maximum) + l1_weight * L1 / max.

    Args:
        reconstruction, target: float (B, H, W).

    Returns:
        scalar, mean over the batch.
    """
    data_range = target.detach().flatten(1).amax(dim=1).clamp_min(1e-12)
    loss = 1.0 - ssim_torch(target, reconstruction, data_range).mean()
    if l1_weight:
        scaled_error = (reconstruction - target).abs().flatten(1).mean(dim=1) / data_range
        loss = loss + l1_weight * scaled_error.mean()
    return loss


def proximal_term(
    network: nn.Module, reference: Mapping[str, torch.Tensor], mu: float
) -> torch.Tensor:
    """FedProx: mu / 2 * sum ||w - w_ref||^2 over trainable parameters."""
    total = torch.zeros((), device=next(network.parameters()).device)
    for name, parameter in network.named_parameters():
        if parameter.requires_grad:
            total = total + (parameter - reference[name].to(parameter.device)).square().sum()
    return 0.5 * mu * total
