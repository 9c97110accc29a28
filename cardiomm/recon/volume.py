"""Reconstruct one k-space file: every (frame, slice) image, a few images of the file per batch.

Each image is read on its own (the readers are lazy), masked, and passed to any
:class:`~cardiomm.model.interface.Reconstructor`, a few images per call; a
:class:`CineReconstructor` (the classical methods, which calibrate from and, for k-t methods,
solve over every frame of a slice, and the frame-window CardioMM) is given each slice's frames
together, with the slice's texts, instead. Each
image's zero-filled image and, for fully sampled
files, its reference (RSS of the fully sampled coil images) are kept beside the
reconstruction for previews and scores. A method whose output holds NaN or Inf (a diverged
model, weights that overflow) stops the file with :class:`NonFiniteReconstructionError`:
no image of it is ever passed on as a reconstruction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from cardiomm.data.readers import KSpaceSeries
from cardiomm.masks import UndersamplingMask
from cardiomm.model.interface import (
    CineTexts,
    ReconstructionInput,
    Reconstructor,
    reconstruct_cine_with_texts,
)
from cardiomm.physics import ifft2c, remove_readout_oversampling, rss
from cardiomm.recon.mask_choice import FileMasks


class NonFiniteReconstructionError(ValueError):
    """The method's output for an image of ``path`` holds NaN or Inf values."""

    def __init__(self, path: Path, frame: int, slice_index: int, bad: int, total: int) -> None:
        self.path = path
        self.reason = (
            f"the reconstruction of frame {frame}, slice {slice_index} is not finite "
            f"({bad} of {total} values NaN or Inf)"
        )
        super().__init__(f"{path}: {self.reason}")


@runtime_checkable
class CineReconstructor(Protocol):
    """A method that reconstructs one slice's frames together (e.g.
    :class:`cardiomm.classical.reconstructor.ClassicalReconstructor`,
    :class:`cardiomm.model.reconstructor.WindowReconstructor`)."""

    name: str

    def reconstruct_cine(
        self, masked_kspace: np.ndarray, masks: np.ndarray, frames: Sequence[int]
    ) -> _CineImages:
        """Images of ``frames`` from complex (frames, coils, ky, kx) k-space and
        (frames, ky, kx) masks (and the slice's texts, for a method that reads them:
        :func:`~cardiomm.model.interface.reconstruct_cine_with_texts`)."""
        ...


class _CineImages(Protocol):
    images: np.ndarray  # float32 (frames wanted, ky, kx) magnitudes


