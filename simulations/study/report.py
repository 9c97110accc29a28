"""The study's report: ``results.csv``, ``report.md`` with its tables, and the figures.

Scores are pooled the way ``cardiomm evaluate`` averages them: the rows of a model (one per
centre, vendor, modality and mask) are averaged weighted by their files, which equals the
mean over files. A local-only experiment has one model per internal site; its headline is
the plain mean over those models, and the per-centre table shows each one too.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from simulations.evaluation import HELD_OUT
from simulations.report_tables import markdown_table
from simulations.study import figures
from simulations.study.evaluation import (
    EXAMPLES_FOLDER,
    INTERNAL_TEST,
    REFERENCES,
    ExampleImage,
    load_examples,
    path_slug,
)
from simulations.study.outcome import RESULT_COLUMNS, ExperimentOutcome

logger = logging.getLogger(__name__)

RESULTS_FILE = "results.csv"
REPORT_FILE = "report.md"
METRICS = ("psnr", "ssim", "nmse")
_INTEGERS = ("files", "images")
MISSING = "–"


def write_report(
    study_dir: str | Path,
    rows: Sequence[dict],
    outcomes: Sequence[ExperimentOutcome],
    title: str,
    machine_note: str = "",
) -> dict[str, Path]:
    """Write ``results.csv``, the figures and ``report.md`` into ``study_dir``.

    Args:
        study_dir: the study's run directory; example reconstructions are looked for in its
            ``**/examples/<fold>/`` folders (where :func:`evaluate_outcomes` put them).
        rows: :data:`RESULT_COLUMNS` rows of every fold (as evaluated, or read back with
            :func:`read_results`).
        outcomes: the finished experiments (wall time, steps, histories of federations).
        title: the report's heading.
        machine_note: what the timings were measured on (e.g. "2-core CPU VM, no GPU").

    Returns:
        what was written: ``results``, ``report`` and one entry per figure (its file stem).
    """
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    rows = [typed_row(row) for row in rows]
    written = {"results": write_results(rows, study_dir / RESULTS_FILE)}
    folds = list(dict.fromkeys([row["fold"] for row in rows] + [o.fold for o in outcomes]))
    sections = [f"# {title}", ""]
    if machine_note:
        sections += [f"Timings measured on: {machine_note}.", ""]
    sections += [
        f"Every score is in [{RESULTS_FILE}]({RESULTS_FILE}) ({len(rows)} rows: one per "
        "experiment, model, split, metadata variant, centre, vendor, modality and mask). "
        "Scores follow the CMRxRecon ranking (central slices, first frames, centre crop); "
        "images are averaged per file, files pooled per table cell. Local-only rows are the "
        "mean over the site models.",
        "",
    ]
    for fold in folds:
        fold_rows = [row for row in rows if row["fold"] == fold]
        fold_outcomes = [outcome for outcome in outcomes if outcome.fold == fold]
        suffix = f"_{path_slug(fold)}" if len(folds) > 1 else ""
        figure_paths = _fold_figures(study_dir, fold, fold_rows, fold_outcomes, suffix)
        written.update({path.stem: path for path in figure_paths})
        sections += fold_section(fold, fold_rows, fold_outcomes, figure_paths, study_dir)
    report = study_dir / REPORT_FILE
    report.write_text("\n".join(sections))
    written["report"] = report
    return written


def fold_section(
    fold: str,
    rows: Sequence[dict],
    outcomes: Sequence[ExperimentOutcome],
    figure_paths: Sequence[Path],
    study_dir: Path,
) -> list[str]:
    """The markdown lines of one fold: headline, per-centre, metadata-cost and cost tables."""
    masks = _unique(row["mask"] for row in rows)
    labels = experiment_labels(rows, outcomes)
    held_out = _unique(row["centre"] for row in rows if row["split"] == HELD_OUT)
    internal = _unique(row["centre"] for row in rows if row["split"] == INTERNAL_TEST)
    lines = [
        f"## Fold {fold}",
        "",
        f"Internal test centres: {', '.join(internal) or 'none'}; held-out centres: "
        f"{', '.join(held_out) or 'none'}.",
        "",
        "### PSNR (dB) and SSIM on the internal test split and the held-out centres",
        "",
        markdown_table(
            headline_rows(rows, labels, masks),
            ["experiment", "kind", "mask", *_split_columns()],
            {column: 2 if "PSNR" in column else 4 for column in _split_columns()},
        ),
        "",
    ]
    for mask in masks:
        table, columns = per_centre_rows(rows, labels, mask, held_out)
        lines += [
            f"### PSNR (dB) per centre, {mask} (held-out centres marked *)",
            "",
            markdown_table(table, ["experiment", *columns], dict.fromkeys(columns, 2)),
            "",
        ]
    cost = metadata_cost_rows(rows, labels, masks)
    lines += ["### What missing metadata costs on the held-out centres", ""]
    if cost:
        lines += [
            "The held-out centres scored again with every field of the metadata text "
            "`unknown` (a vendor-personalised model then uses its across-vendor fallback). "
            "Δ = unknown - full.",
            "",
            markdown_table(cost, list(cost[0]), _DIGITS),
            "",
        ]
    else:
        lines += ["No unknown-metadata scores in this fold.", ""]
    lines += ["### Training cost", ""]
    if outcomes:
        lines += [
            "Per-round figures are means over the rounds in history.json: the round's wall "
            "time = the slowest site's training (client compute) + the slowest site's "
            "evaluation + the rest (federation overhead: transfers, aggregation, waiting); "
            "and the bytes of the model sent to each site (about as many come back).",
            "",
            markdown_table(cost_rows(outcomes), list(_COST_COLUMNS), _DIGITS),
            "",
        ]
    else:
        lines += ["No experiments in this fold.", ""]
    if figure_paths:
        lines += ["### Figures", ""]
        lines += [
            f"![{path.stem}]({path.relative_to(study_dir).as_posix()})" for path in figure_paths
        ]
        lines.append("")
    return lines


def experiment_labels(
    rows: Sequence[dict], outcomes: Sequence[ExperimentOutcome]
) -> list[tuple[str, str]]:
    """(experiment, kind) in report order: references, then the outcomes' order, then any
    experiment only the rows know."""
    kinds = {row["experiment"]: row["kind"] for row in rows}
    kinds.update({outcome.experiment: outcome.kind for outcome in outcomes})
    order = [name for name in REFERENCES if name in kinds]
    order += [outcome.experiment for outcome in outcomes]
    order += [row["experiment"] for row in rows]
    return [(name, kinds[name]) for name in dict.fromkeys(order)]


def pooled(rows: Iterable[dict]) -> dict[str, float] | None:
    """File-weighted mean of the rows' metrics (the mean over their files); None if none."""
    rows = list(rows)
    files = sum(row["files"] for row in rows)
    if not files:
        return None
    return {m: sum(row[m] * row["files"] for row in rows) / files for m in METRICS}


