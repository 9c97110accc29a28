"""Volumes, ejection fractions and mass from segmented cine stacks."""

import math

import numpy as np
import pytest

from cardiomm.data.geometry import read_geometry
from cardiomm.data.synthetic import read_labels
from cardiomm.segmentation.classes import LV_BLOOD, LV_MYOCARDIUM, RV_BLOOD, segmentation_classes
from cardiomm.segmentation.phenotypes import true_lv_phenotypes, ventricular_phenotypes

SPACING = (1.5, 2.0)  # mm: 3 mm2 per pixel
THICKNESS = 10.0  # mm: 30 mm3 = 0.03 ml per voxel


def _stack(lv_pixels, rv_pixels, myocardium_pixels):
    """(frames, 1 slice, 40, 40) classes with the given pixel counts per frame."""
    classes = np.zeros((len(lv_pixels), 1, 40, 40), np.uint8)
    for frame, counts in enumerate(zip(lv_pixels, rv_pixels, myocardium_pixels, strict=True)):
        flat = classes[frame, 0].reshape(-1)
        start = 0
        for label, count in zip((LV_BLOOD, RV_BLOOD, LV_MYOCARDIUM), counts, strict=True):
            flat[start : start + count] = label
            start += count
    return classes


def test_volumes_are_voxel_counts_times_voxel_size_at_the_largest_and_smallest_lv():
    classes = _stack([300, 500, 200], [400, 600, 300], [100, 100, 120])
    result = ventricular_phenotypes(classes, SPACING, THICKNESS)
    assert (result.ed_frame, result.es_frame) == (1, 2)
    assert result.lv_edv_ml == pytest.approx(15.0) and result.lv_esv_ml == pytest.approx(6.0)
    assert result.lv_ef_percent == pytest.approx(60.0)
    assert result.rv_edv_ml == pytest.approx(18.0) and result.rv_ef_percent == pytest.approx(50.0)
    assert result.lv_mass_g == pytest.approx(3.0 * 1.05)


def test_given_frames_are_used_instead_of_the_segmentations_own():
    classes = _stack([300, 500, 200], [400, 600, 300], [100, 100, 120])
    result = ventricular_phenotypes(classes, SPACING, THICKNESS, frames=(0, 2))
    assert result.lv_edv_ml == pytest.approx(9.0)


def test_a_stack_without_a_left_ventricle_has_no_ejection_fraction():
    result = ventricular_phenotypes(_stack([0, 0], [10, 5], [0, 0]), SPACING, THICKNESS)
    assert math.isnan(result.lv_ef_percent)


def test_the_phantoms_labels_give_its_true_lv_volumes_within_10_percent(cine_sax_path):
    path = cine_sax_path
    geometry = read_geometry(path)
    classes = segmentation_classes(read_labels(path)["labels"])
    measured = ventricular_phenotypes(
        classes, geometry.pixel_spacing_mm, geometry.slice_thickness_mm
    )
    truth = true_lv_phenotypes(path)
    assert measured.lv_edv_ml == pytest.approx(truth["lv_edv_ml"], rel=0.1)
    assert measured.lv_esv_ml == pytest.approx(truth["lv_esv_ml"], rel=0.1)
    assert measured.lv_ef_percent == pytest.approx(truth["lv_ef_percent"], abs=5.0)
