"""Confidence intervals and paired comparisons over training seeds and held-out files.

A method's score on the held-out centres is a grid ``scores[seed, file]``: one row per
training seed (one row for a method that trains nothing, such as a classical method), one column per
scored file (each file's images averaged first, as the CMRxRecon evaluation does). Both the
seeds and the files are samples: another seed trains another model, another patient gives
another file. The two-stage bootstrap resamples both (seeds with replacement, and files with
replacement, independently), so an interval is as wide as both sources of variation make it.

Comparisons are paired: both methods are scored on the same files, and the same resampled
files enter both sides of each bootstrap draw; methods trained with the same seeds (same
initial weights and data order) share the resampled seeds too.

Every function is deterministic for its ``seed``: the same grid gives the same interval.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np

DEFAULT_RESAMPLES = 2000
DEFAULT_LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A mean with its two-sided percentile bootstrap interval.

    Attributes:
        mean: the mean over every seed and file of the grid.
        ci_low, ci_high: the interval's ends.
        seeds: training seeds (rows of the grid).
        files: files (columns of the grid).
    """

    mean: float
    ci_low: float
    ci_high: float
    seeds: int
    files: int


@dataclasses.dataclass(frozen=True)
class Difference:
    """A paired difference A - B with its interval and a two-sided bootstrap p-value.

    Attributes:
        mean: mean of A minus mean of B over the shared files.
        ci_low, ci_high: the interval's ends.
        p_value: two-sided: twice the smaller share of bootstrap differences on either side
            of zero, with the +1 correction that keeps it above 0 for a finite bootstrap.
        seeds_a, seeds_b: training seeds of each side.
        files: shared files.
        paired_seeds: whether both sides shared each resampled seed.
    """

    mean: float
    ci_low: float
    ci_high: float
    p_value: float
    seeds_a: int
    seeds_b: int
    files: int
    paired_seeds: bool