def experiment_score(
    rows: Sequence[dict], experiment: str, match: Callable[[dict], bool]
) -> dict[str, float] | None:
    """An experiment's scores on the rows ``match`` picks: pooled per model, then the mean
    over models (several only for local-only training); None when it has no such rows."""
    by_model: dict[str, list[dict]] = {}
    for row in rows:
        if row["experiment"] == experiment and match(row):
            by_model.setdefault(row["model"], []).append(row)
    scores = [score for score in map(pooled, by_model.values()) if score is not None]
    if not scores:
        return None
    return {m: sum(score[m] for score in scores) / len(scores) for m in METRICS}


def headline_rows(
    rows: Sequence[dict], labels: Sequence[tuple[str, str]], masks: Sequence[str]
) -> list[dict]:
    """One row per experiment and mask: PSNR and SSIM on the internal test split and on the
    held-out centres (full metadata)."""
    table = []
    for experiment, kind in labels:
        for mask in masks:
            line: dict[str, Any] = {"experiment": experiment, "kind": kind, "mask": mask}
            for split in (INTERNAL_TEST, HELD_OUT):
                score = experiment_score(rows, experiment, _full(split, mask))
                for metric in ("psnr", "ssim"):
                    line[_split_column(split, metric)] = score[metric] if score else MISSING
            table.append(line)
    return table


