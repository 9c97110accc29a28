"""Ventricular volumes, ejection fractions and LV mass from a segmented cine short-axis stack.

Volumes are summed over the stack (Simpson's rule as in clinical practice and as the
synthetic phantoms define their true volumes: the area in each slice x the slice
thickness). End diastole and end systole are the frames of the largest and the smallest LV
blood volume (or given ones, e.g. the reference's, so that two segmentations of the same
scan are compared at the same frames); the RV is measured at the same two frames. LV mass
is the end-diastolic myocardial volume x 1.05 g/ml.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np

from cardiomm.data.synthetic import read_sidecar
from cardiomm.segmentation.classes import LV_BLOOD, LV_MYOCARDIUM, RV_BLOOD

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
_MM3_PER_ML = 1000.0


@dataclasses.dataclass(frozen=True)
class Phenotypes:
    """What a clinician reads off a cine short-axis stack (ml, %, g; frames 0-based)."""

    lv_edv_ml: float
    lv_esv_ml: float
    lv_ef_percent: float
    lv_mass_g: float
    rv_edv_ml: float
    rv_esv_ml: float
    rv_ef_percent: float
    ed_frame: int
    es_frame: int


def class_volumes_ml(
    classes: np.ndarray, label: int, pixel_spacing_mm: tuple[float, float], thickness_mm: float
) -> np.ndarray:
    """(frames,) volume of ``label`` in ml of uint8 classes (frames, slices, ky, kx)."""
    voxel_mm3 = pixel_spacing_mm[0] * pixel_spacing_mm[1] * thickness_mm
    return (classes == label).sum(axis=(1, 2, 3)) * voxel_mm3 / _MM3_PER_ML


def ventricular_phenotypes(
    classes: np.ndarray,
    pixel_spacing_mm: tuple[float, float],
    thickness_mm: float,
    frames: tuple[int, int] | None = None,
) -> Phenotypes:
    """The phenotypes of a segmented stack.

    Args:
        classes: uint8 (frames, slices, ky, kx) segmenter classes.
        pixel_spacing_mm: (row, column) spacing.
        thickness_mm: slice thickness (the stack's slice spacing).
        frames: (end-diastolic, end-systolic) frame (default: the largest and smallest LV
            blood volume).
    """
    if classes.ndim != 4:
        raise ValueError(f"a cine stack is (frames, slices, ky, kx), not {classes.shape}")
    lv, rv, myocardium = (
        class_volumes_ml(classes, label, pixel_spacing_mm, thickness_mm)
        for label in (LV_BLOOD, RV_BLOOD, LV_MYOCARDIUM)
    )
    ed, es = frames if frames is not None else (int(np.argmax(lv)), int(np.argmin(lv)))
    return Phenotypes(
        lv_edv_ml=float(lv[ed]),
        lv_esv_ml=float(lv[es]),
        lv_ef_percent=_ejection_fraction(lv[ed], lv[es]),
        lv_mass_g=float(myocardium[ed] * MYOCARDIAL_DENSITY_G_PER_ML),
        rv_edv_ml=float(rv[ed]),
        rv_esv_ml=float(rv[es]),
        rv_ef_percent=_ejection_fraction(rv[ed], rv[es]),
        ed_frame=ed,
        es_frame=es,
    )


def true_lv_phenotypes(kspace_path: str | Path) -> dict[str, float]:
    """The synthetic phantom's true LV EDV, ESV (ml) and EF (%) from the file's sidecar."""
    cardiac = read_sidecar(kspace_path)["cardiac"]
    return {
        "lv_edv_ml": float(cardiac["lv_edv_ml"]),
        "lv_esv_ml": float(cardiac["lv_esv_ml"]),
        "lv_ef_percent": 100.0 * float(cardiac["ejection_fraction"]),
    }


def _ejection_fraction(end_diastolic: float, end_systolic: float) -> float:
    if end_diastolic <= 0:
        return math.nan  # no ventricle found: no fraction, not a division by zero
    return float(100.0 * (end_diastolic - end_systolic) / end_diastolic)