@dataclasses.dataclass(frozen=True)
class VolumeReconstruction:
    """One file's images, all float32 (frames, slices, ky, kx) magnitudes.

    Attributes:
        reconstruction: the method's output.
        zero_filled: RSS of the zero-filled coil images (the method's input, seen plainly).
        reference: RSS of the fully sampled coil images; None for undersampled files.
        sampling_fraction: fraction of k-space samples used, over all images.
        metadata_text: the metadata text the method was given.
        undersampling_text: the undersampling text the method was given (first image's; all
            images of a file share pattern and R).
        oversampling_removed: the readout was halved before reconstruction (kx is half the
            file's), as the model was trained.
    """

    reconstruction: np.ndarray
    zero_filled: np.ndarray
    reference: np.ndarray | None
    sampling_fraction: float
    metadata_text: str
    undersampling_text: str
    oversampling_removed: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(frames, slices, ky, kx)."""
        return self.reconstruction.shape  # type: ignore[return-value]


@dataclasses.dataclass
class _Batch:
    """Images waiting to be reconstructed together."""

    positions: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    kspace: list[torch.Tensor] = dataclasses.field(default_factory=list)
    masks: list[torch.Tensor] = dataclasses.field(default_factory=list)
    texts: list[str] = dataclasses.field(default_factory=list)

    def add(
        self, position: tuple[int, int], kspace: torch.Tensor, mask: torch.Tensor, text: str
    ) -> None:
        """Queue one image: its (frame, slice), masked k-space, mask and undersampling text."""
        self.positions.append(position)
        self.kspace.append(kspace)
        self.masks.append(mask)
        self.texts.append(text)


def reconstruct_volume(
    series: KSpaceSeries,
    masks: FileMasks,
    reconstructor: Reconstructor | CineReconstructor,
    device: torch.device | str = "cpu",
    batch_size: int = 4,
    remove_oversampling: bool = False,
) -> VolumeReconstruction:
    """Reconstruct every image of ``series``.

    Args:
        series: the open file; undersampled files are masked with their own mask (zeros
            stay zeros), fully sampled ones are undersampled here.
        masks: the file's masks (:func:`cardiomm.recon.mask_choice.choose_masks`).
        reconstructor: the method; its parameters must already be on ``device``. A
            :class:`CineReconstructor` is called once per slice with all its frames.
        device: where to reconstruct.
        batch_size: images per call of the method (images of one file share one matrix);
            a :class:`CineReconstructor` ignores it.
        remove_oversampling: halve the readout before masking and reconstruction, as a model
            trained with ``data.remove_oversampling`` expects; only valid when ``masks``
            survive it (:attr:`FileMasks.survives_oversampling_removal`).

    Returns:
        the volume, on the CPU.

    Raises:
        DataFileError: an image cannot be read (or, for a mask taken from the k-space, holds
            no samples).
        NonFiniteReconstructionError: the method returned NaN or Inf for an image.
    """
    _check_request(series, masks, batch_size, remove_oversampling)
    device = torch.device(device)
    frames = series.shape[0]
    volume = _VolumeBuilder(series, remove_oversampling)
    by_slice = isinstance(reconstructor, CineReconstructor)
    batch = _Batch()
    for frame, slice_index in series.image_indices():
        kspace, mask = _read_image(series, masks, frame, slice_index, remove_oversampling)
        mask_tensor = torch.from_numpy(mask.frame(0).astype(np.float32))
        masked = volume.add((frame, slice_index), kspace, kspace * mask_tensor, mask)
        batch.add((frame, slice_index), masked, mask_tensor, mask.text)
        # image_indices is slice-major: a slice's last frame completes its cine.
        full = frame == frames - 1 if by_slice else len(batch.positions) == batch_size
        if full:
            _run(batch, reconstructor, volume.metadata_text, device, volume.images, series.path)
            batch = _Batch()
    if batch.positions:
        _run(batch, reconstructor, volume.metadata_text, device, volume.images, series.path)
    return volume.result()


class _VolumeBuilder:
    """The volumes :func:`reconstruct_volume` fills, image by image: float32 (frames,
    slices, ky, kx) reconstruction (``images``), zero-filled images and, for fully sampled
    files, the reference (kx halved with the readout); the sampled fraction and the texts."""

    def __init__(self, series: KSpaceSeries, remove_oversampling: bool) -> None:
        frames, slices, _, num_ky, num_kx = series.shape
        if remove_oversampling:
            num_kx //= 2
        self.images = np.zeros((frames, slices, num_ky, num_kx), dtype=np.float32)
        self.zero_filled = np.zeros_like(self.images)
        self.reference = None if series.is_undersampled else np.zeros_like(self.images)
        self.metadata_text = series.metadata.to_text()
        self.remove_oversampling = remove_oversampling
        self.sampled = 0.0
        self.first_text = ""

    def add(
        self,
        position: tuple[int, int],
        kspace: torch.Tensor,
        masked: torch.Tensor,
        mask: UndersamplingMask,
    ) -> torch.Tensor:
        """Record one image's zero-filled (and reference) image, its sampled fraction and
        text; returns ``masked``."""
        self.first_text = self.first_text or mask.text
        self.sampled += mask.sampling_fraction
        self.zero_filled[position] = rss(ifft2c(masked)).numpy()
        if self.reference is not None:
            self.reference[position] = rss(ifft2c(kspace)).numpy()
        return masked

    def result(self) -> VolumeReconstruction:
        """The filled volume."""
        frames, slices = self.images.shape[:2]
        return VolumeReconstruction(
            reconstruction=self.images,
            zero_filled=self.zero_filled,
            reference=self.reference,
            sampling_fraction=self.sampled / (frames * slices),
            metadata_text=self.metadata_text,
            undersampling_text=self.first_text,
            oversampling_removed=self.remove_oversampling,
        )


def _check_request(
    series: KSpaceSeries, masks: FileMasks, batch_size: int, remove_oversampling: bool
) -> None:
    """One-line errors for a batch size or readout crop :func:`reconstruct_volume` cannot do."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if remove_oversampling and not masks.survives_oversampling_removal:
        raise ValueError(
            f"{series.path}: {masks.source} cannot follow a readout crop (radial samples of "
            "acquired k-space); reconstruct with the full readout"
        )


def _read_image(
    series: KSpaceSeries,
    masks: FileMasks,
    frame: int,
    slice_index: int,
    remove_oversampling: bool,
) -> tuple[torch.Tensor, UndersamplingMask]:
    """Complex (coils, ky, kx) k-space of one image (readout halved when asked) and its mask."""
    kspace = series.read_kspace(frame, slice_index)
    if remove_oversampling:
        kspace = remove_readout_oversampling(torch.from_numpy(kspace)).numpy()
    return torch.from_numpy(kspace), masks.mask(frame, slice_index, kspace)


def _run(
    batch: _Batch,
    reconstructor: Reconstructor | CineReconstructor,
    metadata_text: str,
    device: torch.device,
    out: np.ndarray,
    path: Path,
) -> None:
    """Reconstruct ``batch`` (for a :class:`CineReconstructor`, one slice's frames in order)
    and store each image at its (frame, slice) of ``out``.

    Raises:
        NonFiniteReconstructionError: an image of ``batch`` holds NaN or Inf.
    """
    if isinstance(reconstructor, CineReconstructor):
        masks = torch.stack(batch.masks).numpy()
        cine = reconstruct_cine_with_texts(
            reconstructor,
            torch.stack(batch.kspace).numpy(),
            masks,
            [frame for frame, _ in batch.positions],
            CineTexts(metadata_text, batch.texts[0]),
        )
        images = np.asarray(cine.images, dtype=np.float32)
    else:
        inputs = ReconstructionInput(
            masked_kspace=torch.stack(batch.kspace).to(device),
            mask=torch.stack(batch.masks).to(device),
            metadata_text=[metadata_text] * len(batch.positions),
            undersampling_text=list(batch.texts),
        )
        with torch.no_grad():
            images = reconstructor.reconstruct(inputs).float().cpu().numpy()
    for (frame, slice_index), image in zip(batch.positions, images, strict=True):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        if bad:
            raise NonFiniteReconstructionError(path, frame, slice_index, bad, image.size)
        out[frame, slice_index] = image
