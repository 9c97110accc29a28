"""How well a measurement agrees with its reference: Bland-Altman statistics with
bootstrap confidence intervals, and the Bland-Altman plot.

For paired values (one pair per scan): the mean absolute error, the bias (mean of measured
minus reference), the 95 % limits of agreement (bias +- 1.96 SD of the differences) and
Pearson's correlation, each with a 95 % percentile interval from resampling the scans
(seeded, so the same data give the same interval).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cardiomm.figures import save_figure

_RESAMPLES = 2000
_LEVEL = 0.95


@dataclasses.dataclass(frozen=True)
class Agreement:
    """Agreement of ``n`` paired values; each ``(low, high)`` a 95 % bootstrap interval
    (NaN when there are fewer than 2 pairs)."""

    n: int
    mean_absolute_error: float
    mean_absolute_error_ci: tuple[float, float]
    bias: float
    bias_ci: tuple[float, float]
    lower_limit: float
    upper_limit: float
    correlation: float
    correlation_ci: tuple[float, float]


def agreement(measured: Sequence[float], reference: Sequence[float], seed: int = 0) -> Agreement:
    """Bland-Altman statistics of the pairs whose both values are finite."""
    values = np.array([measured, reference], dtype=np.float64).T.reshape(-1, 2)
    pairs = values[np.isfinite(values).all(axis=1)]
    differences = pairs[:, 0] - pairs[:, 1]
    n = len(differences)
    if n < 2:  # no spread, no interval, no correlation
        nan_interval = (math.nan, math.nan)
        error = float(np.abs(differences).mean()) if n else math.nan
        bias = float(differences.mean()) if n else math.nan
        return Agreement(
            n, error, nan_interval, bias, nan_interval, math.nan, math.nan, math.nan, nan_interval
        )
    spread = float(differences.std(ddof=1))
    bias = float(differences.mean())
    draws = np.random.default_rng(seed).integers(0, n, size=(_RESAMPLES, n))
    resampled = differences[draws]
    return Agreement(
        n=n,
        mean_absolute_error=float(np.abs(differences).mean()),
        mean_absolute_error_ci=_interval(np.abs(resampled).mean(axis=1)),
        bias=bias,
        bias_ci=_interval(resampled.mean(axis=1)),
        lower_limit=bias - 1.96 * spread,
        upper_limit=bias + 1.96 * spread,
        correlation=_correlation(pairs[:, 0], pairs[:, 1]),
        correlation_ci=_interval(
            np.array([_correlation(pairs[rows, 0], pairs[rows, 1]) for rows in draws])
        ),
    )


def bland_altman_plot(
    groups: dict[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    quantity: str = "LVEF (%)",
) -> Path:
    """One Bland-Altman panel per group (e.g. method at a setting): difference against mean
    of each pair, with the bias and the limits of agreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(groups)
    columns = min(3, max(1, len(names)))
    rows = math.ceil(len(names) / columns) if names else 1
    figure, axes = plt.subplots(
        rows, columns, figsize=(4.2 * columns, 3.4 * rows), squeeze=False, sharey=True
    )
    for axis, name in zip(axes.flat, names, strict=False):
        measured, reference = (np.asarray(values, dtype=float) for values in groups[name])
        finite = np.isfinite(measured) & np.isfinite(reference)
        means = (measured[finite] + reference[finite]) / 2
        differences = measured[finite] - reference[finite]
        stats = agreement(measured, reference)
        axis.scatter(means, differences, s=14, alpha=0.8)
        lines = ((stats.bias, "-"), (stats.lower_limit, "--"), (stats.upper_limit, "--"))
        for value, style in lines:
            if math.isfinite(value):
                axis.axhline(value, linestyle=style, color="black", linewidth=0.8)
        axis.set_title(f"{name} (n={stats.n})", fontsize=9)
        axis.set_xlabel(f"mean {quantity}")
        axis.set_ylabel(f"difference {quantity}")
    for axis in list(axes.flat)[len(names) :]:
        axis.set_visible(False)
    return save_figure(figure, path, dpi=120)


def _correlation(first: np.ndarray, second: np.ndarray) -> float:
    if len(first) < 2 or first.std() == 0 or second.std() == 0:
        return math.nan
    return float(np.corrcoef(first, second)[0, 1])


def _interval(draws: np.ndarray) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return (math.nan, math.nan)
    tail = (1 - _LEVEL) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return (float(low), float(high))
