"""Tissue properties and signal equations behave as cardiac MR physics says."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.data.synthetic.contrast import (
    bssfp,
    inversion_null_time,
    inversion_recovery,
    render_signal,
)
from cardiomm.data.synthetic.labels import Label
from cardiomm.data.synthetic.sequences import molli_inversion_times, sequence_for
from cardiomm.data.synthetic.smooth_maps import sample_field_maps
from cardiomm.data.synthetic.subjects import sample_subject
from cardiomm.data.synthetic.tissues import TABULATED_FIELDS_T, TISSUES, tissue_table


def test_t1_grows_and_t2_shrinks_with_field_strength() -> None:
    tables = [tissue_table(field) for field in TABULATED_FIELDS_T]
    for label, tissue in TISSUES.items():
        if tissue.proton_density == 0:
            continue
        t1 = [table.t1_ms[label] for table in tables]
        t2 = [table.t2_ms[label] for table in tables]
        assert np.all(np.diff(t1) > 0), label.name
        assert np.all(np.diff(t2) <= 0), label.name


def test_bssfp_on_resonance_is_the_textbook_steady_state() -> None:
    t1, t2, flip = 1200.0, 45.0, np.deg2rad(50)
    signal = abs(bssfp(1.0, t1, t2, flip, 3.0, 0.0))
    ratio = t1 / t2
    expected = np.sin(flip) / ((ratio + 1) - np.cos(flip) * (ratio - 1))
    # The textbook form is the TR << T2 limit; TR / T2 = 7 % here.
    assert signal == pytest.approx(expected, rel=0.01)


def test_bssfp_goes_dark_on_the_band() -> None:
    tr = 3.0
    on_resonance = abs(bssfp(0.9, 1900.0, 200.0, np.deg2rad(45), tr, 0.0))
    band = abs(bssfp(0.9, 1900.0, 200.0, np.deg2rad(45), tr, 1000.0 / (2 * tr)))
    assert band < 0.1 * on_resonance


def _band_fraction(field: float) -> float:
    """Share of a 300 x 300 mm plane sitting within 15 % of a bSSFP band."""
    rng = np.random.default_rng(0)
    fractions = []
    for _ in range(5):
        maps = sample_field_maps(rng, field)
        y = np.linspace(-150, 150, 101)[:, None]
        x = np.linspace(-150, 150, 101)[None, :]
        off = maps.off_resonance_map(y, x, 0.0, (40.0, 0.0))
        cycles = np.mod(off * 3.0 / 1000.0 + 0.5, 1.0)  # 0 or 1 at a band, TR = 3 ms
        fractions.append(np.mean(np.minimum(cycles, 1 - cycles) < 0.15))
    return float(np.mean(fractions))


def test_banding_appears_at_high_field_only() -> None:
    assert _band_fraction(0.55) == 0.0
    assert _band_fraction(5.0) > _band_fraction(3.0) > 0.02


def test_b1_shading_grows_with_field() -> None:
    rng = np.random.default_rng(0)
    amplitudes = [sample_field_maps(rng, field).b1_amplitude for field in TABULATED_FIELDS_T]
    assert amplitudes == sorted(amplitudes)
    assert amplitudes[2] >= 0.25 > amplitudes[1]


def test_molli_inversion_times_are_sorted_and_heart_rate_spaced() -> None:
    times = molli_inversion_times(9, 1000.0)
    assert len(times) == 9
    assert list(times) == sorted(times)
    assert times[:3] == (100.0, 180.0, 260.0)
    assert times[-1] == pytest.approx(100.0 + 3 * 1000.0)


def test_t1_recovery_crosses_zero_at_t1_ln2() -> None:
    t1 = 1000.0
    null = t1 * np.log(2)
    assert inversion_recovery(t1, null - 50) < 0 < inversion_recovery(t1, null + 50)


def _frame_means(kind: str, field: float = 1.5) -> dict[Label, np.ndarray]:
    subject = sample_subject(np.random.default_rng(0), "infarct")
    tissues = tissue_table(field)
    if kind == "lge":
        tissues = tissues.post_contrast(subject.plasma_gadolinium_mm)
    frames = {"t1map": 9, "t2map": 3}.get(kind, 1)
    sequence = sequence_for(kind, tissues, subject, frames, np.random.default_rng(0))
    labels = np.repeat(np.arange(len(Label), dtype=np.uint8)[None, :, None], frames, axis=0)
    ones = np.ones((len(Label), 1))
    signal = np.abs(render_signal(labels, sequence, tissues, ones, 0 * ones, ones))
    return {label: signal[:, label, 0] for label in Label}


def test_lge_nulls_myocardium_and_lights_up_scar_and_blood() -> None:
    signal = _frame_means("lge")
    assert signal[Label.LV_MYOCARDIUM][0] < 0.1 * signal[Label.SCAR][0]
    assert signal[Label.SCAR][0] > signal[Label.LV_BLOOD][0] > 2 * signal[Label.LV_MYOCARDIUM][0]


def test_inversion_null_time_nulls_the_given_t1() -> None:
    null = inversion_null_time(500.0, 2000.0)
    assert abs(inversion_recovery(500.0, null, 2000.0)) < 1e-9


def test_black_blood_suppresses_blood() -> None:
    signal = _frame_means("blackblood")
    assert signal[Label.LV_BLOOD][0] < 0.1 * signal[Label.LV_MYOCARDIUM][0]


def test_t2w_stir_suppresses_fat() -> None:
    signal = _frame_means("t2w")
    assert signal[Label.SUBCUTANEOUS_FAT][0] < 0.1 * signal[Label.LV_MYOCARDIUM][0]


def test_t2_map_decays_with_preparation_time_at_the_tissue_t2() -> None:
    signal = _frame_means("t2map")[Label.LV_MYOCARDIUM]
    measured_t2 = (55.0 - 35.0) / np.log(signal[1] / signal[2])
    assert measured_t2 == pytest.approx(tissue_table(1.5).t2_ms[Label.LV_MYOCARDIUM], rel=1e-6)
