"""The slice dataset: one 2D multi-coil k-space image per item, with its mask, target and texts
(or, for a frame-window model, the image's window of frames, each with its own mask).

The dataset reads; the masking object it is given chooses each image's mask
(:mod:`cardiomm.data.masking`: random per training sample, or fixed and seeded for
evaluation). A file that turns out unreadable when its image is read is skipped, reported,
and replaced by the next image.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from cardiomm.data.bad_file_report import INDEX, READ, append_bad_files
from cardiomm.data.errors import DataFileError
from cardiomm.data.frame_window import window_frames
from cardiomm.data.index import BadFile, IndexedFile, SliceIndex
from cardiomm.data.masking import ImageKey, Masking, TrainingMasks
from cardiomm.data.readers import open_series
from cardiomm.masks import UndersamplingMask
from cardiomm.physics import ifft2c, remove_readout_oversampling, rss

logger = logging.getLogger(__name__)

UNKNOWN = "unknown"
# What the metadata text of an item says: the scan's metadata, or nothing (every field
# unknown, as for a site that sends no headers).
METADATA_MODES = ("full", "unknown")


class SliceSample(NamedTuple):
    """One item. Shapes are per item; a DataLoader adds a leading batch axis. A dataset with
    a frame window (``frame_window_radius`` r > 0) gives ``kspace``, ``mask`` and
    ``masked_kspace`` a leading window axis of 2 r + 1 frames
    (:func:`~cardiomm.data.frame_window.window_frames`, the item's frame in the middle, each
    frame with its own mask); ``target``, the texts and the provenance are the item's frame's.

    Attributes:
        kspace: complex64 (coils, ky, kx), fully sampled, centred.
        mask: float32 (ky, kx), 1 where sampled.
        masked_kspace: complex64 (coils, ky, kx), ``kspace * mask``.
        target: float32 (ky, kx), root-sum-of-squares of the fully sampled coil images.
        metadata_text: CardioMM's metadata text.
        undersampling_text: e.g. ``Undersampling: 16x random.`` (of the item's frame)
        file: path of the source file.
        frame: frame index in the file.
        slice_index: slice index in the file.
        centre: the site, or ``unknown``.
        vendor: the vendor, or ``unknown``.
        modality: the modality, or ``unknown``.
        mask_name: e.g. ``ktGaussian16``.
        cardiac_view: e.g. ``short-axis``, or ``unknown``.
    """

    kspace: torch.Tensor
    mask: torch.Tensor
    masked_kspace: torch.Tensor
    target: torch.Tensor
    metadata_text: str
    undersampling_text: str
    file: str
    frame: int
    slice_index: int
    centre: str
    vendor: str
    modality: str
    mask_name: str
    cardiac_view: str


class CineSample(NamedTuple):
    """Every frame of the slice of one indexed image, each with the mask the dataset gives
    that frame: what a method that reconstructs a slice's frames together needs (k-t
    compressed sensing, calibration from the time-averaged k-space).

    Attributes:
        masked_kspace: complex64 (frames, coils, ky, kx), zeros where not sampled.
        masks: float32 (frames, ky, kx), 1 where sampled.
        targets: float32 (frames, ky, kx), RSS of the fully sampled coil images.
        mask_name: e.g. ``ktRadial24``.
        file: path of the source file.
        slice_index: the slice.
        metadata_text: CardioMM's metadata text (as the dataset's ``metadata`` mode says).
        undersampling_text: the first frame's, e.g. ``Undersampling: 24x radial.``
    """

    masked_kspace: np.ndarray
    masks: np.ndarray
    targets: np.ndarray
    mask_name: str
    file: str
    slice_index: int
    metadata_text: str = ""
    undersampling_text: str = ""


class SliceDataset(Dataset[SliceSample]):
    """2D images of fully sampled k-space files, undersampled on the fly.

    Args:
        source: files to index, or a prebuilt :class:`SliceIndex`.
        masking: what mask each image gets (:mod:`cardiomm.data.masking`):
            :class:`~cardiomm.data.masking.TrainingMasks` (the default: CardioMM's sampler,
            seed 0) or :class:`~cardiomm.data.masking.EvaluationMasks`.
        remove_oversampling: crop the 2x readout oversampling away first.
        index_cache: JSON file caching the index across runs.
        bad_file_report: JSON-lines file that every skipped file is appended to, also from
            data loader workers.
        selection: ``all`` images, or only those the CMRxRecon ``ranking`` scores (central
            slices; first three frames, or every frame of mapping series).
        show_progress: progress bar while the index is built.
        metadata: ``full`` (the metadata text says what is known of the scan) or ``unknown``
            (every field of the text says unknown; the centre, vendor and modality fields of
            the items still give the truth, for grouping scores).
        frame_window_radius: 0 for one frame per item; r > 0 for a frame-window model's
            items, each carrying its frame's window of 2 r + 1 frames (see
            :class:`SliceSample`), as ``model.window_radius`` says.
    """

    def __init__(
        self,
        source: Iterable[str | Path] | SliceIndex,
        masking: Masking | None = None,
        remove_oversampling: bool = False,
        index_cache: str | Path | None = None,
        bad_file_report: str | Path | None = None,
        selection: Literal["all", "ranking"] = "all",
        show_progress: bool = True,
        metadata: Literal["full", "unknown"] = "full",
        frame_window_radius: int = 0,
    ) -> None:
        if frame_window_radius < 0:
            raise ValueError(f"frame_window_radius must be >= 0, got {frame_window_radius}")
        if selection not in ("all", "ranking"):
            raise ValueError(f"selection must be 'all' or 'ranking', got {selection!r}")
        _check_metadata_mode(metadata)
        index = (
            source
            if isinstance(source, SliceIndex)
            else SliceIndex.build(source, cache_path=index_cache, show_progress=show_progress)
        )
        self.index = _without_undersampled_files(index)
        if selection == "ranking":
            self.index = self.index.ranking_selection()
        self.masking: Masking = masking if masking is not None else TrainingMasks()
        self.remove_oversampling = remove_oversampling
        self.metadata = metadata
        self.frame_window_radius = frame_window_radius
        self.bad_file_report = Path(bad_file_report) if bad_file_report else None
        self.epoch = 0
        self._unreadable: set[int] = set()
        self._report(self.index.bad_files, INDEX)

    @property
    def bad_files(self) -> list[BadFile]:
        """Files skipped so far: at indexing, and when their images were read (this process)."""
        return list(self.index.bad_files)

    def with_options(
        self,
        masking: Masking | None = None,
        metadata: Literal["full", "unknown"] | None = None,
    ) -> SliceDataset:
        """The same images with another masking and / or metadata mode.

        The index (and what is known to be unreadable) is shared, not rebuilt: opening every
        file's header again would cost as much as the first time.
        """
        variant = copy.copy(self)
        if masking is not None:
            variant.masking = masking
        if metadata is not None:
            _check_metadata_mode(metadata)
            variant.metadata = metadata
        return variant

    def set_epoch(self, epoch: int) -> None:
        """The training epoch the masks are drawn for (call once per epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, item: int) -> SliceSample:
        if not 0 <= item < len(self):
            raise IndexError(f"item {item} out of range [0, {len(self)})")
        # Try the item, then the following ones, until one reads: a file that is bad only
        # in its data (NaN, truncated chunk) is found here, not at indexing.
        for offset in range(len(self)):
            candidate = (item + offset) % len(self)
            if self.index.images[candidate].file_number in self._unreadable:
                continue
            try:
                return self._load(candidate)
            except DataFileError as error:
                self._mark_unreadable(candidate, error)
        last = self.index.bad_files[-1] if self.index.bad_files else None
        detail = f" (the last: {last.path}: {last.reason})" if last is not None else ""
        raise NoUsableDataError(
            f"every one of the {len(self.index.files)} file(s) of the dataset is unreadable"
            f"{detail}; see the bad-file report"
        )

    def _load(self, item: int) -> SliceSample:
        if self.frame_window_radius:
            return self._load_window(item)
        image = self.index.images[item]
        indexed = self.index.files[image.file_number]
        with open_series(indexed.path) as series:
            kspace = torch.from_numpy(series.read_kspace(image.frame, image.slice_index))
        if self.remove_oversampling:
            kspace = remove_readout_oversampling(kspace).to(torch.complex64)
        matrix = (kspace.shape[-2], kspace.shape[-1])
        key = ImageKey(item, indexed.path, image.frame, image.slice_index, matrix)
        mask = self.masking.mask_for(key, self.epoch)
        mask_values = torch.from_numpy(mask.frame(0).astype(np.float32))
        return self._sample(
            item, kspace, mask_values, kspace * mask_values, rss(ifft2c(kspace)), mask
        )

    def _load_window(self, item: int) -> SliceSample:
        """Item ``item`` with its frame's window: k-space and masks (frames, ...) of the
        window's frames, the target of the item's frame."""
        image = self.index.images[item]
        indexed = self.index.files[image.file_number]
        frames = window_frames(image.frame, indexed.shape[0], self.frame_window_radius)
        distinct = list(dict.fromkeys(frames))
        with open_series(indexed.path) as series:
            read = {f: series.read_kspace(f, image.slice_index) for f in distinct}
        kspace = torch.from_numpy(np.stack([read[frame] for frame in frames]))
        if self.remove_oversampling:
            kspace = remove_readout_oversampling(kspace).to(torch.complex64)
        matrix = (kspace.shape[-2], kspace.shape[-1])
        key = ImageKey(item, indexed.path, image.frame, image.slice_index, matrix)
        masks = self.masking.window_masks(key, frames, self.epoch)
        mask_values = torch.from_numpy(np.concatenate([m.values for m in masks]).astype(np.float32))
        centre = self.frame_window_radius
        target = rss(ifft2c(kspace[centre]))
        return self._sample(
            item, kspace, mask_values, kspace * mask_values[:, None], target, masks[centre]
        )

    def _sample(
        self,
        item: int,
        kspace: torch.Tensor,
        mask_values: torch.Tensor,
        masked_kspace: torch.Tensor,
        target: torch.Tensor,
        mask: UndersamplingMask,
    ) -> SliceSample:
        """The item's sample: the tensors given, the texts and provenance of its image."""
        image = self.index.images[item]
        indexed = self.index.files[image.file_number]
        metadata = indexed.metadata
        return SliceSample(
            kspace=kspace,
            mask=mask_values,
            masked_kspace=masked_kspace,
            target=target.to(torch.float32),
            metadata_text=self._metadata_text(indexed),
            undersampling_text=mask.text,
            file=str(indexed.path),
            frame=image.frame,
            slice_index=image.slice_index,
            centre=metadata.centre or UNKNOWN,
            vendor=metadata.vendor or UNKNOWN,
            modality=metadata.modality or UNKNOWN,
            mask_name=mask.name,
            cardiac_view=metadata.view or UNKNOWN,
        )

    def _metadata_text(self, indexed: IndexedFile) -> str:
        """The metadata text of ``indexed``'s items (every field unknown in ``unknown`` mode)."""
        metadata = indexed.metadata
        return (metadata.as_unknown() if self.metadata == UNKNOWN else metadata).to_text()

    def load_cine(self, item: int) -> CineSample:
        """All frames of the slice of image ``item`` (also frames the selection left out).

        Raises:
            DataFileError: a frame of the file cannot be read (the file is marked unreadable
                and reported, as for a single image).
        """
        image = self.index.images[item]
        indexed = self.index.files[image.file_number]
        try:
            with open_series(indexed.path) as series:
                frames = series.shape.frames
                kspace = np.stack(
                    [series.read_kspace(frame, image.slice_index) for frame in range(frames)]
                )
        except DataFileError as error:
            self._mark_unreadable(item, error)
            raise
        values = torch.from_numpy(kspace)
        if self.remove_oversampling:
            values = remove_readout_oversampling(values).to(torch.complex64)
        matrix = (values.shape[-2], values.shape[-1])
        masks = [
            self.masking.mask_for(
                ImageKey(item, indexed.path, frame, image.slice_index, matrix), self.epoch
            )
            for frame in range(frames)
        ]
        mask_values = np.stack([mask.frame(0) for mask in masks]).astype(np.float32)
        full = values.numpy()
        return CineSample(
            masked_kspace=(full * mask_values[:, None]).astype(np.complex64),
            masks=mask_values,
            targets=rss(ifft2c(values)).to(torch.float32).numpy(),
            mask_name=masks[0].name,
            file=str(indexed.path),
            slice_index=image.slice_index,
            metadata_text=self._metadata_text(indexed),
            undersampling_text=masks[0].text,
        )

    def _mark_unreadable(self, item: int, error: DataFileError) -> None:
        file_number = self.index.images[item].file_number
        self._unreadable.add(file_number)
        bad = BadFile(self.index.files[file_number].path, error.reason)
        logger.warning("skipping %s: %s", bad.path, bad.reason)
        self.index.bad_files.append(bad)
        self._report([bad], READ)

    def _report(self, bad_files: list[BadFile], stage: str) -> None:
        if self.bad_file_report is not None:
            entries = [{"path": str(bad.path), "reason": bad.reason} for bad in bad_files]
            append_bad_files(self.bad_file_report, entries, stage)


class NoUsableDataError(RuntimeError):
    """Every file of a dataset turned out unreadable when its images were read."""


def _check_metadata_mode(metadata: str) -> None:
    if metadata not in METADATA_MODES:
        raise ValueError(f"metadata must be one of {METADATA_MODES}, got {metadata!r}")


def _without_undersampled_files(index: SliceIndex) -> SliceIndex:
    # Undersampled files (kus, kspace_subNN) have no fully sampled reference to train or
    # score against; `cardiomm reconstruct` is what reads them.
    usable = [indexed for indexed in index.files if not indexed.is_undersampled]
    skipped = [
        BadFile(indexed.path, "undersampled k-space has no fully sampled reference")
        for indexed in index.files
        if indexed.is_undersampled
    ]
    return SliceIndex(usable, [*index.bad_files, *skipped])
