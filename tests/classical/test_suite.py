"""The exam's classical baselines: names, tuned settings, untuned defaults, validation slices."""

from __future__ import annotations

import dataclasses

import pytest

from cardiomm.classical import EspiritSettings
from cardiomm.classical.suite import (
    BEST_CLASSICAL,
    reconstructors_for,
    validation_slices,
)
from cardiomm.classical.tuning import SettingChoice, TuningGrid
from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import EvaluationMasks, MaskSetting
from cardiomm.data.synthetic import generate_dataset, get_preset

CHOICE = SettingChoice(
    setting="ktRadial24",
    espirit=EspiritSettings(threshold=0.01, crop=0.0),
    regularization={"cg-sense": 0.03, "l1-wavelet": 0.001, "kt-sparse": 0.003},
    best_method="kt-sparse",
    points=(),
)


def test_best_classical_is_the_method_tuning_chose_under_its_own_name() -> None:
    (best,) = reconstructors_for([BEST_CLASSICAL], CHOICE)
    assert best.name == BEST_CLASSICAL
    assert best.method.name == "kt-sparse"
    assert best.method.regularization == pytest.approx(0.003)
    assert best.espirit == CHOICE.espirit


def test_each_named_method_gets_its_tuned_lambda_and_the_grids_iterations() -> None:
    grid = TuningGrid(max_iter={"l1-wavelet": 7})
    sense, wavelet = reconstructors_for(["cg-sense", "l1-wavelet"], CHOICE, grid)
    assert (sense.name, sense.method.regularization) == ("cg-sense", pytest.approx(0.03))
    assert wavelet.method.max_iter == 7


def test_untuned_methods_keep_their_defaults() -> None:
    (sense,) = reconstructors_for(["cg-sense"], None)
    assert sense.method == type(sense.method)()
    assert sense.espirit == EspiritSettings()


def test_best_classical_without_tuning_is_refused_with_the_way_out() -> None:
    with pytest.raises(ValueError, match=r"classical\.tune"):
        reconstructors_for([BEST_CLASSICAL], None)


def test_an_unknown_baseline_is_refused_with_the_choices() -> None:
    with pytest.raises(ValueError, match="kt-sparse"):
        reconstructors_for(["sense"], CHOICE)


@pytest.fixture(scope="module")
def cine_dataset(tmp_path_factory) -> SliceDataset:
    tiny = get_preset("tiny")
    site = dataclasses.replace(tiny.sites[0], patients=2, series=("cine_sax",))
    preset = dataclasses.replace(tiny, name="suite", sites=(site,))
    root = generate_dataset(tmp_path_factory.mktemp("suite"), preset, seed=0, show_progress=False)
    masks = EvaluationMasks((MaskSetting("ktRadial", 8),), acs_width=4, seed=0)
    return SliceDataset(sorted(root.rglob("cine_sax.mat")), masks, selection="ranking")


def test_validation_slices_hold_every_frame_and_score_the_selected_ones(cine_dataset) -> None:
    slices = validation_slices(cine_dataset)
    selected = {(i.file_number, i.slice_index) for i in cine_dataset.index.images}
    assert len(slices) == len(selected)
    first = slices[0]
    frames = first.masked_kspace.shape[0]
    assert first.masks.shape == (frames, *first.masked_kspace.shape[-2:])
    assert first.targets.shape == first.masks.shape
    assert set(first.frames) <= set(range(frames))


def test_a_slice_limit_spreads_the_slices_over_the_files(cine_dataset) -> None:
    slices = validation_slices(cine_dataset, limit=2)
    assert len(slices) == 2
    everything = validation_slices(cine_dataset)
    assert slices[1].targets.tobytes() != everything[0].targets.tobytes()
