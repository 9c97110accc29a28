"""The study's report: the CSV files, ``report.md`` with its verdict and tables, the figures.

Every mean in the report is a mean over training seeds and files with its 95 % bootstrap
interval (simulations/study/statistics.py); every "A beats B" is a paired difference with
its interval and p-value. The numbers come from ``file_scores.csv`` (one row per model and
file) through simulations/study/results.py; the report only lays them out: the sections in
simulations/study/sections.py, their tables in tables.py, the CSV files in csv_files.py and
the figures in figures.py.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from simulations.study import figures
from simulations.study.clinical import ClinicalCheck
from simulations.study.clinical_report import (
    ClinicalTables,
    clinical_figures,
    clinical_section,
    clinical_tables,
    write_clinical_files,
)
from simulations.study.cross_site import (
    CROSS_SITE_COLUMNS,
    CROSS_SITE_FILE,
    copy_figures,
    cross_site_rows,
    cross_site_section,
)
from simulations.study.csv_files import write_csv
from simulations.study.design import StudyDesign
from simulations.study.outcome import (
    COMPARISON_COLUMNS,
    FILE_COLUMNS,
    RESULT_COLUMNS,
    ExperimentOutcome,
)
from simulations.study.privacy import privacy_section, privacy_utility_figure
from simulations.study.results import (
    HELD_OUT,
    RANKING_VIEW,
    comparison_rows,
    result_rows,
    validation_rows,
)
from simulations.study.scoring import (
    CURVE_COLUMNS,
    EXAMPLES_FOLDER,
    INTERNAL_TEST,
    ExampleImage,
    load_examples,
    path_slug,
)
from simulations.study.sections import (
    cost_section,
    design_section,
    score_sections,
    validation_section,
    verdict_section,
)
from simulations.study.tables import experiment_order, is_centre, load_history, unique
from simulations.study.vendor_skew import (
    VENDOR_COMPARISON_COLUMNS,
    VENDOR_COMPARISONS_FILE,
    VENDOR_RESULT_COLUMNS,
    VENDOR_RESULTS_FILE,
    vendor_figure,
    vendor_rows,
    vendor_section,
)
from simulations.study.zero_shot import (
    ZERO_SHOT_COLUMNS,
    ZERO_SHOT_FILE,
    zero_shot_rows,
    zero_shot_section,
)

logger = logging.getLogger(__name__)

FILE_SCORES_FILE = "file_scores.csv"
RESULTS_FILE = "results.csv"
COMPARISONS_FILE = "comparisons.csv"
CURVES_FILE = "curves.csv"
REPORT_FILE = "report.md"


@dataclasses.dataclass(frozen=True)
class _StudyScores:
    """The study's score tables, every fold together.

    Attributes:
        folds: the folds, in the order the file rows and outcomes first name them.
        results: :data:`RESULT_COLUMNS` rows.
        comparisons: :data:`COMPARISON_COLUMNS` rows.
        by_vendor: fold -> (its per-vendor result rows, its per-vendor comparison rows), for
            the folds the design gives vendor training images for.
    """

    folds: list[str]
    results: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    by_vendor: dict[str, tuple[list[dict[str, Any]], list[dict[str, Any]]]]


def write_report(
    study_dir: str | Path,
    file_rows: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    design: StudyDesign,
    curves: Sequence[Mapping[str, Any]] = (),
    clinical: Mapping[str, ClinicalCheck] | None = None,
) -> dict[str, Path]:
    """Write the CSV files, the figures and ``report.md`` into ``study_dir``.

    Args:
        study_dir: the study's run directory; example reconstructions are looked for in its
            ``**/examples/<fold>/`` folders.
        file_rows: :data:`FILE_COLUMNS` rows of every fold.
        outcomes: the finished runs (every experiment and seed).
        design: what the design section says.
        curves: :data:`CURVE_COLUMNS` rows (learning curves).
        clinical: fold -> its clinical check (simulations/study/clinical.py); None: the
            check was not run.

    Returns:
        what was written: ``file_scores``, ``results``, ``comparisons``, ``curves``,
        ``report``, the clinical CSV files when the check ran, and one entry per figure
        (its file stem).
    """
    study_dir = Path(study_dir)
    study_dir.mkdir(parents=True, exist_ok=True)
    scores = _study_scores(file_rows, outcomes, design)
    written = _write_score_files(study_dir, file_rows, outcomes, curves, scores)
    tables = clinical_tables(clinical or {}, design.comparisons, design.clinical_experiment)
    if clinical is not None:
        written.update(write_clinical_files(tables, study_dir))
    sections = [f"# {design.title}", ""]
    if design.machine_note:
        sections += [f"Timings measured on: {design.machine_note}.", ""]
    for fold in scores.folds:
        lines, figure_paths = _fold_report(
            study_dir, fold, design, scores, outcomes, curves, clinical, tables
        )
        written.update({path.stem: path for path in figure_paths})
        sections += lines
    report = study_dir / REPORT_FILE
    report.write_text("\n".join(sections))
    written["report"] = report
    return written


def _study_scores(
    file_rows: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    design: StudyDesign,
) -> _StudyScores:
    """Every fold's result, comparison and per-vendor rows from the file scores."""
    folds = list(dict.fromkeys([row["fold"] for row in file_rows] + [o.fold for o in outcomes]))
    return _StudyScores(
        folds=folds,
        results=[row for fold in folds for row in result_rows(file_rows, fold)],
        comparisons=[
            row for fold in folds for row in comparison_rows(file_rows, fold, design.comparisons)
        ],
        by_vendor={
            fold: vendor_rows(file_rows, fold, design.comparisons, images)
            for fold, images in design.vendor_training_images.items()
            if fold in folds
        },
    )


