"""The study's report: the CSV files, ``report.md`` with its verdict and tables, the figures.

Every mean in the report is a mean over training seeds and files with its 95 % bootstrap
interval (simulations/study/statistics.py); every "A beats B" is a paired difference with
its interval and p-value. The numbers come from ``file_scores.csv`` (one row per model and
file) through simulations/study/results.py; the report only lays them out.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from federation.records import RoundRecord, finite_series, read_history
from simulations.report_tables import markdown_table
from simulations.study import figures
from simulations.study.outcome import (
    COMPARISON_COLUMNS,
    FILE_COLUMNS,
    RESULT_COLUMNS,
    ExperimentOutcome,
)
from simulations.study.results import (
    ALL_CENTRES,
    HELD_OUT,
    MET,
    MISSED,
    RANKING_VIEW,
    Comparison,
    comparison_rows,
    finite_mean,
    result_rows,
    select_on_validation,
    validation_rows,
    verdict_rows,
)
from simulations.study.scoring import (
    CURVE_COLUMNS,
    EXAMPLES_FOLDER,
    INTERNAL_TEST,
    REFERENCES,
    ExampleImage,
    load_examples,
    path_slug,
)

logger = logging.getLogger(__name__)

FILE_SCORES_FILE = "file_scores.csv"
RESULTS_FILE = "results.csv"
COMPARISONS_FILE = "comparisons.csv"
CURVES_FILE = "curves.csv"
REPORT_FILE = "report.md"
METRICS = ("psnr", "ssim", "nmse")
FULL_VIEW = "full"
MISSING = "–"


@dataclasses.dataclass(frozen=True)
class StudyDesign:
    """What the report says about how the study was run (the design section).

    Attributes:
        title: the report's heading.
        machine_note: what the timings were measured on.
        description: lines on data, model and budget (markdown).
        accelerations: rows of the undersampling table (setting, nominal, true R on the
            held-out data, true R on the reference matrix).
        comparisons: the paired comparisons to compute.
        selection_groups: name -> candidate experiments, chosen between on internal
            validation (a tuning study).
        held_out_evaluation: whether the held-out centres were scored.
    """

    title: str
    machine_note: str = ""
    description: tuple[str, ...] = ()
    accelerations: tuple[dict[str, Any], ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    selection_groups: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    held_out_evaluation: bool = True


def write_report(
    study_dir: str | Path,
    file_rows: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    design: StudyDesign,
    curves: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Path]:
    """Write the CSV files, the figures and ``report.md`` into ``study_dir``.

    Args:
        study_dir: the study's run directory; example reconstructions are looked for in its
            ``**/examples/<fold>/`` folders.
        file_rows: :data:`FILE_COLUMNS` rows of every fold.
        outcomes: the finished runs (every experiment and seed).
        design: what the design section says.
        curves: :data:`CURVE_COLUMNS` rows (learning curves).

    Returns:
        what was written: ``file_scores``, ``results``, ``comparisons``, ``curves``,
        ``report`` and one entry per figure (its file stem).
    """
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    folds = list(dict.fromkeys([row["fold"] for row in file_rows] + [o.fold for o in outcomes]))
    results = [row for fold in folds for row in result_rows(file_rows, fold)]
    comparisons = [
        row for fold in folds for row in comparison_rows(file_rows, fold, design.comparisons)
    ]
    written = {
        "file_scores": write_csv(file_rows, FILE_COLUMNS, study_dir / FILE_SCORES_FILE),
        "results": write_csv(results, RESULT_COLUMNS, study_dir / RESULTS_FILE),
        "comparisons": write_csv(comparisons, COMPARISON_COLUMNS, study_dir / COMPARISONS_FILE),
        "curves": write_csv(curves, CURVE_COLUMNS, study_dir / CURVES_FILE),
    }
    sections = [f"# {design.title}", ""]
    if design.machine_note:
        sections += [f"Timings measured on: {design.machine_note}.", ""]
    for fold in folds:
        fold_outcomes = [outcome for outcome in outcomes if outcome.fold == fold]
        fold_results = [row for row in results if row["fold"] == fold]
        fold_comparisons = [row for row in comparisons if row["fold"] == fold]
        fold_curves = [row for row in curves if row["fold"] == fold]
        suffix = f"_{path_slug(fold)}" if len(folds) > 1 else ""
        figure_paths = _fold_figures(
            study_dir, fold, fold_results, fold_comparisons, fold_curves, fold_outcomes, suffix
        )
        written.update({path.stem: path for path in figure_paths})
        sections += fold_section(
            fold, design, fold_results, fold_comparisons, fold_outcomes, figure_paths, study_dir
        )
    report = study_dir / REPORT_FILE
    report.write_text("\n".join(sections))
    written["report"] = report
    return written


def fold_section(
    fold: str,
    design: StudyDesign,
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    figure_paths: Sequence[Path],
    study_dir: Path,
) -> list[str]:
    """The markdown lines of one fold."""
    order = experiment_order(results, outcomes)
    held_out = _unique(r["centre"] for r in results if r["split"] == HELD_OUT and _centre(r))
    internal = _unique(r["centre"] for r in results if r["split"] == INTERNAL_TEST and _centre(r))
    lines = [f"## Fold {fold}", ""]
    if design.held_out_evaluation:
        lines += verdict_section(comparisons)
    lines += design_section(design, results, outcomes, internal, held_out)
    if design.held_out_evaluation:
        lines += score_sections(results, comparisons, order, held_out)
    validation = validation_rows(outcomes)
    lines += validation_section(validation, design.selection_groups)
    lines += cost_section(outcomes)
    if figure_paths:
        lines += ["### Figures", ""]
        lines += [
            f"![{path.stem}]({path.relative_to(study_dir).as_posix()})" for path in figure_paths
        ]
        lines.append("")
    return lines


# -- sections ----------------------------------------------------------------------------


def verdict_section(comparisons: Sequence[Mapping[str, Any]]) -> list[str]:
    """The goals of the study, each per mask: met (interval clears the margin), met on the
    mean only, or missed, with the held-out PSNR difference and its interval."""
    verdicts = verdict_rows(comparisons)
    lines = ["### Verdict", ""]
    if not verdicts:
        return [*lines, "No goal could be judged: its experiments were not all run.", ""]
    missed = [row for row in verdicts if row["verdict"] == MISSED]
    confident = [row for row in verdicts if row["verdict"] == MET]
    summary = (
        f"{len(confident)} of {len(verdicts)} goal checks met with their 95 % interval clear of "
        f"the margin, {len(verdicts) - len(confident) - len(missed)} met on the mean only, "
        f"{len(missed)} missed."
    )
    if missed:
        summary += (
            " Missed: "
            + "; ".join(
                f"{row['goal']} at {row['mask']} ({row['difference']:+.2f} dB, needed "
                f"{row['needed']:+.2f})"
                for row in missed
            )
            + "."
        )
    table = [
        {
            "goal": row["goal"],
            "mask": row["mask"],
            "Δ PSNR (dB) [95 % CI]": _interval(row["difference"], row["ci_low"], row["ci_high"]),
            "p": _p_value(row["p_value"]),
            "needed": f"{row['needed']:+.1f}",
            "verdict": row["verdict"],
        }
        for row in verdicts
    ]
    lines += [
        "Held-out centres, ranking view (the challenge's central slices, first frames and "
        "centre crop), full metadata; Δ = first minus second, paired over the same files.",
        "",
        markdown_table(table, list(table[0])),
        "",
        summary,
        "",
    ]
    return lines


def design_section(
    design: StudyDesign,
    results: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    internal: Sequence[str],
    held_out: Sequence[str],
) -> list[str]:
    """Data, training, undersampling, statistics and how anything was chosen."""
    seeds = sorted({outcome.seed for outcome in outcomes})
    by_experiment: dict[str, list[int]] = {}
    for outcome in outcomes:
        by_experiment.setdefault(outcome.experiment, []).append(outcome.seed)
    held_out_images = [
        row
        for row in results
        if row["split"] == HELD_OUT and row["centre"] == ALL_CENTRES and row["view"] == RANKING_VIEW
    ]
    images = min((int(row["images"]) for row in held_out_images), default=0)
    files = min((int(row["files"]) for row in held_out_images), default=0)
    lines = ["### Design", ""]
    lines += [*design.description, ""] if design.description else []
    lines += [
        f"- Centres: internal test {', '.join(internal) or 'none'}; held out "
        f"{', '.join(held_out) or 'none'}."
        + (
            f" Every method and setting is scored on {images} held-out images in {files} "
            "files (per seed)."
            if design.held_out_evaluation
            else " The held-out centres were not scored (a tuning study looks at internal "
            "validation only)."
        ),
        f"- Training seeds: {', '.join(map(str, seeds))}; per experiment: "
        + "; ".join(f"{name} {len(found)}" for name, found in by_experiment.items())
        + ". Zero-filled and SENSE train nothing.",
        "- Intervals: 95 % two-stage percentile bootstrap (2000 draws) over training seeds and "
        "held-out files, each file's images averaged first; paired differences resample the "
        "same files for both methods, and the same seeds where both were trained with them; "
        "p-values are two-sided bootstrap p-values. An interval over a few files (the "
        "per-centre tables: 2 test files per internal site) is a rough guide only.",
        "- Nothing was chosen on the held-out centres: every model is the last one of its run "
        "(no early stopping, no best round); the learning rates, steps and strategy settings "
        "are the configuration's, and FedAdam's and FedYogi's server learning rate and tau in "
        "configs/strategy/ were chosen on internal validation by the server-learning-rate study "
        "(its report: docs/results/server-lr-study/report.md).",
        "",
    ]
    if design.accelerations:
        lines += [
            "#### Undersampling: nominal and true acceleration",
            "",
            "True acceleration = 1 / the sampled fraction of k-space, ACS included.",
            "",
            markdown_table(list(design.accelerations), list(design.accelerations[0]), {}),
            "",
        ]
    return lines


def score_sections(
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    order: Sequence[str],
    held_out: Sequence[str],
) -> list[str]:
    """Held-out and internal-test tables, comparisons, per-centre and metadata-cost tables."""
    masks = _unique(row["mask"] for row in results)
    lines = [
        "### Held-out centres (ranking view)",
        "",
        "Mean over seeds and files [95 % CI]; seeds = training seeds of the experiment.",
        "",
        *_score_table(results, order, masks, HELD_OUT, RANKING_VIEW),
        "### Paired comparisons on the held-out centres",
        "",
    ]
    lines += _comparison_table(comparisons)
    lines += [
        "### Held-out centres, full-image view",
        "",
        "The same images scored over the whole image (background included) instead of the "
        "challenge's centre crop.",
        "",
        *_score_table(results, order, masks, HELD_OUT, FULL_VIEW),
        "### Internal test split (ranking view)",
        "",
        *_score_table(results, order, masks, INTERNAL_TEST, RANKING_VIEW),
    ]
    for mask in masks:
        lines += [
            f"### PSNR (dB) per centre, {mask}, ranking view (held-out centres marked *)",
            "",
            *_per_centre_table(results, order, mask, held_out),
        ]
    lines += ["### What missing metadata costs on the held-out centres", ""]
    cost = _metadata_cost_rows(results, order, masks)
    if cost:
        lines += [
            "The held-out centres scored again with every field of the metadata text "
            "`unknown` (a vendor-personalised model then uses its across-vendor fallback). "
            "Δ = unknown - full (means; see results.csv for the intervals).",
            "",
            markdown_table(cost, list(cost[0]), {"PSNR full": 2, "PSNR unknown": 2, "Δ PSNR": 2}),
            "",
        ]
    else:
        lines += ["No unknown-metadata scores in this fold.", ""]
    return lines


def validation_section(
    validation: Sequence[Mapping[str, Any]], selection_groups: Mapping[str, Sequence[str]]
) -> list[str]:
    """Every run's internal-validation PSNR and SSIM at its end; and, for a tuning study,
    each group's choice made on them."""
    lines = ["### Internal validation", ""]
    if not validation:
        return [*lines, "No runs.", ""]
    lines += [
        "The models at the end of training on the internal sites' validation patients (a "
        "federation: its global model after the last round, on every site's validation split; "
        "local-only: the mean over the site models, each on its own site).",
        "",
        markdown_table(
            [
                {
                    "experiment": row["experiment"],
                    "seed": row["seed"],
                    "val PSNR (dB)": row["val-psnr"],
                    "val SSIM": row["val-ssim"],
                }
                for row in validation
            ],
            ["experiment", "seed", "val PSNR (dB)", "val SSIM"],
            {"val PSNR (dB)": 2},
        ),
        "",
    ]
    for group, candidates in selection_groups.items():
        scores = {
            name: finite_mean(row["val-psnr"] for row in validation if row["experiment"] == name)
            for name in candidates
        }
        try:
            chosen, score = select_on_validation(scores)
        except ValueError as error:
            lines += [f"{group}: nothing chosen ({error}).", ""]
            continue
        ranking = ", ".join(f"{name} {value:.2f} dB" for name, value in scores.items())
        lines += [
            f"**{group}**: chosen on internal validation: **{chosen}** ({score:.2f} dB; "
            f"candidates {ranking}).",
            "",
        ]
    return lines


