"""CardioMM as a :class:`Reconstructor`: texts through the frozen encoder, then the network;
a frame-window CardioMM also as a :class:`CineReconstructor` over a slice's frames."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from cardiomm.data.frame_window import window_frames
from cardiomm.model.interface import CineTexts, ReconstructionInput, Reconstructor
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


@dataclasses.dataclass(frozen=True)
class CineImages:
    """What :meth:`WindowReconstructor.reconstruct_cine` returns: float32 (frames asked for,
    ky, kx) magnitudes."""

    images: np.ndarray


class WindowReconstructor:
    """A frame-window CardioMM as a :class:`~cardiomm.model.interface.CineReconstructor`:
    given a slice's frames, each asked-for frame is reconstructed from its window
    (:func:`~cardiomm.model.window.window_frames`), each window frame with its own mask.

    Args:
        reconstructor: the network's reconstructor (a :class:`NetworkReconstructor`, or one
            that wraps it, e.g. per-vendor parameters), fed window batches.
        network: the temporal network it runs (its window size, device and texts).
        windows_per_call: windows reconstructed per call of the network.
    """

    def __init__(
        self, reconstructor: Reconstructor, network: CardioMMNet, windows_per_call: int = 4
    ) -> None:
        if not network.is_temporal:
            raise ValueError("WindowReconstructor needs a temporal network (model.temporal)")
        if windows_per_call < 1:
            raise ValueError(f"windows_per_call must be >= 1, got {windows_per_call}")
        self.reconstructor = reconstructor
        self.network = network
        self.windows_per_call = windows_per_call
        self.name = reconstructor.name
        # Marks a TextConditionedCineReconstructor: callers hand reconstruct_cine the texts.
        self.reads_texts = True

    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """Window batches (masked_kspace (B, F, C, H, W), mask (B, F, H, W)), as the
        network takes them -> float32 (B, H, W)."""
        return self.reconstructor.reconstruct(inputs)

    @torch.no_grad()
    def reconstruct_cine(
        self,
        masked_kspace: np.ndarray,
        masks: np.ndarray,
        frames: Sequence[int],
        texts: CineTexts | None = None,
    ) -> CineImages:
        """Images of ``frames`` of one slice.

        Args:
            masked_kspace: complex (frames, coils, ky, kx), zeros where not sampled.
            masks: (frames, ky, kx), 1 where sampled.
            frames: the frames wanted.
            texts: the slice's texts (needed by a text-conditioned network).

        Raises:
            ValueError: a frame not in the slice, or no texts for a text-conditioned network.
        """
        if texts is None:
            if self.network.use_prompts:
                raise ValueError(
                    f"{self.name} is text-conditioned: reconstruct_cine needs the slice's texts"
                )
            texts = CineTexts("", "")
        kspace = torch.from_numpy(np.asarray(masked_kspace, dtype=np.complex64))
        mask_values = torch.from_numpy(np.asarray(masks, dtype=np.float32))
        num_frames = kspace.shape[0]
        device = next(self.network.parameters()).device
        windows = [
            window_frames(int(frame), num_frames, self.network.config.window_radius)
            for frame in frames
        ]
        images = []
        for start in range(0, len(windows), self.windows_per_call):
            chunk = windows[start : start + self.windows_per_call]
            inputs = ReconstructionInput(
                masked_kspace=torch.stack([kspace[window] for window in chunk]).to(device),
                mask=torch.stack([mask_values[window] for window in chunk]).to(device),
                metadata_text=[texts.metadata_text] * len(chunk),
                undersampling_text=[texts.undersampling_text] * len(chunk),
            )
            images.append(self.reconstructor.reconstruct(inputs).float().cpu())
        return CineImages(torch.cat(images).numpy())