def _write_score_files(
    study_dir: Path,
    file_rows: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    curves: Sequence[Mapping[str, Any]],
    scores: _StudyScores,
) -> dict[str, Path]:
    """Write the score CSV files (zero-shot, cross-site and per-vendor ones only when the
    study has such rows); what was written, by name."""
    written = {
        "file_scores": write_csv(file_rows, FILE_COLUMNS, study_dir / FILE_SCORES_FILE),
        "results": write_csv(scores.results, RESULT_COLUMNS, study_dir / RESULTS_FILE),
        "comparisons": write_csv(
            scores.comparisons, COMPARISON_COLUMNS, study_dir / COMPARISONS_FILE
        ),
        "curves": write_csv(curves, CURVE_COLUMNS, study_dir / CURVES_FILE),
    }
    zero_shot = zero_shot_rows(outcomes)
    if zero_shot:
        written["zero_shot"] = write_csv(zero_shot, ZERO_SHOT_COLUMNS, study_dir / ZERO_SHOT_FILE)
    cross_site = cross_site_rows(outcomes)
    if cross_site:
        written["cross_site"] = write_csv(
            cross_site, CROSS_SITE_COLUMNS, study_dir / CROSS_SITE_FILE
        )
    if scores.by_vendor:
        written["vendor_results"] = write_csv(
            [row for results, _ in scores.by_vendor.values() for row in results],
            VENDOR_RESULT_COLUMNS,
            study_dir / VENDOR_RESULTS_FILE,
        )
        written["vendor_comparisons"] = write_csv(
            [row for _, differences in scores.by_vendor.values() for row in differences],
            VENDOR_COMPARISON_COLUMNS,
            study_dir / VENDOR_COMPARISONS_FILE,
        )
    return written


def _fold_report(
    study_dir: Path,
    fold: str,
    design: StudyDesign,
    scores: _StudyScores,
    outcomes: Sequence[ExperimentOutcome],
    curves: Sequence[Mapping[str, Any]],
    clinical: Mapping[str, ClinicalCheck] | None,
    tables: ClinicalTables,
) -> tuple[list[str], list[Path]]:
    """Draw one fold's figures and write its report lines: (the lines, the figures drawn)."""
    fold_outcomes = [outcome for outcome in outcomes if outcome.fold == fold]
    fold_results = [row for row in scores.results if row["fold"] == fold]
    fold_comparisons = [row for row in scores.comparisons if row["fold"] == fold]
    fold_curves = [row for row in curves if row["fold"] == fold]
    vendor = scores.by_vendor.get(fold, ([], []))
    suffix = f"_{path_slug(fold)}" if len(scores.folds) > 1 else ""
    figure_paths = fold_figures(
        study_dir,
        fold,
        fold_results,
        fold_comparisons,
        fold_curves,
        fold_outcomes,
        suffix,
        vendor[0],
    )
    figure_paths += _clinical_figures(tables, fold, fold_results, fold_outcomes, study_dir, suffix)
    lines = fold_section(
        fold,
        design,
        fold_results,
        fold_comparisons,
        fold_outcomes,
        figure_paths,
        study_dir,
        vendor,
    )
    if design.held_out_evaluation:
        check = None if clinical is None else clinical.get(fold)
        order = experiment_order(fold_results, fold_outcomes)
        lines += clinical_section(check, tables, fold, order, design.clinical_experiment)
    return lines, figure_paths


def _clinical_figures(
    tables: ClinicalTables,
    fold: str,
    results: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    study_dir: Path,
    suffix: str,
) -> list[Path]:
    try:
        order = experiment_order(results, outcomes)
        return clinical_figures(tables, fold, order, study_dir, suffix)
    except Exception as error:  # a figure must never cost the report its tables
        logger.warning("Bland-Altman figures of fold %s not drawn: %s", fold, error)
        return []


