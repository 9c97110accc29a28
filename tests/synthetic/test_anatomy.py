"""Label maps: every tissue where it belongs, disease variants visible, cardiac motion."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.data.synthetic import sample_subject
from cardiomm.data.synthetic.anatomy import render_labels, slice_geometry
from cardiomm.data.synthetic.labels import Label
from cardiomm.data.synthetic.motion import lv_model
from cardiomm.data.synthetic.shapes import ImageGrid

_GRID = ImageGrid(ny=100, nx=256, dy_mm=3.0, dx_mm=3.0)


def _labels(disease: str, view: str, phases=(0.0, 1.0), seed: int = 3) -> tuple[np.ndarray, object]:
    subject = sample_subject(np.random.default_rng(seed), disease)
    lv = lv_model(subject, 9)
    geometry = slice_geometry(subject, lv, view, "cine", 9 if view == "sax" else 1)
    return render_labels(subject, lv, geometry, _GRID, np.asarray(phases)), subject


def test_short_axis_stack_holds_heart_torso_and_organs() -> None:
    labels, _ = _labels("healthy", "sax")
    present = set(np.unique(labels[0]).tolist())
    expected = {
        Label.BACKGROUND,
        Label.RV_BLOOD,
        Label.LV_MYOCARDIUM,
        Label.LV_BLOOD,
        Label.RV_MYOCARDIUM,
        Label.VESSEL_BLOOD,
        Label.EPICARDIAL_FAT,
        Label.SUBCUTANEOUS_FAT,
        Label.LIVER,
        Label.LUNG,
        Label.SKELETAL_MUSCLE,
        Label.BONE_MARROW,
    }
    assert expected <= present


def test_lv_shrinks_from_base_to_apex() -> None:
    labels, _ = _labels("healthy", "sax")
    areas = (labels[0] == Label.LV_BLOOD).sum(axis=(1, 2))
    assert areas[1] > areas[4] > areas[-1] > 0


def test_basal_slice_shows_the_atrium_once_the_base_descends() -> None:
    labels, _ = _labels("healthy", "sax")
    assert (labels[0, 0] == Label.LV_BLOOD).any()
    assert (labels[1, 0] == Label.LA_BLOOD).any()
    assert not (labels[1, 0] == Label.LV_BLOOD).any()


def test_myocardium_thickens_while_its_area_is_kept_in_systole() -> None:
    labels, _ = _labels("healthy", "sax")
    mid = 4
    myocardium = (labels[:, mid] == Label.LV_MYOCARDIUM).sum(axis=(1, 2))
    cavity = (labels[:, mid] == Label.LV_BLOOD).sum(axis=(1, 2))
    assert cavity[1] < 0.6 * cavity[0]
    assert myocardium[1] == pytest.approx(myocardium[0], rel=0.12)


def test_hypertrophy_thickens_the_wall() -> None:
    healthy, _ = _labels("healthy", "sax", phases=(0.0,))
    thick, _ = _labels("hypertrophic", "sax", phases=(0.0,))
    mid = 4

    def wall_to_cavity(labels: np.ndarray) -> float:
        return (labels[0, mid] == Label.LV_MYOCARDIUM).sum() / (
            labels[0, mid] == Label.LV_BLOOD
        ).sum()

    assert wall_to_cavity(thick) > 1.8 * wall_to_cavity(healthy)


def test_infarct_marks_a_scar_inside_the_lv_wall() -> None:
    labels, subject = _labels("infarct", "sax", phases=(0.0,))
    assert subject.scar is not None
    scar_slices = (labels[0] == Label.SCAR).any(axis=(1, 2))
    assert scar_slices.any() and not scar_slices.all()
    scar = labels[0] == Label.SCAR
    myocardium = (labels[0] == Label.LV_MYOCARDIUM) | scar
    assert scar.sum() < 0.5 * myocardium.sum()


@pytest.mark.parametrize(
    ("view", "chambers"),
    [
        ("4ch", {Label.LV_BLOOD, Label.RV_BLOOD, Label.LA_BLOOD, Label.RA_BLOOD}),
        ("2ch", {Label.LV_BLOOD, Label.LA_BLOOD}),
        ("3ch", {Label.LV_BLOOD, Label.LA_BLOOD, Label.RV_BLOOD, Label.VESSEL_BLOOD}),
    ],
)
def test_long_axis_views_show_their_chambers(view: str, chambers: set) -> None:
    labels, _ = _labels("healthy", view)
    assert chambers <= set(np.unique(labels[0, 0]).tolist())
    if view == "2ch":
        assert not (labels == Label.RV_BLOOD).any()


def test_long_axis_lv_is_elongated_and_contracts() -> None:
    labels, _ = _labels("healthy", "4ch")
    cavity = labels[:, 0] == Label.LV_BLOOD
    rows, columns = np.nonzero(cavity[0])
    points = np.stack([rows * 3.0, columns * 3.0])
    eigenvalues = np.linalg.eigvalsh(np.cov(points))
    assert eigenvalues[1] > 2.0 * eigenvalues[0]
    assert cavity[1].sum() < 0.75 * cavity[0].sum()


def test_same_subject_gives_the_same_labels() -> None:
    first, _ = _labels("infarct", "sax", phases=(0.3,))
    second, _ = _labels("infarct", "sax", phases=(0.3,))
    np.testing.assert_array_equal(first, second)
