"""Bootstrap intervals over seeds and files, and paired differences."""

import numpy as np
import pytest

from simulations.study.statistics import bootstrap_mean, paired_difference

GRID = np.array([[30.0, 32.0, 29.0], [31.0, 33.0, 27.0]])  # 2 seeds x 3 files


def _hand_bootstrap(grid: np.ndarray, resamples: int, seed: int) -> list[float]:
    """The documented draws written out one by one: per draw, the seeds, then the files."""
    rng = np.random.default_rng(seed)
    seed_draws = rng.integers(0, grid.shape[0], size=(resamples, grid.shape[0]))
    file_draws = rng.integers(0, grid.shape[1], size=(resamples, grid.shape[1]))
    means = []
    for seeds, files in zip(seed_draws, file_draws, strict=True):
        total = 0.0
        for row in seeds:
            for column in files:
                total += grid[row, column]
        means.append(total / (len(seeds) * len(files)))
    return means


def test_the_interval_is_the_hand_computed_two_stage_bootstrap():
    means = _hand_bootstrap(GRID, resamples=50, seed=7)
    low, high = np.quantile(means, [0.025, 0.975])
    estimate = bootstrap_mean(GRID, resamples=50, seed=7)
    assert estimate.mean == pytest.approx(GRID.mean())
    assert estimate.ci_low == pytest.approx(low)
    assert estimate.ci_high == pytest.approx(high)
    assert (estimate.seeds, estimate.files) == (2, 3)


def test_the_same_seed_gives_the_same_interval():
    assert bootstrap_mean(GRID, seed=3) == bootstrap_mean(GRID, seed=3)


def test_constant_scores_give_a_zero_width_interval():
    estimate = bootstrap_mean(np.full((3, 5), 31.5))
    assert estimate.ci_low == estimate.ci_high == pytest.approx(31.5)


def test_the_interval_holds_the_mean_and_narrows_with_more_files():
    rng = np.random.default_rng(0)
    few = bootstrap_mean(rng.normal(30, 2, size=(3, 8)))
    many = bootstrap_mean(rng.normal(30, 2, size=(3, 200)))
    assert few.ci_low < few.mean < few.ci_high
    assert many.ci_high - many.ci_low < few.ci_high - few.ci_low


def test_seed_to_seed_spread_widens_the_interval():
    files = np.random.default_rng(1).normal(30, 1, size=20)
    steady = bootstrap_mean(np.stack([files, files, files]))
    spread = bootstrap_mean(np.stack([files - 1, files, files + 1]))
    assert spread.ci_high - spread.ci_low > steady.ci_high - steady.ci_low


def test_a_difference_of_a_method_with_itself_is_zero_with_p_one():
    difference = paired_difference(GRID, GRID, paired_seeds=True)
    assert difference.mean == difference.ci_low == difference.ci_high == 0
    assert difference.p_value == 1.0


def test_a_consistent_gain_is_significant_even_when_files_differ_a_lot():
    files = np.random.default_rng(2).normal(30, 5, size=(1, 30))
    difference = paired_difference(files + 0.5, files)
    assert difference.mean == pytest.approx(0.5)
    assert difference.ci_low == pytest.approx(0.5)
    assert difference.p_value < 0.01


def test_a_gain_inside_the_noise_is_not_significant():
    rng = np.random.default_rng(3)
    difference = paired_difference(rng.normal(30, 2, (3, 10)), rng.normal(30, 2, (1, 10)))
    assert difference.ci_low < 0 < difference.ci_high
    assert difference.p_value > 0.05


def test_paired_seeds_need_as_many_seeds_on_both_sides():
    with pytest.raises(ValueError, match="as many seeds"):
        paired_difference(GRID, GRID[:1], paired_seeds=True)


def test_a_difference_needs_the_same_files():
    with pytest.raises(ValueError, match="same files"):
        paired_difference(GRID, GRID[:, :2])


def test_non_finite_scores_are_refused():
    with pytest.raises(ValueError, match="non-finite"):
        bootstrap_mean(np.array([[30.0, np.nan]]))
