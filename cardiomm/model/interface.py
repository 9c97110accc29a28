"""What every reconstruction method takes and returns, so that CardioMM, DCUNet-style,
SENSE and zero-filled are trained, evaluated and compared through one interface."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch


class ReconstructionInput(NamedTuple):
    """A batch of undersampled scans.

    Attributes:
        masked_kspace: complex64 (batch, coils, ky, kx), centred, zeros where not sampled.
        mask: float32 (batch, ky, kx), 1 where sampled.
        metadata_text: batch of CardioMM metadata texts.
        undersampling_text: batch of undersampling texts, e.g. ``Undersampling: 8x uniform.``
    """

    masked_kspace: torch.Tensor
    mask: torch.Tensor
    metadata_text: list[str]
    undersampling_text: list[str]


@runtime_checkable
class CineReconstructor(Protocol):
    """Anything that reconstructs a slice's frames together (k-t methods), or calibrates from
    all of them: the evaluation hands it every frame of a slice with each frame's mask."""

    name: str

    def reconstruct_cine(
        self, masked_kspace: np.ndarray, masks: np.ndarray, frames: Sequence[int]
    ) -> CineResult:
        """Magnitude images of ``frames`` from complex (frames, coils, ky, kx) k-space and
        float (frames, ky, kx) masks."""
        ...


class CineResult(Protocol):
    """What a :class:`CineReconstructor` returns."""

    images: np.ndarray  # float32 (frames asked for, ky, kx)


@runtime_checkable
class Reconstructor(Protocol):
    """Anything that turns undersampled k-space into coil-combined magnitude images."""

    name: str

    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """float32 (batch, ky, kx) magnitude images, on the device of the inputs."""
        ...