def bootstrap_mean(
    scores: np.ndarray,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Estimate:
    """The mean of a (seeds, files) grid with its two-stage bootstrap interval.

    Each of ``resamples`` draws picks ``seeds`` rows and ``files`` columns with replacement
    (the rows first, then the columns, from one ``numpy.random.default_rng(seed)``) and takes
    the mean of that sub-grid; the interval is the draws' (1 - level) / 2 and (1 + level) / 2
    quantiles (numpy's linear interpolation). A single row resamples files only.

    Args:
        scores: float (seeds, files), finite.
        resamples: bootstrap draws.
        level: coverage of the interval.
        seed: seed of the draws.
    """
    grid = _grid(scores, "scores")
    rng = np.random.default_rng(seed)
    rows, columns = _draw(rng, grid.shape, resamples)
    draws = _resampled_means(grid, rows, columns)
    low, high = _interval(draws, level)
    return Estimate(float(grid.mean()), low, high, grid.shape[0], grid.shape[1])


def paired_difference(
    scores_a: np.ndarray,
    scores_b: np.ndarray,
    paired_seeds: bool = False,
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Difference:
    """Mean of A minus mean of B, both (seeds, files) grids over the same files.

    Each draw resamples the files once for both sides; the seeds of A and of B are resampled
    separately, or together when ``paired_seeds`` (both trained with the same seeds, in the
    same row order). Draw order from ``numpy.random.default_rng(seed)``: A's rows, then B's
    rows (none when paired), then the shared columns.

    Args:
        scores_a, scores_b: float (seeds, files) with the same files in the same order.
        paired_seeds: pair the seeds (needs the same number of rows).
        resamples, level, seed: as in :func:`bootstrap_mean`.
    """
    grid_a, grid_b = _grid(scores_a, "scores_a"), _grid(scores_b, "scores_b")
    if grid_a.shape[1] != grid_b.shape[1]:
        raise ValueError(
            f"a paired difference needs the same files on both sides, got {grid_a.shape[1]} "
            f"and {grid_b.shape[1]}"
        )
    if paired_seeds and grid_a.shape[0] != grid_b.shape[0]:
        raise ValueError(
            f"paired seeds need as many seeds on both sides, got {grid_a.shape[0]} and "
            f"{grid_b.shape[0]}"
        )
    rng = np.random.default_rng(seed)
    rows_a = rng.integers(0, grid_a.shape[0], size=(resamples, grid_a.shape[0]))
    rows_b = (
        rows_a if paired_seeds else rng.integers(0, grid_b.shape[0], (resamples, grid_b.shape[0]))
    )
    columns = rng.integers(0, grid_a.shape[1], size=(resamples, grid_a.shape[1]))
    draws = _resampled_means(grid_a, rows_a, columns) - _resampled_means(grid_b, rows_b, columns)
    low, high = _interval(draws, level)
    below, above = int(np.sum(draws <= 0)), int(np.sum(draws >= 0))
    p_value = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return Difference(
        mean=float(grid_a.mean() - grid_b.mean()),
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        seeds_a=grid_a.shape[0],
        seeds_b=grid_b.shape[0],
        files=grid_a.shape[1],
        paired_seeds=paired_seeds,
    )


def bootstrap_statistic(
    grids: Sequence[np.ndarray],
    statistic: Callable[..., np.ndarray],
    resamples: int = DEFAULT_RESAMPLES,
    level: float = DEFAULT_LEVEL,
    seed: int = 0,
) -> Estimate:
    """Any statistic of paired (seeds, files) grids with its two-stage bootstrap interval.

    Each draw resamples the seeds and the files as :func:`bootstrap_mean` does, the same
    rows and columns for every grid (their cells are pairs: a measurement and its
    reference). ``statistic`` takes one (draws, cells) array per grid, each draw's sub-grid
    flattened, and returns the (draws,) values; the estimate is its value on the grids
    themselves (one draw of every cell). Draws where it is not finite (e.g. a correlation
    of constant values) are left out of the interval; NaN when none is finite.

    Args:
        grids: float (seeds, files) grids of one shape, finite.
        statistic: vectorised over draws, e.g. ``lambda a, b: np.abs(a - b).mean(axis=1)``.
        resamples, level, seed: as in :func:`bootstrap_mean`.
    """
    checked = [_grid(grid, f"grids[{index}]") for index, grid in enumerate(grids)]
    if not checked or any(grid.shape != checked[0].shape for grid in checked):
        raise ValueError("bootstrap_statistic needs one or more grids of one shape")
    shape = checked[0].shape
    rng = np.random.default_rng(seed)
    rows, columns = _draw(rng, shape, resamples)
    cells = rows[:, :, None] * shape[1] + columns[:, None, :]  # (draws, seeds, files)
    flat = cells.reshape(resamples, -1)
    estimate = float(statistic(*(grid.reshape(1, -1) for grid in checked))[0])
    draws = np.asarray(statistic(*(grid.reshape(-1)[flat] for grid in checked)), dtype=float)
    finite = draws[np.isfinite(draws)]
    low, high = _interval(finite, level) if finite.size else (float("nan"), float("nan"))
    return Estimate(estimate, low, high, shape[0], shape[1])


def _grid(scores: np.ndarray, name: str) -> np.ndarray:
    grid = np.asarray(scores, dtype=np.float64)
    if grid.ndim != 2 or 0 in grid.shape:
        raise ValueError(f"{name} must be a non-empty (seeds, files) grid, got shape {grid.shape}")
    if not np.isfinite(grid).all():
        raise ValueError(f"{name} holds non-finite scores")
    return grid


def _draw(
    rng: np.random.Generator, shape: tuple[int, int], resamples: int
) -> tuple[np.ndarray, np.ndarray]:
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    rows = rng.integers(0, shape[0], size=(resamples, shape[0]))
    columns = rng.integers(0, shape[1], size=(resamples, shape[1]))
    return rows, columns


def _resampled_means(grid: np.ndarray, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(resamples,) means of grid[rows[b]][:, columns[b]] for every draw b."""
    # Mean over the resampled sub-grid = mean over resampled rows of each row's mean over the
    # resampled columns: gather the columns per draw, then the rows.
    per_row = grid[:, columns].mean(axis=2)  # (seeds, resamples)
    return np.take_along_axis(per_row.T, rows, axis=1).mean(axis=1)


def _interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
