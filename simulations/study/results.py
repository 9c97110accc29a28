"""From per-file scores to the study's numbers: means with 95 % intervals, paired comparisons,
the verdict on the study's goals, and the internal-validation choices.

A method's scores on one split, metadata variant, view and mask form a (seeds, files) grid
(simulations/study/statistics.py): one row per training seed, one column per file, each cell
the mean over that seed's models (a local-only experiment has one model per internal site,
and its score is the mean over them, as a consortium of isolated sites would fare).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cardiomm.classical.suite import BEST_CLASSICAL
from federation.protocol import (
    VAL_PSNR,
    VAL_SSIM,
)
from federation.records import read_history
from simulations.study.outcome import DIFFERENCE_COLUMNS, NO_SEED
from simulations.study.statistics import Difference, bootstrap_mean, paired_difference

METRICS = ("psnr", "ssim", "nmse")
ALL_CENTRES = "all"
HELD_OUT = "held-out"
RANKING_VIEW = "ranking"
# Bootstrap draws of every interval; the intervals are deterministic for this seed.
RESAMPLES = 2000
BOOTSTRAP_SEED = 0


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which scores: one split, metadata variant, view and mask (and centre, if any)."""

    split: str
    metadata: str
    view: str
    mask: str
    centre: str = ALL_CENTRES

    def matches(self, row: Mapping[str, Any]) -> bool:
        return (
            row["split"] == self.split
            and row["metadata"] == self.metadata
            and row["view"] == self.view
            and row["mask"] == self.mask
            and (self.centre == ALL_CENTRES or row["centre"] == self.centre)
        )


@dataclasses.dataclass(frozen=True)
class Grid:
    """An experiment's scores as a (seeds, files) grid per metric.

    Attributes:
        seeds: the rows' training seeds (``-`` for a reference).
        files: the columns' files.
        images: images scored per seed (the same for every seed).
        values: metric -> float (seeds, files).
    """

    seeds: tuple[str, ...]
    files: tuple[str, ...]
    images: int
    values: dict[str, np.ndarray]


def score_grid(
    rows: Iterable[Mapping[str, Any]], experiment: str, selection: Selection
) -> Grid | None:
    """The grid of ``experiment`` on ``selection`` (None when it has no such scores).

    Only files scored for every seed count, so that every seed is judged on the same files.
    """
    cells: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["experiment"] == experiment and selection.matches(row):
            cells[(str(row["seed"]), str(row["file"]))].append(row)
    if not cells:
        return None
    seeds = sorted({seed for seed, _ in cells}, key=seed_order)
    files = [
        file
        for file in sorted({file for _, file in cells})
        if all((seed, file) in cells for seed in seeds)
    ]
    if not files:
        return None
    values = {
        metric: np.array(
            [[np.mean([float(r[metric]) for r in cells[(s, f)]]) for f in files] for s in seeds]
        )
        for metric in METRICS
    }
    # Images of one seed: its first model's images (every model scores the same images).
    images = sum(int(cells[(seeds[0], file)][0]["images"]) for file in files)
    return Grid(tuple(seeds), tuple(files), images, values)


def result_rows(rows: Sequence[Mapping[str, Any]], fold: str) -> list[dict[str, Any]]:
    """results.csv rows of one fold: every experiment's mean and interval per split,
    metadata variant, view, mask, and centre (each one, and ``all``)."""
    rows = [row for row in rows if row["fold"] == fold]
    kinds = {row["experiment"]: row["kind"] for row in rows}
    selections = sorted(
        {
            Selection(row["split"], row["metadata"], row["view"], row["mask"], centre)
            for row in rows
            for centre in (ALL_CENTRES, row["centre"])
        },
        key=dataclasses.astuple,
    )
    results = []
    for experiment, kind in kinds.items():
        for selection in selections:
            grid = score_grid(rows, experiment, selection)
            if grid is None:
                continue
            line: dict[str, Any] = {
                "fold": fold,
                "experiment": experiment,
                "kind": kind,
                **dataclasses.asdict(selection),
                "seeds": len(grid.seeds) if grid.seeds != (NO_SEED,) else 0,
                "files": len(grid.files),
                "images": grid.images,
            }
            for metric in METRICS:
                if not np.isfinite(grid.values[metric]).all():
                    # A model that reconstructs non-finite images (e.g. weights destroyed by
                    # noise) has no mean to give: NaN, said in the report, never a crash.
                    line[metric] = line[f"{metric}_ci_low"] = line[f"{metric}_ci_high"] = math.nan
                    continue
                estimate = bootstrap_mean(
                    grid.values[metric], resamples=RESAMPLES, seed=BOOTSTRAP_SEED
                )
                line[metric] = estimate.mean
                line[f"{metric}_ci_low"] = estimate.ci_low
                line[f"{metric}_ci_high"] = estimate.ci_high
            results.append(line)
    return results


