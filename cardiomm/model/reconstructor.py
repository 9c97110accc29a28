"""CardioMM as a :class:`Reconstructor`: texts through the frozen encoder, then the network."""

from __future__ import annotations

import torch

from cardiomm.model.interface import ReconstructionInput
from cardiomm.model.network import CardioMMNet
from cardiomm.text import TextEncoder


class NetworkReconstructor:
    """Wraps a trained :class:`CardioMMNet` (CardioMM, CardioSM or DCUNet-style).

    The text encoder is held beside the network, never inside it: its weights are frozen
    and do not belong to the state that sites send, checkpoints store or optimisers see.

    Args:
        network: the trained network.
        text_encoder: the encoder the network was trained with (None for ``dcunet``).
        name: how reports call this method.
    """

    def __init__(
        self, network: CardioMMNet, text_encoder: TextEncoder | None, name: str = "cardiomm"
    ) -> None:
        if network.use_prompts and text_encoder is None:
            raise ValueError("a text-conditioned network needs its text encoder")
        self.network = network
        self.text_encoder = text_encoder
        self.name = name

    def embeddings(
        self, metadata_text: list[str], undersampling_text: list[str], device: torch.device
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """(undersampling, metadata) encoder embeddings, (B, text_dim) each, or None when
        the network does not use them."""
        if self.text_encoder is None:
            return None, None
        undersampling = (
            self.text_encoder.encode(undersampling_text).to(device)
            if self.network.use_prompts
            else None
        )
        metadata = (
            self.text_encoder.encode(metadata_text).to(device)
            if self.network.use_metadata
            else None
        )
        return undersampling, metadata

    @torch.no_grad()
    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """float32 (B, ky, kx) magnitude images."""
        device = inputs.masked_kspace.device
        undersampling, metadata = self.embeddings(
            list(inputs.metadata_text), list(inputs.undersampling_text), device
        )
        was_training = self.network.training
        self.network.eval()
        try:
            return self.network(inputs.masked_kspace, inputs.mask, undersampling, metadata)
        finally:
            self.network.train(was_training)
