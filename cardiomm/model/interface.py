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


class CineTexts(NamedTuple):
    """The texts of one slice, for a cine method that is conditioned on them.

    Attributes:
        metadata_text: CardioMM's metadata text of the scan.
        undersampling_text: e.g. ``Undersampling: 24x radial.`` (the frames of a slice share
            pattern and R).
    """

    metadata_text: str
    undersampling_text: str


@runtime_checkable
class TextConditionedCineReconstructor(CineReconstructor, Protocol):
    """A :class:`CineReconstructor` that reads the slice's texts (the frame-window CardioMM):
    its ``reconstruct_cine`` also takes ``texts``."""

    reads_texts: bool


def reconstruct_cine_with_texts(
    reconstructor: CineReconstructor,
    masked_kspace: np.ndarray,
    masks: np.ndarray,
    frames: Sequence[int],
    texts: CineTexts,
) -> CineResult:
    """``reconstructor.reconstruct_cine``, given the slice's ``texts`` when it reads them
    (:class:`TextConditionedCineReconstructor`); other cine methods (the classical ones) are
    called as the protocol says."""
    if isinstance(reconstructor, TextConditionedCineReconstructor):
        return reconstructor.reconstruct_cine(masked_kspace, masks, frames, texts=texts)
    return reconstructor.reconstruct_cine(masked_kspace, masks, frames)


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
