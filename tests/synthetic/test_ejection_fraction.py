"""The EF measured on the generated labels is the EF the sidecar states.

Volumes follow the short-axis stack convention: LV blood-pool pixel area x pixel size x slice
thickness, summed over slices. The stack volumes of the model are exact, so the only error
is the pixel discretisation of each cavity ellipse. At the paper preset's pixels (about
3.8 x 4.3 mm) a sweep of 12 subjects stayed within 1.0 EF point; the tests allow 1.5 points.
The tiny preset's 8-10 mm pixels leave only a few pixels per cavity, hence 6 points there.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiomm.data.synthetic import read_labels, read_sidecar, sample_subject, simulate_series
from cardiomm.data.synthetic.anatomy import render_labels, slice_geometry
from cardiomm.data.synthetic.labels import Label
from cardiomm.data.synthetic.motion import contraction, end_systole_ms, frame_times_ms, lv_model
from cardiomm.data.synthetic.series import SERIES
from cardiomm.data.synthetic.shapes import ImageGrid
from cardiomm.data.synthetic.sites import PAPER


def _label_volumes_ml(labels: np.ndarray, sidecar: dict) -> np.ndarray:
    dy, dx = sidecar["pixel_spacing_mm"]
    areas = (labels == Label.LV_BLOOD).sum(axis=(-2, -1)) * dy * dx
    return areas.sum(axis=1) * sidecar["slice_thickness_mm"] / 1000.0


def _ejection_fraction(volumes: np.ndarray) -> float:
    return float((volumes.max() - volumes.min()) / volumes.max())


def test_ef_from_generated_cine_sax_labels_matches_the_stated_ef() -> None:
    subject = sample_subject(np.random.default_rng(7), "infarct")
    series = simulate_series(
        PAPER.sites[0], PAPER.protocol, subject, SERIES["cine_sax"], np.random.default_rng(0)
    )
    volumes = _label_volumes_ml(series.labels, series.sidecar)
    stated = series.sidecar["cardiac"]
    assert stated["ejection_fraction"] == pytest.approx(subject.ejection_fraction)
    assert _ejection_fraction(volumes) == pytest.approx(stated["ejection_fraction"], abs=0.015)
    assert volumes.max() == pytest.approx(stated["lv_edv_ml"], rel=0.03)
    np.testing.assert_allclose(volumes, stated["lv_volume_ml"], rtol=0.05)


@pytest.mark.parametrize("disease", ["healthy", "dilated", "hypertrophic", "infarct"])
@pytest.mark.parametrize("seed", [0, 1])
def test_label_ef_matches_the_subject_ef_for_every_disease(disease: str, seed: int) -> None:
    subject = sample_subject(np.random.default_rng(seed), disease)
    lv = lv_model(subject, 9)
    phases = contraction(
        frame_times_ms(12, subject.rr_ms), subject.rr_ms, end_systole_ms(subject, 12)
    )
    grid = ImageGrid(ny=80, nx=176, dy_mm=3.8, dx_mm=4.3)
    labels = render_labels(subject, lv, slice_geometry(subject, lv, "sax", "cine", 9), grid, phases)
    sidecar = {"pixel_spacing_mm": [3.8, 4.3], "slice_thickness_mm": lv.slice_thickness_mm}
    volumes = _label_volumes_ml(labels, sidecar)
    assert _ejection_fraction(volumes) == pytest.approx(subject.ejection_fraction, abs=0.015)


def test_ef_of_the_tiny_preset_files_matches_their_sidecars(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        if entry["stem"] != "cine_sax":
            continue
        path = tiny_root / entry["path"]
        sidecar = read_sidecar(path)
        volumes = _label_volumes_ml(read_labels(path)["labels"], sidecar)
        stated = sidecar["cardiac"]["ejection_fraction"]
        assert _ejection_fraction(volumes) == pytest.approx(stated, abs=0.06), entry["path"]


def test_diseases_change_ef_and_volume_the_way_they_should() -> None:
    subjects = {
        disease: [sample_subject(np.random.default_rng(seed), disease) for seed in range(20)]
        for disease in ("healthy", "dilated", "hypertrophic", "infarct")
    }
    mean = {
        disease: (
            np.mean([s.ejection_fraction for s in group]),
            np.mean([s.lv_edv_model_ml for s in group]),
            np.mean([s.wall_mm[1] for s in group]),
        )
        for disease, group in subjects.items()
    }
    assert mean["dilated"][0] < mean["infarct"][0] < mean["healthy"][0] < mean["hypertrophic"][0]
    assert mean["dilated"][1] > 1.5 * mean["healthy"][1]
    assert mean["hypertrophic"][2] > 1.6 * mean["healthy"][2]
    assert all(s.scar is not None for s in subjects["infarct"])
    assert all(s.scar is None for s in subjects["healthy"])