def fold_section(
    fold: str,
    design: StudyDesign,
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    figure_paths: Sequence[Path],
    study_dir: Path,
    by_vendor: tuple[Sequence[Mapping[str, Any]], Sequence[Mapping[str, Any]]] = ((), ()),
) -> list[str]:
    """The markdown lines of one fold (``by_vendor``: its vendor_results.csv and
    vendor_comparisons.csv rows, for the per-vendor section)."""
    order = experiment_order(results, outcomes)
    held_out = unique(r["centre"] for r in results if r["split"] == HELD_OUT and is_centre(r))
    internal = unique(r["centre"] for r in results if r["split"] == INTERNAL_TEST and is_centre(r))
    lines = [f"## Fold {fold}", ""]
    if design.held_out_evaluation:
        lines += verdict_section(comparisons)
    lines += design_section(design, results, outcomes, internal, held_out, fold)
    if design.held_out_evaluation:
        lines += score_sections(results, comparisons, order, held_out)
    validation = validation_rows(outcomes)
    lines += validation_section(validation, design.selection_groups)
    if design.held_out_evaluation:
        lines += zero_shot_section(zero_shot_rows(outcomes))
        lines += cross_site_section(cross_site_rows(outcomes))
        lines += privacy_section(results, comparisons, outcomes)
        lines += vendor_section(*by_vendor)
    lines += cost_section(outcomes)
    if figure_paths:
        lines += ["### Figures", ""]
        lines += [
            f"![{path.stem}]({path.relative_to(study_dir).as_posix()})" for path in figure_paths
        ]
        lines.append("")
    return lines


def fold_figures(
    study_dir: Path,
    fold: str,
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    curves: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    suffix: str,
    vendor_results: Sequence[Mapping[str, Any]] = (),
) -> list[Path]:
    """Every figure of a fold that its data allow (a failing figure is logged and skipped)."""
    order = experiment_order(results, outcomes)
    masks = unique(row["mask"] for row in results)
    held_out = unique(r["centre"] for r in results if r["split"] == HELD_OUT and is_centre(r))
    histories = _federated_histories(outcomes)
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
                {mask: centre_psnr(results, order, mask) for mask in masks},
                held_out,
                study_dir / f"per_centre_psnr{suffix}.png",
            ),
        ),
        (
            "examples",
            lambda: figures.example_figures(
                fold_examples(study_dir, fold), study_dir, order, suffix
            ),
        ),
        (
            "training loss",
            lambda: figures.convergence_figure(histories, study_dir / f"convergence{suffix}.png"),
        ),
        ("timing", lambda: figures.timing_figure(histories, study_dir / f"timing{suffix}.png")),
        ("cross-site matrices", lambda: copy_figures(outcomes, study_dir)),
        (
            "privacy-utility",
            lambda: privacy_utility_figure(
                results, outcomes, study_dir / f"privacy_utility{suffix}.png"
            ),
        ),
        (
            "per-vendor PSNR",
            lambda: vendor_figure(vendor_results, study_dir / f"vendor_psnr{suffix}.png"),
        ),
    ]
    return _drawn(jobs, fold)


def _federated_histories(outcomes: Sequence[ExperimentOutcome]) -> dict[str, Any]:
    """ "<experiment> (seed <seed>)" -> the training history of each federated run that has
    one."""
    return {
        f"{outcome.experiment} (seed {outcome.seed})": history
        for outcome in outcomes
        if outcome.kind == "federated" and (history := load_history(outcome.history))
    }


def _drawn(
    jobs: Sequence[tuple[str, Callable[[], Path | list[Path] | None]]], fold: str
) -> list[Path]:
    """Run each (name, figure job) of ``fold``: the figures drawn; a job that fails is
    logged and skipped."""
    paths: list[Path] = []
    for name, job in jobs:
        try:
            made = job()
        except Exception as error:  # a figure must never cost the report its tables
            logger.warning("figure %s of fold %s not drawn: %s", name, fold, error)
            continue
        paths += made if isinstance(made, list) else [made] if made is not None else []
    return paths


def centre_psnr(
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
                and is_centre(row)
            ):
                scores.setdefault(experiment, {})[row["centre"]] = row["psnr"]
    return scores


def fold_examples(study_dir: Path, fold: str) -> list[ExampleImage]:
    folders = sorted(study_dir.glob(f"**/{EXAMPLES_FOLDER}/{path_slug(fold)}"))
    return [example for folder in folders for example in load_examples(folder)]