def cost_section(outcomes: Sequence[ExperimentOutcome]) -> list[str]:
    lines = ["### Training cost", ""]
    if not outcomes:
        return [*lines, "No experiments in this fold.", ""]
    return [
        *lines,
        "Per-round figures are means over the rounds in history.json: the round's wall "
        "time = the slowest site's training (client compute) + the slowest site's "
        "evaluation + the rest (federation overhead: transfers, aggregation, waiting); "
        "and the bytes of the model sent to each site (about as many come back).",
        "",
        markdown_table(cost_rows(outcomes), list(_COST_COLUMNS), _DIGITS),
        "",
    ]


# -- tables ------------------------------------------------------------------------------


def experiment_order(
    results: Sequence[Mapping[str, Any]], outcomes: Sequence[ExperimentOutcome]
) -> list[str]:
    """Experiments in report order: references, then the runs' order, then the rest."""
    names = {row["experiment"] for row in results} | {o.experiment for o in outcomes}
    order = [name for name in REFERENCES if name in names]
    order += [outcome.experiment for outcome in outcomes]
    order += sorted(names)
    return list(dict.fromkeys(order))


def find_result(
    results: Iterable[Mapping[str, Any]],
    experiment: str,
    split: str,
    view: str,
    mask: str,
    centre: str = ALL_CENTRES,
    metadata: str = "full",
) -> Mapping[str, Any] | None:
    for row in results:
        if (
            row["experiment"] == experiment
            and row["split"] == split
            and row["view"] == view
            and row["mask"] == mask
            and row["centre"] == centre
            and row["metadata"] == metadata
        ):
            return row
    return None