@dataclasses.dataclass(frozen=True)
class Comparison:
    """A paired comparison the report makes: ``a`` minus ``b``."""

    a: str
    b: str

    @property
    def name(self) -> str:
        return f"{self.a} - {self.b}"


def comparison_rows(
    rows: Sequence[Mapping[str, Any]],
    fold: str,
    comparisons: Sequence[Comparison],
    split: str = HELD_OUT,
    metrics: Sequence[str] = ("psnr", "ssim"),
) -> list[dict[str, Any]]:
    """comparisons.csv rows of one fold: each comparison whose two experiments were scored,
    per view and mask of ``split`` (full metadata), on the files both were scored on."""
    rows = [row for row in rows if row["fold"] == fold and row["split"] == split]
    settings = sorted({(row["view"], row["mask"]) for row in rows if row["metadata"] == "full"})
    results = []
    for comparison in comparisons:
        for view, mask in settings:
            selection = Selection(split, "full", view, mask)
            grid_a = score_grid(rows, comparison.a, selection)
            grid_b = score_grid(rows, comparison.b, selection)
            if grid_a is None or grid_b is None:
                continue
            shared = [file for file in grid_a.files if file in set(grid_b.files)]
            if not shared:
                continue
            columns_a = [grid_a.files.index(file) for file in shared]
            columns_b = [grid_b.files.index(file) for file in shared]
            # The same seeds on both sides (same initial weights and data order): paired.
            paired = grid_a.seeds == grid_b.seeds and grid_a.seeds != (NO_SEED,)
            for metric in metrics:
                if not (
                    np.isfinite(grid_a.values[metric][:, columns_a]).all()
                    and np.isfinite(grid_b.values[metric][:, columns_b]).all()
                ):
                    continue  # non-finite scores: no difference to estimate (NaN in results)
                difference = paired_difference(
                    grid_a.values[metric][:, columns_a],
                    grid_b.values[metric][:, columns_b],
                    paired_seeds=paired,
                    resamples=RESAMPLES,
                    seed=BOOTSTRAP_SEED,
                )
                results.append(
                    {
                        "fold": fold,
                        "comparison": comparison.name,
                        "a": comparison.a,
                        "b": comparison.b,
                        "split": split,
                        "metadata": "full",
                        "view": view,
                        "mask": mask,
                        "metric": metric,
                        **difference_columns(difference),
                    }
                )
    return results