def centre_scores(
    rows: Sequence[dict], labels: Sequence[tuple[str, str]], mask: str, per_site_models: bool
) -> dict[str, dict[str, float]]:
    """{label: {centre: PSNR}} at ``mask`` (full metadata): each experiment (local-only as
    the mean of its site models) and, with ``per_site_models``, each site model as well."""
    centres = _centres(rows)
    scores: dict[str, dict[str, float]] = {}
    for experiment, _ in labels:
        models = _unique(r["model"] for r in rows if r["experiment"] == experiment)
        names = [(experiment, None)]
        if per_site_models and len(models) > 1:
            names += [(f"{experiment} ({model})", model) for model in models]
        for label, model in names:
            scores[label] = {}
            for centre in centres:
                score = experiment_score(rows, experiment, _full(None, mask, centre, model))
                if score is not None:
                    scores[label][centre] = score["psnr"]
    return scores


def per_centre_rows(
    rows: Sequence[dict], labels: Sequence[tuple[str, str]], mask: str, held_out: Sequence[str]
) -> tuple[list[dict], list[str]]:
    """The per-centre PSNR table at ``mask`` and its centre columns (held-out ones starred)."""
    scores = centre_scores(rows, labels, mask, per_site_models=True)
    centres = _centres(rows)
    columns = [f"{c} *" if c in held_out else c for c in centres]
    table = [
        {
            "experiment": label,
            **{
                column: by_centre.get(centre, MISSING)
                for column, centre in zip(columns, centres, strict=True)
            },
        }
        for label, by_centre in scores.items()
    ]
    return table, columns


def metadata_cost_rows(
    rows: Sequence[dict], labels: Sequence[tuple[str, str]], masks: Sequence[str]
) -> list[dict]:
    """Per experiment and mask: held-out PSNR / SSIM with full and with unknown metadata."""
    table = []
    for experiment, _ in labels:
        for mask in masks:
            full = experiment_score(rows, experiment, _full(HELD_OUT, mask))
            unknown = experiment_score(
                rows, experiment, lambda row, m=mask: _held_out_unknown(row, m)
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
                    "SSIM full": full["ssim"],
                    "SSIM unknown": unknown["ssim"],
                    "Δ SSIM": unknown["ssim"] - full["ssim"],
                }
            )
    return table


