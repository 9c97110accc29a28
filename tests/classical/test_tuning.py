"""Tuning on validation slices: the grid grows past an edge that holds the best value, the
best ESPIRiT setting and method are chosen, and the choice round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.classical import EspiritSettings
from cardiomm.classical.tuning import SettingChoice, TuningGrid, ValidationSlice, tune_setting


def _slices(phantom, noise: float) -> list[ValidationSlice]:
    rng = np.random.default_rng(0)
    masks = phantom.masks("ktGaussian", 4)
    noisy = phantom.kspace + noise * (
        rng.standard_normal(phantom.kspace.shape) + 1j * rng.standard_normal(phantom.kspace.shape)
    )
    targets = np.abs(phantom.images).astype(np.float32)
    return [ValidationSlice(noisy * masks[:, None], masks, targets, (0, 1, 2), False)]


def _grid(**values) -> TuningGrid:
    return TuningGrid(
        methods=("cg-sense", "kt-sparse"),
        lambdas={"cg-sense": (1e-2, 1e-1), "kt-sparse": (1e-2, 1e-1)},
        espirit=(EspiritSettings(kernel_width=4, crop=0.0),),
        max_iter={"cg-sense": 10, "kt-sparse": 15},
        **values,
    )


def test_a_best_value_on_the_grid_edge_grows_the_grid(phantom) -> None:
    choice = tune_setting("ktGaussian4", _slices(phantom, noise=0.0), _grid(extensions=2))
    tried = sorted(p.regularization for p in choice.points if p.method == "kt-sparse")
    # Noise-free data want little regularisation: the grid grew below 1e-2.
    assert tried[0] < 1e-2
    assert choice.regularization["kt-sparse"] in tried


def test_without_extensions_the_grid_stays_as_given(phantom) -> None:
    choice = tune_setting("ktGaussian4", _slices(phantom, noise=0.0), _grid(extensions=0))
    tried = {p.regularization for p in choice.points if p.method == "kt-sparse"}
    assert tried == {1e-2, 1e-1}


def test_the_best_method_has_the_highest_validation_psnr(phantom) -> None:
    choice = tune_setting("ktGaussian4", _slices(phantom, noise=0.02), _grid(extensions=1))
    best = {name: choice.validation_psnr(name) for name in ("cg-sense", "kt-sparse")}
    assert choice.best_method == max(best, key=best.get)


def test_a_choice_round_trips_through_its_record(phantom) -> None:
    choice = tune_setting("ktGaussian4", _slices(phantom, noise=0.02), _grid(extensions=0))
    again = SettingChoice.from_dict(choice.to_dict())
    assert again == choice


def test_no_validation_slices_is_an_error_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="ktRadial24"):
        tune_setting("ktRadial24", [], _grid())


@pytest.mark.parametrize(
    ("lambdas", "message"),
    [((1e-2,), "at least two"), ((1e-1, 1e-2), "increasing"), ((0.0, 1e-2), "> 0")],
)
def test_a_malformed_lambda_grid_is_refused(lambdas, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TuningGrid(methods=("cg-sense",), lambdas={"cg-sense": lambdas})
