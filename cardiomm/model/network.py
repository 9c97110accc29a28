"""CardioMM: the text-conditioned unrolled reconstruction network (tensors in, tensors out).

The frozen text encoder is not part of this module: callers pass the encoder's embeddings,
so the state dict that travels between sites holds only trainable weights.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from cardiomm.model.cascade import Cascade
from cardiomm.model.conditioning import TextProjection
from cardiomm.model.config import ModelConfig
from cardiomm.model.sensitivity_net import SensitivityNetwork
from cardiomm.physics import ifft2c, rss


class CardioMMNet(nn.Module):
    """Sensitivities from the ACS region, K cascades with soft data consistency, RSS output.

    Args:
        config: sizes and variant.
        text_dim: size of the text encoder's embeddings (ignored by ``dcunet``).
        use_metadata: condition on the metadata text (False: the paper's CardioSM ablation,
            or an encoder that gives no metadata embedding).
    """

    def __init__(self, config: ModelConfig, text_dim: int = 384, use_metadata: bool = True) -> None:
        super().__init__()
        self.config = config
        use_prompts = config.uses_text
        use_metadata = config.uses_text and use_metadata
        self.use_prompts, self.use_metadata = use_prompts, use_metadata
        flags = {
            "use_prompts": use_prompts,
            "use_metadata": use_metadata,
            "embedding_dim": config.embedding_dim,
        }
        image_config = dataclasses.replace(config.image_net, **flags)
        sensitivity_config = dataclasses.replace(config.sensitivity_net, **flags)
        self.undersampling_projection = (
            TextProjection(text_dim, config.embedding_dim) if use_prompts else None
        )
        self.metadata_projection = (
            TextProjection(text_dim, config.embedding_dim) if use_metadata else None
        )
        self.sensitivity_net = SensitivityNetwork(sensitivity_config, config.coil_batching)
        self.cascades = nn.ModuleList(Cascade(image_config) for _ in range(config.num_cascades))

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        undersampling_embedding: torch.Tensor | None = None,
        metadata_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reconstruct RSS magnitude images.

        Args:
            masked_kspace: complex64 (B, C, H, W), centred, zeros where not sampled.
            mask: float (B, H, W), 1 where sampled.
            undersampling_embedding: (B, text_dim) encoder output for the undersampling text.
            metadata_embedding: (B, text_dim) encoder output for the metadata text.

        Returns:
            float32 (B, H, W).
        """
        if masked_kspace.dim() != 4 or not masked_kspace.is_complex():
            raise ValueError(
                "masked_kspace must be complex (batch, coils, ky, kx), got "
                f"{masked_kspace.dtype} {tuple(masked_kspace.shape)}"
            )
        mask = mask.to(torch.float32)
        undersampling = self._project(self.undersampling_projection, undersampling_embedding)
        metadata = self._project(self.metadata_projection, metadata_embedding)
        sensitivities = self.sensitivity_net(masked_kspace, mask, undersampling, metadata)
        kspace = masked_kspace
        for cascade in self.cascades:
            arguments = (kspace, masked_kspace, mask, sensitivities, undersampling, metadata)
            if self.config.gradient_checkpointing and self.training:
                kspace = checkpoint(cascade, *arguments, use_reentrant=False)
            else:
                kspace = cascade(*arguments)
        return rss(ifft2c(kspace)).to(torch.float32)

    @staticmethod
    def _project(
        projection: TextProjection | None, embedding: torch.Tensor | None
    ) -> torch.Tensor | None:
        if projection is None:
            return None
        if embedding is None:
            raise ValueError("this CardioMM network is text-conditioned but got no embedding")
        return projection(embedding.to(projection.linear.weight.dtype))


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
