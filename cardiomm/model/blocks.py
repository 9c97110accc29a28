"""Building blocks of the image networks: channel attention, down and up sampling.

Every parameter-holding module takes one real, contiguous tensor, so that Opacus computes
per-sample gradients with its hooks (or its functorch fallback) correctly. No BatchNorm.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn


def resize_bilinear(features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize (half-pixel centres, as ``F.interpolate(..., align_corners=False)``)
    as two matrix products: (B, C, h, w) -> (B, C, H, W).

    The same numbers as ``F.interpolate`` to float rounding, but its gradient is two matrix
    products too: deterministic on CUDA, where the interpolation kernel's backward adds with
    atomics and ``torch.use_deterministic_algorithms`` refuses it.
    """
    height, width = features.shape[-2:]
    rows = _interpolation_matrix(height, size[0], features.dtype, features.device)
    columns = _interpolation_matrix(width, size[1], features.dtype, features.device)
    return torch.matmul(torch.matmul(rows, features), columns.transpose(0, 1)).contiguous()


@functools.lru_cache(maxsize=64)
def _interpolation_matrix(
    size_in: int, size_out: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """(size_out, size_in): row i holds the linear-interpolation weights of output sample i."""
    identity = torch.eye(size_in, dtype=torch.float64)[None]
    weights = F.interpolate(identity, size=size_out, mode="linear", align_corners=False)[0]
    return weights.transpose(0, 1).to(device=device, dtype=dtype)


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation style channel weights: (B, C, H, W) -> (B, C, H, W).

    The squeeze and excitation act on the pooled (B, C) vector, so they are linear layers:
    1x1 convolutions on a 1x1 map compute the same, through a much slower CPU kernel.
    """

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        hidden = max(1, channels // reduction)
        self.squeeze = nn.Linear(channels, hidden, bias=False)
        self.activation = nn.PReLU()
        self.excite = nn.Linear(hidden, channels, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        pooled = features.mean(dim=(-2, -1))
        weights = torch.sigmoid(self.excite(self.activation(self.squeeze(pooled))))
        return features * weights[:, :, None, None]


class ChannelAttentionBlock(nn.Module):
    """conv3x3 - PReLU - conv3x3 - channel attention, plus the input: (B, C, H, W) -> same."""

    def __init__(self, channels: int, reduction: int = 4) -> None:
        super().__init__()
        self.conv_in = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.activation = nn.PReLU()
        self.conv_out = nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False)
        self.attention = ChannelAttention(channels, reduction)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        residual = self.conv_out(self.activation(self.conv_in(features)))
        return features + self.attention(residual)


class BlockStack(nn.Sequential):
    """``count`` channel-attention blocks in a row."""

    def __init__(self, channels: int, count: int) -> None:
        super().__init__(*(ChannelAttentionBlock(channels) for _ in range(count)))


class DownSample(nn.Module):
    """Stride-2 conv: (B, C_in, H, W) -> (B, C_out, H/2, W/2)."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size=3, stride=2, padding=1, bias=False
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.conv(features)


class UpSample(nn.Module):
    """conv3x3 then bilinear x2: (B, C_in, H, W) -> (B, C_out, 2H, 2W).

    Convolving before upsampling costs a quarter of convolving after it, and both are
    linear maps of the same reach on the coarse grid.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        height, width = features.shape[-2:]
        return resize_bilinear(self.conv(features), (2 * height, 2 * width))
