"""Weighted median and trimmed mean: Flower's FedMedian / FedTrimmedAvg when weights are
equal, vendor-aware when they are not."""

import numpy as np
import pytest
from flwr.serverapp.strategy import FedMedian, FedTrimmedAvg
from scipy.stats import trim_mean

from strategies import VendorAwareFedAvg, reduce_arrays
from strategies.reducers import weighted_median, weighted_trimmed_mean
from tests.strategies.replies import train_reply


def _stack(sites: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(sites, 4, 3))


@pytest.mark.parametrize("sites", [1, 2, 3, 4, 5, 8])
def test_median_with_equal_weights_is_numpys_median(sites):
    stacked = _stack(sites)
    np.testing.assert_allclose(
        weighted_median(stacked, np.full(sites, 1 / sites)), np.median(stacked, axis=0)
    )


@pytest.mark.parametrize(("sites", "trim"), [(5, 0.2), (10, 0.2), (10, 0.3), (4, 0.25)])
def test_trimmed_mean_with_equal_weights_is_scipys_trim_mean(sites, trim):
    stacked = _stack(sites)
    np.testing.assert_allclose(
        weighted_trimmed_mean(stacked, np.full(sites, 1 / sites), trim),
        trim_mean(stacked, trim, axis=0),
    )


def test_a_vendor_with_half_the_weight_reaches_the_median():
    # Three sites of vendor A at 1, 2, 3 and one of vendor B at 9, vendors weighted equally:
    # the cumulative weight reaches 1/2 exactly between 3 and 9.
    stacked = np.array([[1.0], [2.0], [3.0], [9.0]])
    weights = np.array([1 / 6, 1 / 6, 1 / 6, 1 / 2])
    assert weighted_median(stacked, weights)[0] == pytest.approx(6.0)


def test_trimmed_mean_drops_an_outlier_a_mean_keeps():
    stacked = np.array([[1.0], [1.1], [0.9], [1.0], [1000.0]])
    weights = np.full(5, 0.2)
    assert reduce_arrays(stacked, weights, "trimmed_mean", 0.2)[0] == pytest.approx(1.0333, 1e-3)
    assert reduce_arrays(stacked, weights, "mean")[0] > 200


def test_a_site_with_zero_weight_does_not_move_the_median():
    stacked = np.array([[1.0], [500.0], [3.0]])
    assert weighted_median(stacked, np.array([0.5, 0.0, 0.5]))[0] == pytest.approx(2.0)


def test_an_unknown_reducer_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="mean, median, trimmed_mean"):
        reduce_arrays(_stack(3), [1 / 3] * 3, "krum")


def _replies(values: list[float]) -> list:
    return [
        train_reply(f"site{index}", "Siemens", 10.0, {"w": np.full(2, value, np.float32)})
        for index, value in enumerate(values)
    ]


def test_median_strategy_equals_flowers_fedmedian_for_equal_sites():
    values = [1.0, 4.0, 2.0, 100.0, 3.0]
    ours, _ = (
        VendorAwareFedAvg()
        .set_aggregation("examples", "median")
        .aggregate_train(1, _replies(values))
    )
    flowers, _ = FedMedian().aggregate_train(1, _replies(values))
    np.testing.assert_allclose(ours["w"].numpy(), flowers["w"].numpy())


def test_trimmed_mean_strategy_equals_flowers_fedtrimmedavg_for_equal_sites():
    values = [1.0, 4.0, 2.0, 100.0, 3.0]
    ours, _ = (
        VendorAwareFedAvg()
        .set_aggregation("examples", "trimmed_mean", 0.2)
        .aggregate_train(1, _replies(values))
    )
    flowers, _ = FedTrimmedAvg(beta=0.2).aggregate_train(1, _replies(values))
    np.testing.assert_allclose(ours["w"].numpy(), flowers["w"].numpy())