def _score_table(
    results: Sequence[Mapping[str, Any]],
    order: Sequence[str],
    masks: Sequence[str],
    split: str,
    view: str,
) -> list[str]:
    table = []
    for experiment in order:
        line: dict[str, Any] = {"experiment": experiment}
        seeds = ""
        for mask in masks:
            row = find_result(results, experiment, split, view, mask)
            if row is None:
                line[f"{mask} PSNR"] = line[f"{mask} SSIM"] = MISSING
                continue
            seeds = str(row["seeds"]) if row["seeds"] else MISSING
            line[f"{mask} PSNR"] = _interval(row["psnr"], row["psnr_ci_low"], row["psnr_ci_high"])
            line[f"{mask} SSIM"] = _interval(
                row["ssim"], row["ssim_ci_low"], row["ssim_ci_high"], digits=3
            )
        if any(value != MISSING for key, value in line.items() if key != "experiment"):
            table.append({"experiment": experiment, "seeds": seeds, **_without(line, "experiment")})
    if not table:
        return ["No scores.", ""]
    return [markdown_table(table, list(table[0])), ""]


def _comparison_table(comparisons: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [row for row in comparisons if row["view"] == RANKING_VIEW]
    table = []
    for name in _unique(row["comparison"] for row in rows):
        for mask in _unique(row["mask"] for row in rows):
            cells = {
                row["metric"]: row
                for row in rows
                if row["comparison"] == name and row["mask"] == mask
            }
            if "psnr" not in cells:
                continue
            psnr, ssim = cells["psnr"], cells.get("ssim")
            table.append(
                {
                    "comparison (A - B)": name,
                    "mask": mask,
                    "Δ PSNR (dB) [95 % CI]": _interval(
                        psnr["difference"], psnr["ci_low"], psnr["ci_high"]
                    ),
                    "p (PSNR)": _p_value(psnr["p_value"]),
                    "Δ SSIM [95 % CI]": _interval(
                        ssim["difference"], ssim["ci_low"], ssim["ci_high"], digits=3
                    )
                    if ssim
                    else MISSING,
                    "seeds A / B": f"{psnr['seeds_a']} / {psnr['seeds_b']}"
                    + (" paired" if psnr["paired_seeds"] else ""),
                    "files": psnr["files"],
                }
            )
    if not table:
        return ["No comparison could be made: its experiments were not both run.", ""]
    return [
        "Paired over the same held-out files (ranking view, full metadata); an interval that "
        "holds 0 means these images cannot tell the two apart. The full-image view is in "
        f"[{COMPARISONS_FILE}]({COMPARISONS_FILE}).",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]


def _per_centre_table(
    results: Sequence[Mapping[str, Any]], order: Sequence[str], mask: str, held_out: Sequence[str]
) -> list[str]:
    centres = _unique(
        row["centre"]
        for split in (INTERNAL_TEST, HELD_OUT)
        for row in results
        if row["split"] == split and _centre(row)
    )
    table = []
    for experiment in order:
        line: dict[str, Any] = {"experiment": experiment}
        for centre in centres:
            split = HELD_OUT if centre in held_out else INTERNAL_TEST
            row = find_result(results, experiment, split, RANKING_VIEW, mask, centre)
            column = f"{centre} *" if centre in held_out else centre
            line[column] = (
                _interval(row["psnr"], row["psnr_ci_low"], row["psnr_ci_high"]) if row else MISSING
            )
        if any(value != MISSING for key, value in line.items() if key != "experiment"):
            table.append(line)
    if not table:
        return ["No scores.", ""]
    return [markdown_table(table, list(table[0])), ""]


def _metadata_cost_rows(
    results: Sequence[Mapping[str, Any]], order: Sequence[str], masks: Sequence[str]
) -> list[dict[str, Any]]:
    table = []
    for experiment in order:
        for mask in masks:
            full = find_result(results, experiment, HELD_OUT, RANKING_VIEW, mask)
            unknown = find_result(
                results, experiment, HELD_OUT, RANKING_VIEW, mask, metadata="unknown"
            )
            if full is None or unknown is None:
                continue
            table.append(
                {
                    "experiment": experiment,
                    "mask": mask,
                    "PSNR full": full["psnr"],
                    "PSNR unknown": unknown["psnr"],
                    "Δ PSNR": unknown["psnr"] - full["psnr"],
                }
            )
    return table


_COST_COLUMNS = (
    "experiment",
    "seed",
    "kind",
    "wall time (s)",
    "steps per site",
    "rounds",
    "round (s)",
    "client compute (s)",
    "client evaluation (s)",
    "overhead (s)",
    "MB per client per round",
    "details",
)
_DIGITS = {
    "wall time (s)": 1,
    "round (s)": 2,
    "client compute (s)": 2,
    "client evaluation (s)": 2,
    "overhead (s)": 2,
    "MB per client per round": 3,
}
# What the cost table's details column shows: what the experiment was, not where its files are
# (paths, run ids and the description live in outcome.json and MLflow).
REPORTED_DETAILS = (
    "total_steps",
    "strategy",
    "privacy",
    "text_encoder",
    "rounds_completed",
    "dp_epsilon",
)


def cost_rows(outcomes: Sequence[ExperimentOutcome]) -> list[dict]:
    """Wall time and steps of every run; round time, client compute, overhead and traffic
    (means over rounds) of the federated ones."""
    table = []
    for outcome in outcomes:
        line: dict[str, Any] = {
            "experiment": outcome.experiment,
            "seed": outcome.seed,
            "kind": outcome.kind,
            "wall time (s)": outcome.wall_seconds,
            "steps per site": outcome.steps_per_site,
            "details": ", ".join(
                f"{key}={_short(value)}"
                for key, value in outcome.details.items()
                if key in REPORTED_DETAILS and isinstance(value, str | int | float | bool)
            ),
        }
        summary = round_summary(load_history(outcome.history)) if outcome.history else None
        line.update(summary or dict.fromkeys(_COST_COLUMNS[5:-1], MISSING))
        table.append(line)
    return table


def round_summary(history: Sequence[RoundRecord] | None) -> dict[str, Any] | None:
    """Means over rounds of round seconds, slowest site's training, overhead and MB per site."""
    if not history:
        return None

    def mean(section: str, key: str, scale: float = 1.0) -> float | str:
        values = [value / scale for _, value in finite_series(history, section, key)]
        return sum(values) / len(values) if values else MISSING

    return {
        "rounds": len(history),
        "round (s)": mean("timing", "round-seconds"),
        "client compute (s)": mean("timing", "client-train-seconds-max"),
        "client evaluation (s)": mean("timing", "client-eval-seconds-max"),
        "overhead (s)": mean("timing", "overhead-seconds"),
        "MB per client per round": mean("traffic", "bytes-per-site", 1e6),
    }


def load_history(path: str | Path | None) -> list[RoundRecord] | None:
    """A federation's rounds, or None (with a warning where a file was named but unreadable):
    a missing history never costs the report its other tables."""
    if path is None:
        return None
    try:
        return read_history(path)
    except (OSError, ValueError) as error:
        logger.warning("cannot read the history %s: %s", path, error)
        return None


# -- files -------------------------------------------------------------------------------


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], path: Path) -> Path:
    """A CSV with exactly ``columns`` (written whole, then renamed into place)."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
    return path


def read_file_scores(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``file_scores.csv``, with images as ints and metrics as floats."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["images"] = int(row["images"])
        row.update({metric: float(row[metric]) for metric in METRICS})
    return rows


# -- figures -----------------------------------------------------------------------------


def _fold_figures(
    study_dir: Path,
    fold: str,
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    curves: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    suffix: str,
) -> list[Path]:
    """Every figure of a fold that its data allow (a failing figure is logged and skipped)."""
    order = experiment_order(results, outcomes)
    masks = _unique(row["mask"] for row in results)
    held_out = _unique(r["centre"] for r in results if r["split"] == HELD_OUT and _centre(r))
    histories = {
        f"{outcome.experiment} (seed {outcome.seed})": history
        for outcome in outcomes
        if outcome.kind == "federated" and (history := load_history(outcome.history))
    }
    jobs: list[tuple[str, Callable[[], Path | list[Path] | None]]] = [
        (
            "learning curves",
            lambda: figures.learning_curve_figure(
                curves, study_dir / f"learning_curves{suffix}.png"
            ),
        ),
        (
            "comparisons",
            lambda: figures.comparison_figure(
                comparisons, study_dir / f"paired_differences{suffix}.png"
            ),
        ),
        (
            "per-centre PSNR",
            lambda: figures.per_centre_psnr_figure(
                {mask: _centre_psnr(results, order, mask) for mask in masks},
                held_out,
                study_dir / f"per_centre_psnr{suffix}.png",
            ),
        ),
        (
            "examples",
            lambda: figures.example_figures(
                _fold_examples(study_dir, fold), study_dir, order, suffix
            ),
        ),
        (
            "training loss",
            lambda: figures.convergence_figure(histories, study_dir / f"convergence{suffix}.png"),
        ),
        ("timing", lambda: figures.timing_figure(histories, study_dir / f"timing{suffix}.png")),
    ]
    paths: list[Path] = []
    for name, job in jobs:
        try:
            made = job()
        except Exception as error:  # a figure must never cost the report its tables
            logger.warning("figure %s of fold %s not drawn: %s", name, fold, error)
            continue
        paths += made if isinstance(made, list) else [made] if made is not None else []
    return paths


def _centre_psnr(
    results: Sequence[Mapping[str, Any]], order: Sequence[str], mask: str
) -> dict[str, dict[str, float]]:
    scores: dict[str, dict[str, float]] = {}
    for experiment in order:
        for row in results:
            if (
                row["experiment"] == experiment
                and row["mask"] == mask
                and row["view"] == RANKING_VIEW
                and row["metadata"] == "full"
                and _centre(row)
            ):
                scores.setdefault(experiment, {})[row["centre"]] = row["psnr"]
    return scores


def _fold_examples(study_dir: Path, fold: str) -> list[ExampleImage]:
    folders = sorted(study_dir.glob(f"**/{EXAMPLES_FOLDER}/{path_slug(fold)}"))
    return [example for folder in folders for example in load_examples(folder)]


# -- formatting --------------------------------------------------------------------------


def _interval(mean: float, low: float, high: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _p_value(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _centre(row: Mapping[str, Any]) -> bool:
    return row["centre"] != ALL_CENTRES


def _without(line: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in line.items() if name != key}


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