_COST_COLUMNS = (
    "experiment",
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
    "PSNR full": 2,
    "PSNR unknown": 2,
    "Δ PSNR": 2,
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
    """Wall time and steps of every experiment; round time, client compute, overhead and
    traffic (means over rounds) of the federated ones."""
    table = []
    for outcome in outcomes:
        line: dict[str, Any] = {
            "experiment": outcome.experiment,
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
        line.update(summary or dict.fromkeys(_COST_COLUMNS[4:-1], MISSING))
        table.append(line)
    return table


def round_summary(history: Sequence[dict] | None) -> dict[str, Any] | None:
    """Means over rounds of round seconds, slowest site's training, overhead and MB per site."""
    if not history:
        return None

    def mean(section: str, key: str, scale: float = 1.0) -> float | str:
        values = [
            float(record[section][key]) / scale
            for record in history
            if isinstance(record.get(section), dict) and key in record[section]
        ]
        finite = [value for value in values if math.isfinite(value)]
        return sum(finite) / len(finite) if finite else MISSING

    return {
        "rounds": len(history),
        "round (s)": mean("timing", "round-seconds"),
        "client compute (s)": mean("timing", "client-train-seconds-max"),
        "client evaluation (s)": mean("timing", "client-eval-seconds-max"),
        "overhead (s)": mean("timing", "overhead-seconds"),
        "MB per client per round": mean("traffic", "bytes-per-site", 1e6),
    }


def load_history(path: str | Path | None) -> list[dict] | None:
    """A federation's history.json (one record per round), or None with a warning."""
    if path is None:
        return None
    try:
        history = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("cannot read the history %s: %s", path, error)
        return None
    if not isinstance(history, list):
        logger.warning("%s is not a list of round records; left out", path)
        return None
    return history


def write_results(rows: Sequence[dict], path: Path) -> Path:
    """``results.csv`` with exactly :data:`RESULT_COLUMNS` (written whole, then renamed)."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=RESULT_COLUMNS, extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
    return path


def read_results(path: str | Path) -> list[dict]:
    """Rows of a ``results.csv``, with counts as ints and metrics as floats."""
    with open(path, newline="") as handle:
        return [typed_row(row) for row in csv.DictReader(handle)]


def typed_row(row: dict) -> dict:
    """The row with exactly RESULT_COLUMNS, counts as ints and metrics as floats."""
    values = {column: row[column] for column in RESULT_COLUMNS}
    values.update({column: int(values[column]) for column in _INTEGERS})
    values.update({column: float(values[column]) for column in METRICS})
    return values


def _fold_figures(
    study_dir: Path,
    fold: str,
    rows: Sequence[dict],
    outcomes: Sequence[ExperimentOutcome],
    suffix: str,
) -> list[Path]:
    """Every figure of a fold that its data allow (a failing figure is logged and skipped)."""
    labels = experiment_labels(rows, outcomes)
    masks = _unique(row["mask"] for row in rows)
    held_out = _unique(row["centre"] for row in rows if row["split"] == HELD_OUT)
    histories = {
        outcome.experiment: history
        for outcome in outcomes
        if outcome.kind == "federated" and (history := load_history(outcome.history))
    }
    order = [label for label, _ in labels]
    jobs: list[tuple[str, Callable[[], Path | list[Path] | None]]] = [
        (
            "per-centre PSNR",
            lambda: figures.per_centre_psnr_figure(
                {mask: centre_scores(rows, labels, mask, per_site_models=False) for mask in masks},
                held_out,
                study_dir / f"per_centre_psnr{suffix}.png",
            ),
        ),
        (
            "convergence",
            lambda: figures.convergence_figure(histories, study_dir / f"convergence{suffix}.png"),
        ),
        (
            "examples",
            lambda: figures.example_figures(
                _fold_examples(study_dir, fold), study_dir, order, suffix
            ),
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


def _fold_examples(study_dir: Path, fold: str) -> list[ExampleImage]:
    folders = sorted(study_dir.glob(f"**/{EXAMPLES_FOLDER}/{path_slug(fold)}"))
    return [example for folder in folders for example in load_examples(folder)]


def _full(
    split: str | None, mask: str, centre: str | None = None, model: str | None = None
) -> Callable[[dict], bool]:
    """Picks the full-metadata rows at ``mask`` (of ``split``, ``centre``, ``model`` if given)."""
    wanted = {"split": split, "mask": mask, "metadata": "full", "centre": centre, "model": model}
    wanted = {key: value for key, value in wanted.items() if value is not None}
    return lambda row: all(row[key] == value for key, value in wanted.items())


def _held_out_unknown(row: dict, mask: str) -> bool:
    return row["split"] == HELD_OUT and row["mask"] == mask and row["metadata"] == "unknown"


def _centres(rows: Sequence[dict]) -> list[str]:
    """Internal test centres, then held-out centres, each in name order."""
    internal = sorted({row["centre"] for row in rows if row["split"] == INTERNAL_TEST})
    held_out = sorted({row["centre"] for row in rows if row["split"] == HELD_OUT})
    return internal + [centre for centre in held_out if centre not in internal]


def _split_column(split: str, metric: str) -> str:
    return f"{split} {metric.upper()}"


def _split_columns() -> list[str]:
    return [_split_column(s, m) for s in (INTERNAL_TEST, HELD_OUT) for m in ("psnr", "ssim")]


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
