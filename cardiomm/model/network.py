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
from cardiomm.model.window import WindowCascade
from cardiomm.physics import ifft2c, rss


class CardioMMNet(nn.Module):
    """Sensitivities from the ACS region, K cascades with soft data consistency, RSS output.

    ``config.temporal`` picks what one reconstruction sees: ``none``, one frame (the
    released CardioMM); ``window``, a window of 2 r + 1 frames around the frame to
    reconstruct (cardiomm/model/window.py), each frame consistent with its own mask.

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
        self.cascades = nn.ModuleList(
            WindowCascade(image_config, config.window_frames)
            if config.temporal == "window"
            else Cascade(image_config)
            for _ in range(config.num_cascades)
        )

    @property
    def is_temporal(self) -> bool:
        """Reconstructs a frame from a window of frames (inputs carry a window axis)."""
        return self.config.temporal != "none"

    def forward(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        undersampling_embedding: torch.Tensor | None = None,
        metadata_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Reconstruct RSS magnitude images.

        Args:
            masked_kspace: complex64 (B, C, H, W), centred, zeros where not sampled; for a
                temporal network (B, F, C, H, W), the F = 2 r + 1 frames of each window
                (:func:`cardiomm.model.window.window_frames`), the frame to reconstruct in
                the middle.
            mask: float (B, H, W), 1 where sampled; (B, F, H, W), each frame's own mask,
                for a temporal network.
            undersampling_embedding: (B, text_dim) encoder output for the undersampling text.
            metadata_embedding: (B, text_dim) encoder output for the metadata text.

        Returns:
            float32 (B, H, W): the images (of the windows' centre frames).
        """
        self._check_inputs(masked_kspace, mask)
        mask = mask.to(torch.float32)
        undersampling = self._project(self.undersampling_projection, undersampling_embedding)
        metadata = self._project(self.metadata_projection, metadata_embedding)
        if self.is_temporal:
            sensitivities = self.window_sensitivities(masked_kspace, mask, undersampling, metadata)
        elif self.config.calibration == "espirit-frames":
            # One frame as a one-frame series: ESPIRiT on its own samples.
            sensitivities = self.sensitivity_net(
                masked_kspace.unsqueeze(1), mask.unsqueeze(1), undersampling, metadata
            )
        else:
            sensitivities = self.sensitivity_net(masked_kspace, mask, undersampling, metadata)
        kspace = masked_kspace
        for cascade in self.cascades:
            arguments = (kspace, masked_kspace, mask, sensitivities, undersampling, metadata)
            if self.config.gradient_checkpointing and self.training:
                kspace = checkpoint(cascade, *arguments, use_reentrant=False)
            else:
                kspace = cascade(*arguments)
        if self.is_temporal:
            kspace = kspace[:, self.config.window_radius]
        return rss(ifft2c(kspace)).to(torch.float32)

    def window_sensitivities(
        self,
        masked_kspace: torch.Tensor,
        mask: torch.Tensor,
        undersampling: torch.Tensor | None,
        metadata: torch.Tensor | None,
    ) -> torch.Tensor:
        """The coil sensitivities one frame window shares: complex (B, C, H, W) from
        masked_kspace complex (B, F, C, H, W) and mask (B, F, H, W).

        ``calibration: acs`` seeds the sensitivity net from the centre frame's ACS region, as
        the 2D network does; ``espirit-frames`` from ESPIRiT on the window's time-averaged
        k-space (every frame's samples: the kt masks sample other lines in every frame;
        :func:`~cardiomm.model.calibration.estimate_sensitivities_from_frames`).
        """
        if self.config.calibration == "espirit-frames":
            return self.sensitivity_net(masked_kspace, mask, undersampling, metadata)
        centre = self.config.window_radius
        return self.sensitivity_net(
            masked_kspace[:, centre], mask[:, centre], undersampling, metadata
        )

    def _check_inputs(self, masked_kspace: torch.Tensor, mask: torch.Tensor) -> None:
        """One-line errors for inputs of the wrong layout for this network."""
        if self.is_temporal:
            frames = self.config.window_frames
            if (
                masked_kspace.dim() != 5
                or not masked_kspace.is_complex()
                or masked_kspace.shape[1] != frames
            ):
                raise ValueError(
                    f"a {frames}-frame window network needs complex masked_kspace (batch, "
                    f"{frames}, coils, ky, kx), got {masked_kspace.dtype} "
                    f"{tuple(masked_kspace.shape)} (build its data with the model's frame window)"
                )
            expected = (*masked_kspace.shape[:2], *masked_kspace.shape[-2:])
            if tuple(mask.shape) != expected:
                raise ValueError(
                    f"mask {tuple(mask.shape)} does not match the window (batch, frames, ky, "
                    f"kx) {expected}"
                )
        elif masked_kspace.dim() != 4 or not masked_kspace.is_complex():
            raise ValueError(
                "masked_kspace must be complex (batch, coils, ky, kx), got "
                f"{masked_kspace.dtype} {tuple(masked_kspace.shape)}"
            )

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
