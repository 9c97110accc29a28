"""Coordinate-wise weighted reducers over the sites' arrays: mean, median, trimmed mean.

Robust reducers stop one broken site from setting a coordinate, but an unweighted median also
ignores that a rare vendor's sites are few: weighted by the vendor-balanced weights, a vendor
with half the weight can hold the median even with one site of four.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

REDUCERS = ("mean", "median", "trimmed_mean")


def reduce_arrays(
    stacked: np.ndarray, weights: Sequence[float], reducer: str = "mean", trim: float = 0.2
) -> np.ndarray:
    """Reduce ``stacked`` over its first axis.

    Args:
        stacked: float64 (sites, ...) one array per site.
        weights: (sites,) non-negative weights summing to 1.
        reducer: ``mean``, ``median`` or ``trimmed_mean``.
        trim: share of the total weight cut from each tail (trimmed mean), in [0, 0.5).

    Returns:
        float64 (...) the reduced array.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if reducer == "mean":
        return np.tensordot(weights, stacked, axes=1)
    if reducer == "median":
        return weighted_median(stacked, weights)
    if reducer == "trimmed_mean":
        return weighted_trimmed_mean(stacked, weights, trim)
    raise ValueError(f"reducer must be one of {', '.join(REDUCERS)}, got {reducer!r}")


def weighted_median(stacked: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per coordinate, the value where the cumulative weight reaches one half.

    When the cumulative weight hits one half exactly between two values, their mean is taken,
    so equal weights give ``np.median`` (also for an even number of sites).
    """
    return _weighted_quantile_mean(stacked, weights, 0.5, 0.5)


def weighted_trimmed_mean(stacked: np.ndarray, weights: np.ndarray, trim: float) -> np.ndarray:
    """Per coordinate, the weighted mean after cutting ``trim`` of the weight from each tail.

    A site on a cut boundary keeps the part of its weight inside, so with equal weights and
    ``trim * sites`` an integer this is ``scipy.stats.trim_mean`` (Flower's FedTrimmedAvg).
    """
    if not 0.0 <= trim < 0.5:
        raise ValueError(f"trim fraction must be in [0, 0.5), got {trim}")
    return _weighted_quantile_mean(stacked, weights, trim, 1.0 - trim)


def _weighted_quantile_mean(
    stacked: np.ndarray, weights: np.ndarray, low: float, high: float
) -> np.ndarray:
    """Mean of the values whose weight lies in the cumulative band [low, high].

    For low == high (the median), the band is a point and the mean over a vanishing band is
    taken as the limit: the value there, or the two neighbours' mean on a tie.
    """
    order = np.argsort(stacked, axis=0, kind="stable")
    values = np.take_along_axis(stacked, order, axis=0)
    sorted_weights = weights[order]
    upper = np.cumsum(sorted_weights, axis=0)
    lower = upper - sorted_weights
    if high > low:
        inside = np.clip(np.minimum(upper, high) - np.maximum(lower, low), 0.0, None)
        return (inside * values).sum(axis=0) / (high - low)
    # A point band: the values whose weight interval contains it; on a boundary both sides.
    tolerance = 1e-12
    below = (lower < low - tolerance) & (upper >= low - tolerance)
    above = (lower <= low + tolerance) & (upper > low + tolerance)
    left = np.where(below, values, np.nan)
    right = np.where(above, values, np.nan)
    return 0.5 * (np.nanmax(left, axis=0) + np.nanmin(right, axis=0))
