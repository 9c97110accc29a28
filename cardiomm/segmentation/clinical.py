"""The clinical check of one reconstruction: segment it and its fully sampled reference,
compare their phenotypes with each other and with the phantom's truth, and their
segmentations by Dice.

Both stacks are segmented by the same network; the reference's end-diastolic and
end-systolic frames are used for both, so the two are compared at the same moments. A
reconstruction whose readout was halved (readout oversampling removed) is compared with the
central half of the reference's readout, at the same pixel spacing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiomm.data.errors import DataFileError
from cardiomm.data.geometry import read_geometry
from cardiomm.data.readers import open_series
from cardiomm.segmentation.classes import CLASS_NAMES, NUM_CLASSES
from cardiomm.segmentation.network import predict
from cardiomm.segmentation.phenotypes import Phenotypes, true_lv_phenotypes, ventricular_phenotypes
from cardiomm.segmentation.reference_slices import normalised, reference_image

_UNITS = ("_ml", "_percent", "_g")
PHENOTYPE_FIELDS = tuple(
    field.name for field in dataclasses.fields(Phenotypes) if field.name.endswith(_UNITS)
)


def segment_stack(network: torch.nn.Module, size: str, volume: np.ndarray) -> np.ndarray:
    """uint8 (frames, slices, ky, kx) classes of a float (frames, slices, ky, kx) magnitude
    stack, each image normalised as the segmenter was trained."""
    classes = np.empty(volume.shape, dtype=np.uint8)
    for frame in range(volume.shape[0]):
        for slice_index in range(volume.shape[1]):
            image = normalised(np.asarray(volume[frame, slice_index], dtype=np.float32))
            classes[frame, slice_index] = predict(network, image, size)
    return classes


def reference_stack(source: Path, columns: int) -> np.ndarray:
    """float32 (frames, slices, ky, columns) RSS images of the fully sampled ``source``,
    cropped to the central ``columns`` of the readout when the reconstruction has fewer."""
    with open_series(source) as series:
        shape = series.shape
        if columns not in (shape.kx, shape.kx // 2):
            raise DataFileError(
                source, f"its readout has {shape.kx} samples; a reconstruction has {columns}"
            )
        stack = np.empty((shape.frames, shape.slices, shape.ky, columns), dtype=np.float32)
        start = (shape.kx - columns) // 2
        for frame in range(shape.frames):
            for slice_index in range(shape.slices):
                image = reference_image(series.read_kspace(frame, slice_index))
                stack[frame, slice_index] = image[:, start : start + columns]
    return stack


def clinical_row(
    network: torch.nn.Module, size: str, reconstruction: np.ndarray, source: Path
) -> dict[str, Any]:
    """Phenotypes of the reconstruction, of the reference and the phantom's truth (``recon_``,
    ``reference_``, ``true_`` prefixes), and Dice per class of the reconstruction's
    segmentation against the reference's (``dice_<class>``).

    Raises:
        DataFileError: the source has no geometry sidecar or another readout length.
    """
    geometry = read_geometry(source)
    if geometry is None:
        raise DataFileError(source, "no geometry sidecar: volumes need the pixel spacing")
    reference = reference_stack(source, reconstruction.shape[-1])
    if reference.shape != reconstruction.shape:
        raise DataFileError(
            source, f"reference {reference.shape} and reconstruction {reconstruction.shape} differ"
        )
    spacing, thickness = geometry.pixel_spacing_mm, geometry.slice_thickness_mm
    reference_classes = segment_stack(network, size, reference)
    recon_classes = segment_stack(network, size, reconstruction)
    reference_phenotypes = ventricular_phenotypes(reference_classes, spacing, thickness)
    frames = (reference_phenotypes.ed_frame, reference_phenotypes.es_frame)
    recon_phenotypes = ventricular_phenotypes(recon_classes, spacing, thickness, frames)
    row: dict[str, Any] = {}
    for name in PHENOTYPE_FIELDS:
        row[f"recon_{name}"] = getattr(recon_phenotypes, name)
        row[f"reference_{name}"] = getattr(reference_phenotypes, name)
    # Only a phantom has a truth to compare with.
    with contextlib.suppress(OSError, KeyError, ValueError):
        row.update({f"true_{key}": value for key, value in true_lv_phenotypes(source).items()})
    row.update(stack_dice(recon_classes, reference_classes))
    return row


def stack_dice(predicted: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """``dice_<class>`` per foreground class over two uint8 class stacks of one shape
    (frames, slices, ky, kx), pooled over the stack (NaN where neither has the class)."""
    scores = {}
    for label in range(1, NUM_CLASSES):
        a, b = predicted == label, reference == label
        total = int(a.sum() + b.sum())
        scores[f"dice_{CLASS_NAMES[label]}"] = (
            2.0 * float((a & b).sum()) / total if total else math.nan
        )
    return scores
