"""The image network: a 3-level U-Net of channel-attention blocks, optionally conditioned on
the undersampling (prompts) and the scan metadata (adapters) in every decoder level."""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from cardiomm.model.blocks import BlockStack, DownSample, UpSample
from cardiomm.model.conditioning import MetadataAdapter, UndersamplingPrompter


@dataclasses.dataclass(frozen=True)
class UNetConfig:
    """Sizes of one U-Net.

    Attributes:
        widths: channels of the encoder levels and, last, the bottleneck; the U-Net has
            ``len(widths) - 1`` levels (three in every preset).
        blocks_per_level: channel-attention blocks per level (encoder, bottleneck, decoder).
        use_prompts: add undersampling prompters to the decoder.
        use_metadata: add metadata adapters to the decoder.
        embedding_dim: size of the projected text embeddings.
        num_prompts: prompts per bank.
        prompt_channels: prompt channels per decoder level (finest first).
        prompt_sizes: spatial size of the learned prompts per decoder level (finest first).
    """

    widths: tuple[int, ...]
    blocks_per_level: int = 1
    use_prompts: bool = True
    use_metadata: bool = True
    embedding_dim: int = 256
    num_prompts: int = 5
    prompt_channels: tuple[int, int, int] = (16, 24, 32)
    prompt_sizes: tuple[int, int, int] = (32, 16, 8)

    def __post_init__(self) -> None:
        if len(self.widths) < 2 or min(self.widths) < 1:
            raise ValueError(
                f"widths must give at least one level and the bottleneck, all >= 1, got "
                f"{self.widths}"
            )
        if self.use_prompts:
            for name in ("prompt_channels", "prompt_sizes"):
                if len(getattr(self, name)) != self.levels:
                    raise ValueError(
                        f"{name} must give one value per level ({self.levels} for widths "
                        f"{self.widths}), got {getattr(self, name)}"
                    )

    @property
    def levels(self) -> int:
        """Down-sampling levels: ``len(widths) - 1``."""
        return len(self.widths) - 1

    @property
    def size_multiple(self) -> int:
        """What the padded image size must divide by: one stride-2 step per level."""
        return 2**self.levels


class ConditionedUNet(nn.Module):
    """U-Net on real images: (B, in_channels, H, W) -> (B, out_channels, H, W).

    H and W must divide by ``2 ** config.levels`` (see :class:`NormalisedUNet` for any size).
    """

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig) -> None:
        super().__init__()
        widths, blocks, levels = config.widths, config.blocks_per_level, config.levels
        self.config = config
        self.stem = nn.Conv2d(in_channels, widths[0], kernel_size=3, padding=1, bias=False)
        self.encoder = nn.ModuleList(BlockStack(widths[level], blocks) for level in range(levels))
        self.down = nn.ModuleList(
            DownSample(widths[level], widths[level + 1]) for level in range(levels)
        )
        self.bottleneck = BlockStack(widths[levels], blocks)
        self.up = nn.ModuleList(
            UpSample(widths[level + 1], widths[level]) for level in range(levels)
        )
        self.merge = nn.ModuleList(
            nn.Conv2d(2 * widths[level], widths[level], kernel_size=1, bias=False)
            for level in range(levels)
        )
        self.prompters = (
            nn.ModuleList(
                UndersamplingPrompter(
                    widths[level],
                    config.embedding_dim,
                    config.num_prompts,
                    config.prompt_channels[level],
                    config.prompt_sizes[level],
                )
                for level in range(levels)
            )
            if config.use_prompts
            else None
        )
        self.adapters = (
            nn.ModuleList(
                MetadataAdapter(widths[level], config.embedding_dim) for level in range(levels)
            )
            if config.use_metadata
            else None
        )
        self.decoder = nn.ModuleList(BlockStack(widths[level], blocks) for level in range(levels))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=3, padding=1, bias=False)

    def forward(
        self,
        image: torch.Tensor,
        undersampling: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """image (B, in, H, W); undersampling, metadata (B, embedding_dim) when used."""
        levels = self.config.levels
        features = self.stem(image)
        skips = []
        for level in range(levels):
            features = self.encoder[level](features)
            skips.append(features)
            features = self.down[level](features)
        features = self.bottleneck(features)
        for level in reversed(range(levels)):
            features = self.up[level](features)
            features = self.merge[level](torch.cat((features, skips[level]), dim=1))
            if self.prompters is not None:
                features = self.prompters[level](features, _require(undersampling, "undersampling"))
            if self.adapters is not None:
                features = self.adapters[level](features, _require(metadata, "metadata"))
            features = self.decoder[level](features)
        return self.head(features)


class NormalisedUNet(nn.Module):
    """A :class:`ConditionedUNet` that predicts a residual, for any image size and scale.

    Each sample and channel is normalised to zero mean and unit standard deviation, padded
    to a multiple of ``2 ** levels``, passed through the U-Net, cropped and multiplied back by
    the standard deviation (not shifted by the mean: the output is a correction to add to the
    input, in the input's units): (B, C, H, W) -> (B, C, H, W). The U-Net's last layer starts
    at zero, so an untrained network returns exactly zero and ``x + net(x)`` is exactly ``x``.
    """

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig) -> None:
        super().__init__()
        if out_channels != in_channels:
            raise ValueError("NormalisedUNet maps back to the input's channels and scale")
        self.unet = ConditionedUNet(in_channels, out_channels, config)
        # A zero head makes every cascade start as the identity and the sensitivity net as
        # the classical ACS estimate: training starts from zero-filled, not from noise.
        nn.init.zeros_(self.unet.head.weight)

    def forward(
        self,
        image: torch.Tensor,
        undersampling: torch.Tensor | None = None,
        metadata: torch.Tensor | None = None,
    ) -> torch.Tensor:
        mean = image.mean(dim=(-2, -1), keepdim=True)
        std = image.std(dim=(-2, -1), keepdim=True) + 1e-6
        normalised = (image - mean) / std
        height, width = image.shape[-2:]
        multiple = self.unet.config.size_multiple
        pad_height = (-height) % multiple
        pad_width = (-width) % multiple
        padding = (
            pad_width // 2,
            pad_width - pad_width // 2,
            pad_height // 2,
            pad_height - pad_height // 2,
        )
        padded = F.pad(normalised, padding).contiguous()
        output = self.unet(padded, undersampling, metadata)
        output = output[..., padding[2] : padding[2] + height, padding[0] : padding[0] + width]
        return output * std


def _require(embedding: torch.Tensor | None, name: str) -> torch.Tensor:
    if embedding is None:
        raise ValueError(f"this U-Net is conditioned on the {name} text but got no embedding")
    return embedding
