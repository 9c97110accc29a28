"""The segmenter's classes, as in ACDC, and how the synthetic tissue labels map onto them."""

from __future__ import annotations

import numpy as np

from cardiomm.data.synthetic.labels import Label

BACKGROUND, RV_BLOOD, LV_MYOCARDIUM, LV_BLOOD = 0, 1, 2, 3
CLASS_NAMES = ("background", "rv_blood", "lv_myocardium", "lv_blood")
NUM_CLASSES = len(CLASS_NAMES)


def segmentation_classes(tissue_labels: np.ndarray) -> np.ndarray:
    """uint8 class map of synthetic tissue labels (any shape): RV blood, LV myocardium (scar
    included: it is myocardium), LV blood; every other tissue is background."""
    classes = np.zeros(tissue_labels.shape, dtype=np.uint8)
    classes[tissue_labels == Label.RV_BLOOD] = RV_BLOOD
    classes[np.isin(tissue_labels, (Label.LV_MYOCARDIUM, Label.SCAR))] = LV_MYOCARDIUM
    classes[tissue_labels == Label.LV_BLOOD] = LV_BLOOD
    return classes
