"""The study report's sections in markdown: the verdict, the design, the scores, internal
validation and training cost."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from federation.protocol import (
    VAL_PSNR,
    VAL_SSIM,
)
from simulations.report_tables import markdown_table
from simulations.study.design import StudyDesign
from simulations.study.outcome import ExperimentOutcome
from simulations.study.results import (
    ALL_CENTRES,
    HELD_OUT,
    MET,
    MISSED,
    RANKING_VIEW,
    finite_mean,
    non_finite_experiments,
    select_on_validation,
    verdict_rows,
)
from simulations.study.scoring import INTERNAL_TEST
from simulations.study.tables import (
    COST_COLUMNS,
    COST_DIGITS,
    FULL_VIEW,
    comparison_table,
    cost_rows,
    format_interval,
    format_p_value,
    metadata_cost_rows,
    per_centre_table,
    score_table,
    unique,
)


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
            "Δ PSNR (dB) [95 % CI]": format_interval(
                row["difference"], row["ci_low"], row["ci_high"]
            ),
            "p": format_p_value(row["p_value"]),
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
    fold: str,
) -> list[str]:
    """Data, training, undersampling, statistics and how anything was chosen (``fold``:
    whose classical tuning table to show)."""
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
        + ". Zero-filled and the classical methods train nothing.",
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
    return lines + classical_design_lines(design, fold)


def classical_design_lines(design: StudyDesign, fold: str) -> list[str]:
    """The Design section's classical part of ``fold``: the settings tuning chose on
    internal validation and each method's seconds per image."""
    lines: list[str] = []
    if fold in design.classical_tuning:
        lines += [
            "#### The classical reference: settings chosen on internal validation",
            "",
            "best-classical is, per mask, the method marked (best) below.",
            "",
            design.classical_tuning[fold].strip(),
            "",
        ]
    if fold in design.classical_seconds:
        lines += [
            "#### The classical methods' seconds per image",
            "",
            "ESPIRiT calibration and solve, per frame reconstructed (a k-t method solves every "
            "frame of a slice), in this fold's final evaluation; a result from the store counts "
            "the seconds measured when it was made.",
            "",
            design.classical_seconds[fold].strip(),
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
    masks = unique(row["mask"] for row in results)
    broken = non_finite_experiments(results)
    warning = (
        [
            "Non-finite reconstructions (NaN or infinite pixels) on some files, so no mean, "
            f"interval or comparison: {', '.join(broken)}.",
            "",
        ]
        if broken
        else []
    )
    lines = [
        "### Held-out centres (ranking view)",
        "",
        "Mean over seeds and files [95 % CI]; seeds = training seeds of the experiment.",
        "",
        *warning,
        *score_table(results, order, masks, HELD_OUT, RANKING_VIEW),
        "### Paired comparisons on the held-out centres",
        "",
    ]
    lines += comparison_table(comparisons)
    lines += [
        "### Held-out centres, full-image view",
        "",
        "The same images scored over the whole image (background included) instead of the "
        "challenge's centre crop.",
        "",
        *score_table(results, order, masks, HELD_OUT, FULL_VIEW),
        "### Internal test split (ranking view)",
        "",
        *score_table(results, order, masks, INTERNAL_TEST, RANKING_VIEW),
    ]
    for mask in masks:
        lines += [
            f"### PSNR (dB) per centre, {mask}, ranking view (held-out centres marked *)",
            "",
            *per_centre_table(results, order, mask, held_out),
        ]
    lines += ["### What missing metadata costs on the held-out centres", ""]
    cost = metadata_cost_rows(results, order, masks)
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
                    "val PSNR (dB)": row[VAL_PSNR],
                    "val SSIM": row[VAL_SSIM],
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
            name: finite_mean(row[VAL_PSNR] for row in validation if row["experiment"] == name)
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
        markdown_table(cost_rows(outcomes), list(COST_COLUMNS), COST_DIGITS),
        "",
    ]
