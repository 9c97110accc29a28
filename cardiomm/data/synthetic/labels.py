"""Ground-truth tissue labels of the synthetic anatomy.

Labels 1-3 follow the ACDC / M&Ms convention (1 RV blood pool, 2 LV myocardium, 3 LV blood
pool), so segmentation tools trained on those data sets read the synthetic labels directly.
Scar replaces LV myocardium where it lies: LV myocardial mass is labels 2 and 4 together.
"""

from __future__ import annotations

from enum import IntEnum


class Label(IntEnum):
    """One tissue class per pixel (uint8 in the label files)."""

    BACKGROUND = 0
    RV_BLOOD = 1
    LV_MYOCARDIUM = 2
    LV_BLOOD = 3
    SCAR = 4
    RV_MYOCARDIUM = 5
    LA_BLOOD = 6
    RA_BLOOD = 7
    VESSEL_BLOOD = 8
    EPICARDIAL_FAT = 9
    SUBCUTANEOUS_FAT = 10
    LIVER = 11
    LUNG = 12
    SKELETAL_MUSCLE = 13
    BONE_MARROW = 14


NUM_LABELS = len(Label)

# Flowing blood: bright in bSSFP, suppressed by black-blood preparations.
BLOOD_LABELS: tuple[Label, ...] = (
    Label.RV_BLOOD,
    Label.LV_BLOOD,
    Label.LA_BLOOD,
    Label.RA_BLOOD,
    Label.VESSEL_BLOOD,
)

# Pixels that carry signal worth measuring SNR on (air and lung excluded).
SOFT_TISSUE_LABELS: tuple[Label, ...] = tuple(
    label for label in Label if label not in (Label.BACKGROUND, Label.LUNG)
)


def label_names() -> dict[int, str]:
    """Label value -> lower-case name, as written into sidecars."""
    return {int(label): label.name.lower() for label in Label}
