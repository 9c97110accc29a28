"""Fully sampled short-axis cine images and their class maps, for training and scoring the
segmenter.

A synthetic cine SAX file (``cine_sax.mat``) has a label file beside it
(``cine_sax_labels.npz``, (frames, slices, ky, kx) on the stored k-space grid); the
reference image of each (frame, slice) is the root-sum-of-squares of its fully sampled coil
images, divided by its 99.5th percentile so every scanner's images share one range.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from cardiomm.data.errors import DataFileError
from cardiomm.data.readers import open_series
from cardiomm.data.synthetic import read_labels, sidecar_paths
from cardiomm.physics.coils import rss
from cardiomm.physics.fourier import ifft2c
from cardiomm.segmentation.classes import segmentation_classes

CINE_SAX = "cine_sax"
logger = logging.getLogger(__name__)


def cine_sax_files(files: Iterable[Path]) -> list[Path]:
    """The fully sampled cine short-axis files among ``files`` that have labels."""
    return [path for path in files if path.stem == CINE_SAX and sidecar_paths(path)[1].is_file()]


def normalised(image: np.ndarray) -> np.ndarray:
    """``image`` over its 99.5th percentile (float32; unchanged scale when it is all zero)."""
    scale = float(np.percentile(image, 99.5)) if image.size else 0.0
    return (image / scale if scale > 0 else image).astype(np.float32)


def reference_image(kspace: np.ndarray) -> np.ndarray:
    """float32 (ky, kx) normalised RSS image of (coils, ky, kx) fully sampled k-space."""
    coils = ifft2c(torch.from_numpy(np.ascontiguousarray(kspace)))
    return normalised(rss(coils, dim=0).numpy())


def reference_slices(
    files: Iterable[Path],
    remove_oversampling: bool = False,
    skipped: list[tuple[Path, str]] | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(float32 image (ky, kx), uint8 classes (ky, kx)) of every frame and slice of the cine
    SAX files among ``files``; with ``remove_oversampling`` both are cropped to the central
    half of the readout, the field of view a model trained without the oversampling sees.

    A file whose k-space or labels cannot be read, or do not match, is left out with a
    warning and, when ``skipped`` is given, appended to it with the reason.
    """
    pairs = []
    for path in cine_sax_files(files):
        try:
            pairs += _file_pairs(path, remove_oversampling)
        except (DataFileError, OSError, KeyError, ValueError, zipfile.BadZipFile) as error:
            reason = str(error.reason) if isinstance(error, DataFileError) else str(error)
            logger.warning("skipping %s for the segmenter: %s", path, reason)
            if skipped is not None:
                skipped.append((path, reason))
    return pairs


def _file_pairs(path: Path, remove_oversampling: bool) -> list[tuple[np.ndarray, np.ndarray]]:
    classes = segmentation_classes(read_labels(path)["labels"])
    pairs = []
    with open_series(path) as series:
        frames, slices = series.shape.frames, series.shape.slices
        if classes.shape != (frames, slices, series.shape.ky, series.shape.kx):
            raise DataFileError(
                path, f"labels {classes.shape} do not match the k-space {tuple(series.shape)}"
            )
        for frame in range(frames):
            for slice_index in range(slices):
                image = reference_image(series.read_kspace(frame, slice_index))
                labels = classes[frame, slice_index]
                if remove_oversampling:
                    image, labels = central_readout_half(image), central_readout_half(labels)
                    image = normalised(image)
                pairs.append((image, labels))
    return pairs


def central_readout_half(image: np.ndarray) -> np.ndarray:
    """The central half of the last (readout) axis of ``image`` (..., kx)."""
    columns = image.shape[-1] // 2
    start = (image.shape[-1] - columns) // 2
    return np.ascontiguousarray(image[..., start : start + columns])
