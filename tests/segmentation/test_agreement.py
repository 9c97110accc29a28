"""Bland-Altman agreement statistics and their plot."""

import math

import numpy as np
import pytest

from cardiomm.segmentation.agreement import agreement, bland_altman_plot


def test_bias_limits_error_and_correlation_follow_their_definitions():
    reference = np.array([50.0, 55.0, 60.0, 65.0, 70.0])
    measured = reference + np.array([1.0, -1.0, 2.0, 0.0, 3.0])
    result = agreement(measured, reference)
    differences = measured - reference
    assert result.n == 5
    assert result.bias == pytest.approx(1.0)
    assert result.mean_absolute_error == pytest.approx(np.abs(differences).mean())
    spread = differences.std(ddof=1)
    assert (result.lower_limit, result.upper_limit) == pytest.approx(
        (1.0 - 1.96 * spread, 1.0 + 1.96 * spread)
    )
    assert result.correlation == pytest.approx(np.corrcoef(measured, reference)[0, 1])


def test_the_intervals_hold_the_estimates_and_repeat_with_the_seed():
    rng = np.random.default_rng(1)
    reference = rng.uniform(40, 70, 30)
    measured = reference + rng.normal(0.5, 2.0, 30)
    first, again = agreement(measured, reference, seed=4), agreement(measured, reference, seed=4)
    assert first == again
    assert first.bias_ci[0] <= first.bias <= first.bias_ci[1]
    low, high = first.mean_absolute_error_ci
    assert low <= first.mean_absolute_error <= high


def test_pairs_with_a_missing_value_are_left_out():
    result = agreement([50.0, math.nan, 60.0], [49.0, 55.0, 58.0])
    assert result.n == 2 and result.bias == pytest.approx(1.5)


def test_one_pair_has_an_error_but_no_interval_or_limits():
    result = agreement([50.0], [48.0])
    assert result.mean_absolute_error == 2.0 and math.isnan(result.bias_ci[0])
    assert math.isnan(result.upper_limit)


def test_the_plot_has_a_panel_per_group(tmp_path):
    groups = {
        "SENSE ktRadial24": ([50, 55, 60], [52, 54, 63]),
        "FedAvg ktRadial24": ([51, 55, 61], [52, 54, 63]),
    }
    path = bland_altman_plot(groups, tmp_path / "bland_altman.png")
    assert path.is_file() and path.stat().st_size > 5000