def non_finite_experiments(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Experiments with a non-finite mean PSNR anywhere (some of their images were)."""
    return list(
        dict.fromkeys(row["experiment"] for row in results if not math.isfinite(float(row["psnr"])))
    )


def difference_columns(difference: Difference) -> dict[str, Any]:
    """A paired difference as the comparison CSV files hold it (:data:`DIFFERENCE_COLUMNS`)."""
    values = (
        difference.mean,
        difference.ci_low,
        difference.ci_high,
        difference.p_value,
        difference.seeds_a,
        difference.seeds_b,
        difference.paired_seeds,
        difference.files,
    )
    return dict(zip(DIFFERENCE_COLUMNS, values, strict=True))


@dataclasses.dataclass(frozen=True)
class Goal:
    """A goal of the study: ``a - b`` in held-out PSNR (ranking view) at least ``margin``
    dB, at every mask."""

    a: str
    b: str
    margin: float
    text: str


# The goals issue 12 sets for the held-out centres (ranking view, full metadata).
GOALS = (
    Goal("fedavg", BEST_CLASSICAL, 1.0, "FedAvg at least 1 dB above the best classical method"),
    Goal("fedavg", "zero-filled", 1.0, "FedAvg at least 1 dB above zero-filled"),
    Goal("fedavg", "centralised", -0.3, "FedAvg within 0.3 dB of centralised (or above)"),
    Goal("fedavg", "local-only", 0.0, "local-only below FedAvg"),
)
MET, MET_ON_MEAN, MISSED = "met", "met on the mean only", "missed"


def verdict_rows(
    comparisons: Sequence[Mapping[str, Any]], goals: Sequence[Goal] = GOALS
) -> list[dict[str, Any]]:
    """One row per goal and mask: the held-out PSNR difference with its interval and whether
    the goal is met (its interval clears the margin), met on the mean only, or missed.

    Goals whose experiments were not both run are left out.
    """
    verdicts = []
    for goal in goals:
        for row in comparisons:
            if (
                row["a"] == goal.a
                and row["b"] == goal.b
                and row["metric"] == "psnr"
                and row["view"] == RANKING_VIEW
                and row["split"] == HELD_OUT
            ):
                if row["ci_low"] >= goal.margin:
                    status = MET
                elif row["difference"] >= goal.margin:
                    status = MET_ON_MEAN
                else:
                    status = MISSED
                verdicts.append(
                    {
                        "goal": goal.text,
                        "mask": row["mask"],
                        "difference": row["difference"],
                        "ci_low": row["ci_low"],
                        "ci_high": row["ci_high"],
                        "p_value": row["p_value"],
                        "needed": goal.margin,
                        "verdict": status,
                    }
                )
    return verdicts


def select_on_validation(scores: Mapping[str, float]) -> tuple[str, float]:
    """The candidate with the highest internal-validation PSNR, and that PSNR.

    This is the only way a study chooses anything (a server learning rate, a setting): it is
    given validation scores alone, never a held-out one. Ties go to the first candidate;
    candidates without a finite score cannot be chosen.

    Raises:
        ValueError: no candidate has a finite validation score.
    """
    finite = {name: value for name, value in scores.items() if math.isfinite(value)}
    if not finite:
        raise ValueError(f"no candidate has a finite validation score: {dict(scores)}")
    best = max(finite, key=lambda name: (finite[name], -list(finite).index(name)))
    return best, finite[best]


def seed_order(seed: str) -> tuple[int, Any]:
    return (0, int(seed)) if seed.lstrip("-").isdigit() else (1, seed)


def validation_rows(outcomes: Sequence[Any]) -> list[dict[str, Any]]:
    """Each run's internal-validation scores at its end: a federation's global model on the
    sites' validation splits (its last round's evaluate phase, weighted by their images),
    a centralised model on the pooled validation split, a local-only experiment's site models
    each on its own site's (the mean over them).

    Args:
        outcomes: ExperimentOutcome of the runs.

    Returns:
        rows with experiment, kind, seed, val-psnr, val-ssim (NaN where nothing was scored).
    """
    rows = []
    for outcome in outcomes:
        scores: list[dict[str, float]] = []
        if outcome.history is not None and Path(outcome.history).is_file():
            history = read_history(outcome.history)
            evaluate = history[-1].evaluate if history else {}
            scores = [
                {"psnr": evaluate.get("psnr", math.nan), "ssim": evaluate.get("ssim", math.nan)}
            ]
        else:
            for checkpoint in outcome.checkpoints.values():
                metrics = Path(checkpoint).parents[1] / "metrics.json"
                if metrics.is_file():
                    values = json.loads(metrics.read_text())["metrics"]
                    scores.append(
                        {
                            "psnr": values.get(VAL_PSNR, math.nan),
                            "ssim": values.get(VAL_SSIM, math.nan),
                        }
                    )
        rows.append(
            {
                "experiment": outcome.experiment,
                "kind": outcome.kind,
                "seed": outcome.seed,
                VAL_PSNR: finite_mean(score["psnr"] for score in scores),
                VAL_SSIM: finite_mean(score["ssim"] for score in scores),
            }
        )
    return rows


def first_row(rows: Iterable[Mapping[str, Any]], **labels: Any) -> Mapping[str, Any] | None:
    """The first of ``rows`` whose columns equal every one of ``labels``, or None."""
    for row in rows:
        if all(row[column] == value for column, value in labels.items()):
            return row
    return None


def finite_mean(values: Iterable[float]) -> float:
    """The mean of the finite values (NaN when there is none)."""
    finite = [float(value) for value in values if math.isfinite(float(value))]
    return sum(finite) / len(finite) if finite else math.nan
