"""From the clinical check's rows to the study's clinical numbers: agreement of every method's
phenotypes with the fully sampled reference and the phantom's truth, with 95 % intervals,
paired comparisons of LVEF errors, and the verdict on the LVEF goal.

As for PSNR (simulations/study/results.py), a method's values at one setting form a
(seeds, files) grid: one row per training seed, one column per held-out cine short-axis
scan, each cell the mean over that seed's models (a local-only experiment has one per
internal site). Every interval is the two-stage bootstrap over seeds and scans
(simulations/study/statistics.py). A scan is left out of a method's grid when that method's
segmentation gave no value for it (e.g. no LV found, so no ejection fraction) for some seed;
``unmeasured`` counts them, so a method cannot look better by losing its hard scans quietly.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from cardiomm.classical.suite import BEST_CLASSICAL
from cardiomm.segmentation.clinical import PHENOTYPE_FIELDS
from simulations.study.clinical import DICE_FIELDS, TRUE_FIELDS
from simulations.study.outcome import DIFFERENCE_COLUMNS, NO_SEED
from simulations.study.results import (
    BOOTSTRAP_SEED,
    MET,
    MET_ON_MEAN,
    MISSED,
    RESAMPLES,
    Comparison,
    difference_columns,
    first_row,
    seed_order,
)
from simulations.study.statistics import bootstrap_statistic, paired_difference

REFERENCE = "reference"
TRUTH = "true"
LVEF = "lv_ef_percent"
# The segmenter on the fully sampled images against the phantom's truth: what the
# segmentation alone gets wrong, before any undersampling.
FULLY_SAMPLED = "fully-sampled"
ANY_MASK = "-"
# The goal of issue 16: at this setting, on the held-out centres.
GOAL_MASK = "ktRadial24"
GOAL_MAE_POINTS = 1.0
# What the measurement chain must reach on the fully sampled held-out references before a
# reconstruction's LVEF error means anything (issue 25): Dice per class at least these, and
# LVEF within CHAIN_LVEF_MAE_POINTS of the phantom's truth.
CHAIN_DICE = {"lv_blood": 0.90, "lv_myocardium": 0.80, "rv_blood": 0.85}
CHAIN_LVEF_MAE_POINTS = 2.0
CLINICAL_RESULT_COLUMNS = (
    "fold",
    "experiment",
    "kind",
    "mask",
    "quantity",
    "against",
    "statistic",
    "value",
    "ci_low",
    "ci_high",
    "seeds",
    "files",
    "unmeasured",
)
CLINICAL_COMPARISON_COLUMNS = (
    "fold",
    "comparison",
    "a",
    "b",
    "mask",
    "quantity",
    *DIFFERENCE_COLUMNS,
)


def _mean(values: np.ndarray) -> np.ndarray:
    return values.mean(axis=1)


def _absolute_error(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.abs(measured - reference).mean(axis=1)


def _bias(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return (measured - reference).mean(axis=1)


def _limit(sign: float) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def limit(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
        differences = measured - reference
        if differences.shape[1] < 2:
            return np.full(differences.shape[0], np.nan)
        return differences.mean(axis=1) + sign * 1.96 * differences.std(axis=1, ddof=1)

    return limit


def _correlation(measured: np.ndarray, reference: np.ndarray) -> np.ndarray:
    a = measured - measured.mean(axis=1, keepdims=True)
    b = reference - reference.mean(axis=1, keepdims=True)
    scale = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, (a * b).sum(axis=1) / np.where(scale > 0, scale, 1), np.nan)


# Agreement of a measurement with its reference: statistic name -> function of the two grids.
AGREEMENT_STATISTICS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "mae": _absolute_error,
    "bias": _bias,
    "loa_low": _limit(-1.0),
    "loa_high": _limit(+1.0),
    "correlation": _correlation,
}


@dataclasses.dataclass(frozen=True)
class PairedGrid:
    """A method's measurements of one quantity and their references, (seeds, files) each.

    Attributes:
        seeds, files: the rows' seeds and the columns' scans.
        measured: cell means over the seed's models of the measured value.
        reference: the reference value of each cell (the same for every seed).
        absolute_error: cell means over the models of |measured - reference| (a model's
            own error, not the error of the models' mean).
        unmeasured: scans left out (no value for some seed's model).
    """

    seeds: tuple[str, ...]
    files: tuple[str, ...]
    measured: np.ndarray
    reference: np.ndarray
    absolute_error: np.ndarray
    unmeasured: int


def paired_grid(
    rows: Iterable[Mapping[str, Any]], experiment: str, mask: str, quantity: str, against: str
) -> PairedGrid | None:
    """The grid of ``experiment``'s ``recon_<quantity>`` against ``<against>_<quantity>`` at
    ``mask`` (``against``: ``reference`` or ``true``); ``dice_<class>`` quantities have no
    reference (zeros). None when nothing is measured."""
    measured_key = quantity if quantity.startswith("dice_") else f"recon_{quantity}"
    reference_key = None if quantity.startswith("dice_") else f"{against}_{quantity}"
    cells: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for row in rows:
        if row["experiment"] != experiment or row["mask"] != mask:
            continue
        if reference_key is not None and reference_key not in row:
            return None
        value = float(row[measured_key])
        reference = 0.0 if reference_key is None else float(row[reference_key])
        cells[(str(row["seed"]), str(row["file"]))].append((value, reference))
    if not cells:
        return None
    seeds = sorted({seed for seed, _ in cells}, key=seed_order)
    scans = sorted({file for _, file in cells})
    kept = [
        file
        for file in scans
        if all((seed, file) in cells and np.isfinite(cells[(seed, file)]).all() for seed in seeds)
    ]
    if not kept:
        return None
    values = np.array([[cells[(seed, file)] for file in kept] for seed in seeds])
    # values: (seeds, files, models, 2); every cell of a seed has as many models.
    measured, reference = values[..., 0], values[..., 1]
    return PairedGrid(
        seeds=tuple(seeds),
        files=tuple(kept),
        measured=measured.mean(axis=2),
        reference=reference.mean(axis=2),
        absolute_error=np.abs(measured - reference).mean(axis=2),
        unmeasured=len(scans) - len(kept),
    )


def clinical_result_rows(rows: Sequence[Mapping[str, Any]], fold: str) -> list[dict[str, Any]]:
    """clinical_results.csv rows of one fold: per experiment and setting, every phenotype's
    agreement with the fully sampled reference (and with the phantom's truth where known),
    and the mean Dice per class of the segmentations against the reference's."""
    rows = [row for row in rows if row["fold"] == fold]
    rows += fully_sampled_rows(rows)
    kinds = {row["experiment"]: row["kind"] for row in rows}
    masks = list(dict.fromkeys(row["mask"] for row in rows))
    out = []
    for experiment, kind in kinds.items():
        for mask in masks:
            labels = {"fold": fold, "experiment": experiment, "kind": kind, "mask": mask}
            for quantity in PHENOTYPE_FIELDS:
                for against in (REFERENCE, TRUTH):
                    if against == TRUTH and quantity not in TRUE_FIELDS:
                        continue
                    if against == REFERENCE and experiment == FULLY_SAMPLED:
                        continue  # the reference itself
                    grid = paired_grid(rows, experiment, mask, quantity, against)
                    if grid is None:
                        continue
                    for statistic, function in AGREEMENT_STATISTICS.items():
                        # The absolute error of each model, averaged; the others on the cells.
                        if statistic == "mae":
                            estimate = _estimate([grid.absolute_error], _mean)
                        else:
                            estimate = _estimate([grid.measured, grid.reference], function)
                        out.append(_result(labels, quantity, against, statistic, estimate, grid))
            for quantity in DICE_FIELDS if experiment != FULLY_SAMPLED else ():
                grid = paired_grid(rows, experiment, mask, quantity, REFERENCE)
                if grid is not None:
                    estimate = _estimate([grid.measured], _mean)
                    out.append(_result(labels, quantity, REFERENCE, "mean", estimate, grid))
    return out


def fully_sampled_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Pseudo-rows of the fully sampled reference as a method (``recon_`` = ``reference_``),
    one per scan, to set against the phantom's truth (mask :data:`ANY_MASK`)."""
    scans: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row["file"] in scans:
            continue
        scans[row["file"]] = {
            **{key: row[key] for key in ("fold", "centre", "vendor", "file")},
            "experiment": FULLY_SAMPLED,
            "kind": "reference",
            "seed": NO_SEED,
            "model": "-",
            "mask": ANY_MASK,
            **{f"recon_{name}": row[f"reference_{name}"] for name in PHENOTYPE_FIELDS},
            **{f"reference_{name}": row[f"reference_{name}"] for name in PHENOTYPE_FIELDS},
            **{f"true_{name}": row[f"true_{name}"] for name in TRUE_FIELDS},
        }
    return list(scans.values())


def clinical_comparison_rows(
    rows: Sequence[Mapping[str, Any]], fold: str, comparisons: Sequence[Comparison]
) -> list[dict[str, Any]]:
    """Paired differences of the absolute LVEF error against the fully sampled reference
    (A - B; negative: A's LVEF is closer), per setting, on the scans both measured."""
    rows = [row for row in rows if row["fold"] == fold]
    masks = list(dict.fromkeys(row["mask"] for row in rows))
    out = []
    for comparison in comparisons:
        for mask in masks:
            grid_a = paired_grid(rows, comparison.a, mask, LVEF, REFERENCE)
            grid_b = paired_grid(rows, comparison.b, mask, LVEF, REFERENCE)
            if grid_a is None or grid_b is None:
                continue
            shared = [file for file in grid_a.files if file in set(grid_b.files)]
            if not shared:
                continue
            paired = grid_a.seeds == grid_b.seeds and grid_a.seeds != (NO_SEED,)
            difference = paired_difference(
                grid_a.absolute_error[:, [grid_a.files.index(file) for file in shared]],
                grid_b.absolute_error[:, [grid_b.files.index(file) for file in shared]],
                paired_seeds=paired,
                resamples=RESAMPLES,
                seed=BOOTSTRAP_SEED,
            )
            out.append(
                {
                    "fold": fold,
                    "comparison": comparison.name,
                    "a": comparison.a,
                    "b": comparison.b,
                    "mask": mask,
                    "quantity": f"{LVEF} absolute error",
                    **difference_columns(difference),
                }
            )
    return out


def clinical_verdict_rows(
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    experiment: str,
) -> list[dict[str, Any]]:
    """The LVEF goal at :data:`GOAL_MASK`: ``experiment``'s mean absolute LVEF error against
    the fully sampled reference below :data:`GOAL_MAE_POINTS`, and below the best classical
    method's. Met when the interval clears the bound, met on the mean only, or missed;
    nothing when the experiment or the setting was not measured."""
    verdicts = []
    for row in results:
        if (
            row["experiment"] == experiment
            and row["mask"] == GOAL_MASK
            and row["quantity"] == LVEF
            and row["against"] == REFERENCE
            and row["statistic"] == "mae"
        ):
            verdicts.append(
                _verdict(
                    f"{experiment}: mean absolute LVEF error below {GOAL_MAE_POINTS:g} point",
                    row,
                    "value",
                    GOAL_MAE_POINTS,
                    row["files"],
                )
            )
    for row in comparisons:
        if row["a"] == experiment and row["b"] == BEST_CLASSICAL and row["mask"] == GOAL_MASK:
            verdicts.append(
                _verdict(
                    f"{experiment}: mean absolute LVEF error below the best classical method's",
                    row,
                    "difference",
                    0.0,
                    row["files"],
                )
            )
    return verdicts


def bland_altman_groups(
    rows: Sequence[Mapping[str, Any]], fold: str, mask: str, experiments: Sequence[str]
) -> dict[str, tuple[list[float], list[float]]]:
    """Per experiment at ``mask``: (measured, reference) LVEF of each (seed, scan) cell,
    for the Bland-Altman plot (the same cells as the table's statistics)."""
    groups = {}
    rows = [row for row in rows if row["fold"] == fold]
    for experiment in experiments:
        grid = paired_grid(rows, experiment, mask, LVEF, REFERENCE)
        if grid is not None:
            groups[experiment] = (
                grid.measured.reshape(-1).tolist(),
                grid.reference.reshape(-1).tolist(),
            )
    return groups


def measurement_chain_rows(
    results: Sequence[Mapping[str, Any]], segmenter: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """The chain checked on the truth: the segmenter's held-out Dice per class (images,
    percentile bootstrap) against :data:`CHAIN_DICE`, and the fully sampled images' LVEF
    against the phantom's (mean absolute error over scans) against
    :data:`CHAIN_LVEF_MAE_POINTS`; met when the whole interval clears the target, met on the
    mean only, or missed. Rows: goal, value, ci_low, ci_high, target, verdict."""
    rows = []
    means = segmenter.get("held_out_dice") or {}
    intervals = segmenter.get("held_out_dice_ci") or {}
    for name, target in CHAIN_DICE.items():
        value, (low, high) = means.get(name), intervals.get(name) or (None, None)
        if value is None or low is None or high is None:
            continue
        status = MET if low >= target else MET_ON_MEAN if value >= target else MISSED
        rows.append(
            _chain_row(f"Dice {name.replace('_', ' ')}", value, low, high, f">= {target:g}", status)
        )
    row = find_result(results, FULLY_SAMPLED, ANY_MASK, LVEF, TRUTH, "mae")
    if row is not None:
        value, low, high = (float(row[key]) for key in ("value", "ci_low", "ci_high"))
        bound = CHAIN_LVEF_MAE_POINTS
        status = MET if high <= bound else MET_ON_MEAN if value <= bound else MISSED
        label = "LVEF MAE against the truth (points)"
        rows.append(_chain_row(label, value, low, high, f"<= {bound:g}", status))
    return rows


def find_result(
    results: Sequence[Mapping[str, Any]],
    experiment: str,
    mask: str,
    quantity: str,
    against: str,
    statistic: str,
) -> Mapping[str, Any] | None:
    """The first result row with these labels, or None."""
    return first_row(
        results,
        experiment=experiment,
        mask=mask,
        quantity=quantity,
        against=against,
        statistic=statistic,
    )


def _chain_row(
    goal: str, value: float, low: float, high: float, target: str, verdict: str
) -> dict[str, Any]:
    return {
        "goal": goal,
        "value": float(value),
        "ci_low": float(low),
        "ci_high": float(high),
        "target": target,
        "verdict": verdict,
    }


def _verdict(
    goal: str, row: Mapping[str, Any], key: str, bound: float, files: int
) -> dict[str, Any]:
    """Below ``bound``: met when the whole interval is, met on the mean only, or missed."""
    value = float(row[key])
    if float(row["ci_high"]) < bound:
        status = MET
    elif value < bound:
        status = MET_ON_MEAN
    else:
        status = MISSED
    return {
        "goal": goal,
        "mask": row["mask"],
        "value": value,
        "ci_low": float(row["ci_low"]),
        "ci_high": float(row["ci_high"]),
        "bound": bound,
        "files": files,
        "verdict": status,
    }


def _estimate(grids: list[np.ndarray], function: Callable[..., np.ndarray]) -> Any:
    return bootstrap_statistic(grids, function, resamples=RESAMPLES, seed=BOOTSTRAP_SEED)


def _result(
    labels: dict[str, str],
    quantity: str,
    against: str,
    statistic: str,
    estimate: Any,
    grid: PairedGrid,
) -> dict[str, Any]:
    return {
        **labels,
        "quantity": quantity,
        "against": against,
        "statistic": statistic,
        "value": estimate.mean,
        "ci_low": estimate.ci_low,
        "ci_high": estimate.ci_high,
        "seeds": len(grid.seeds) if grid.seeds != (NO_SEED,) else 0,
        "files": len(grid.files),
        "unmeasured": grid.unmeasured,
    }
