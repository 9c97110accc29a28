"""Segmented breath-hold acquisition and cine inflow: what makes a cine less than perfectly
sparse in time."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.data.synthetic import SERIES, get_preset, sample_subject, simulate_series
from cardiomm.data.synthetic.acquisition import fft2c, ifft2c
from cardiomm.data.synthetic.breath_hold import BreathHold, sample_breath_hold, still_breath_hold
from cardiomm.data.synthetic.contrast import cine_inflow_gain
from cardiomm.data.synthetic.labels import Label


def test_each_heartbeat_acquires_one_contiguous_segment_of_lines() -> None:
    hold = sample_breath_hold(np.random.default_rng(0))
    beats = hold.beat_of_lines(120)
    assert beats[0] == 0 and beats[-1] == hold.beats - 1
    assert np.all(np.diff(beats) >= 0) and set(beats) == set(range(hold.beats))


def test_a_still_breath_hold_changes_nothing() -> None:
    np.testing.assert_allclose(still_breath_hold().modulation(16, 32, 2.0, 1.0), 1.0)


def test_one_beat_shift_moves_the_image_by_that_many_millimetres() -> None:
    hold = BreathHold(shifts_mm=np.array([[4.0, -2.0]]), gains=np.ones(1))
    image = np.zeros((32, 64), dtype=complex)
    image[10, 20] = 1.0
    moved = ifft2c(fft2c(image) * hold.modulation(32, 64, 2.0, 1.0))
    assert np.unravel_index(np.abs(moved).argmax(), moved.shape) == (12, 18)


def test_breath_holds_drift_a_few_millimetres_with_percent_gains() -> None:
    holds = [sample_breath_hold(np.random.default_rng(seed)) for seed in range(20)]
    for hold in holds:
        assert 8 <= hold.beats <= 12
        assert np.abs(hold.gains - 1).max() < 0.08
    extents = [hold.describe()["largest_displacement_mm"] for hold in holds]
    assert 0.2 < np.median(extents) < 3.0


def test_inflow_gain_follows_the_flow_through_the_cycle() -> None:
    phases = np.array([0.0, 0.3, 0.8, 1.0, 0.9, 0.5, 0.2, 0.1])
    labels = np.zeros((8, 4, 4), dtype=np.uint8)
    labels[:, 0] = Label.LV_BLOOD
    labels[:, 1] = Label.VESSEL_BLOOD
    labels[:, 2] = Label.LV_MYOCARDIUM
    gain = cine_inflow_gain(labels, phases)
    np.testing.assert_allclose(gain[:, 2], 1.0)
    lv, vessel = gain[:, 0, 0], gain[:, 1, 0]
    assert lv.max() - lv.min() > 0.2
    # The great vessels carry their flow in systole (the phase rising), not in filling.
    assert vessel[1] > vessel[5] + 0.2


def test_a_simulated_cine_records_its_breath_holds_and_vendor_chain() -> None:
    preset = get_preset("tiny")
    site = preset.sites[0]
    subject = sample_subject(np.random.default_rng(1))
    series = simulate_series(
        site, preset.protocol, subject, SERIES["cine_sax"], np.random.default_rng(0)
    )
    sidecar = series.sidecar
    assert len(sidecar["breath_holds"]) == series.kspace.shape[1]
    assert all(hold["beats"] >= 8 for hold in sidecar["breath_holds"])
    assert sidecar["vendor_chain"]["vendor"] == site.vendor


def test_frameless_series_are_acquired_without_heartbeat_segments() -> None:
    preset = get_preset("tiny")
    site = next(s for s in preset.sites if "blackblood" in s.series)
    subject = sample_subject(np.random.default_rng(1))
    series = simulate_series(
        site, preset.protocol, subject, SERIES["blackblood"], np.random.default_rng(0)
    )
    assert all(hold["beats"] == 1 for hold in series.sidecar["breath_holds"])


@pytest.mark.parametrize("frame", [0, 3])
def test_cine_noise_is_drawn_anew_in_every_frame(frame: int) -> None:
    preset = get_preset("tiny")
    subject = sample_subject(np.random.default_rng(1))
    series = simulate_series(
        preset.sites[0], preset.protocol, subject, SERIES["cine_sax"], np.random.default_rng(0)
    )
    corner = series.kspace[:, 0, 0, :3, :3]
    assert not np.allclose(corner[frame], corner[(frame + 1) % corner.shape[0]])
