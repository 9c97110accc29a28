"""The clinical part of the study report: its CSV files, the Bland-Altman figures and the
``Clinical measurements`` section of each fold."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cardiomm.classical.suite import BEST_CLASSICAL
from cardiomm.segmentation.agreement import bland_altman_plot
from simulations.report_tables import markdown_table
from simulations.study.clinical import CLINICAL_COLUMNS, ClinicalCheck
from simulations.study.clinical_results import (
    ANY_MASK,
    CLINICAL_COMPARISON_COLUMNS,
    CLINICAL_RESULT_COLUMNS,
    FULLY_SAMPLED,
    GOAL_MASK,
    LVEF,
    REFERENCE,
    TRUTH,
    bland_altman_groups,
    clinical_comparison_rows,
    clinical_result_rows,
    clinical_verdict_rows,
    find_result,
    measurement_chain_rows,
)
from simulations.study.csv_files import write_csv
from simulations.study.results import MET, MISSED, Comparison

CLINICAL_FILE = "clinical.csv"
CLINICAL_RESULTS_FILE = "clinical_results.csv"
CLINICAL_COMPARISONS_FILE = "clinical_comparisons.csv"
# Quantities in the report's table at the goal's setting, with their units.
SHOWN = {
    "lv_ef_percent": "LVEF (points)",
    "lv_edv_ml": "LV EDV (ml)",
    "lv_esv_ml": "LV ESV (ml)",
    "lv_mass_g": "LV mass (g)",
    "rv_ef_percent": "RVEF (points)",
}
DICE_SHOWN = {
    "dice_lv_blood": "Dice LV blood",
    "dice_lv_myocardium": "Dice LV myo.",
    "dice_rv_blood": "Dice RV blood",
}


@dataclasses.dataclass(frozen=True)
class ClinicalTables:
    """The clinical numbers of every fold (rows carry their fold)."""

    rows: list[dict[str, Any]]
    results: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]


def clinical_tables(
    checks: Mapping[str, ClinicalCheck], comparisons: Sequence[Comparison], experiment: str
) -> ClinicalTables:
    """Results and comparisons of every fold's check; ``experiment`` is also compared with
    the best classical method (the LVEF goal) whether or not the study's comparisons include it."""
    goal = [Comparison(experiment, BEST_CLASSICAL)] if experiment != BEST_CLASSICAL else []
    pairs = list(dict.fromkeys([*comparisons, *goal]))
    rows = [row for check in checks.values() for row in check.rows]
    results = [row for fold in checks for row in clinical_result_rows(rows, fold)]
    compared = [row for fold in checks for row in clinical_comparison_rows(rows, fold, pairs)]
    return ClinicalTables(rows, results, compared)


def write_clinical_files(tables: ClinicalTables, study_dir: Path) -> dict[str, Path]:
    """clinical.csv (one row per model, setting and scan), clinical_results.csv and
    clinical_comparisons.csv."""
    return {
        "clinical": write_csv(tables.rows, CLINICAL_COLUMNS, study_dir / CLINICAL_FILE),
        "clinical_results": write_csv(
            tables.results, CLINICAL_RESULT_COLUMNS, study_dir / CLINICAL_RESULTS_FILE
        ),
        "clinical_comparisons": write_csv(
            tables.comparisons, CLINICAL_COMPARISON_COLUMNS, study_dir / CLINICAL_COMPARISONS_FILE
        ),
    }


def clinical_figures(
    tables: ClinicalTables, fold: str, order: Sequence[str], study_dir: Path, suffix: str
) -> list[Path]:
    """One Bland-Altman figure of LVEF against the fully sampled reference per setting."""
    masks = list(dict.fromkeys(row["mask"] for row in tables.rows if row["fold"] == fold))
    paths = []
    for mask in masks:
        groups = bland_altman_groups(tables.rows, fold, mask, order)
        if groups:
            path = study_dir / f"bland_altman_lvef_{mask}{suffix}.png"
            paths.append(bland_altman_plot(groups, path, quantity=f"LVEF (%), {mask}"))
    return paths


def clinical_section(
    check: ClinicalCheck | None,
    tables: ClinicalTables,
    fold: str,
    order: Sequence[str],
    experiment: str,
) -> list[str]:
    """The markdown lines of a fold's clinical section (``check`` None: not run)."""
    lines = ["### Clinical measurements (held-out cine short-axis stacks)", ""]
    if check is None:
        return [
            *lines,
            "Not run (`study.clinical.enabled=false`, or `cardiomm simulate --no-clinical`).",
            "",
        ]
    if check.note:
        return [*lines, f"Nothing measured: {check.note}.", *_skipped(check), ""]
    results = [row for row in tables.results if row["fold"] == fold]
    comparisons = [row for row in tables.comparisons if row["fold"] == fold]
    scans = sorted({row["file"] for row in check.rows})
    centres = sorted({row["centre"] for row in check.rows})
    lines += _method_lines(check, len(scans), centres)
    lines += _chain_lines(results, check.segmenter)
    lines += _verdict_lines(results, comparisons, experiment)
    order = [name for name in order if any(row["experiment"] == name for row in results)]
    lines += _lvef_table(results, order)
    lines += _goal_mask_table(results, order)
    lines += _truth_table(results, [FULLY_SAMPLED, *order])
    if comparisons:
        lines += _comparison_table(comparisons)
    lines += _skipped(check)
    return lines


def _method_lines(check: ClinicalCheck, scans: int, centres: list[str]) -> list[str]:
    segmenter = check.segmenter
    settings = segmenter.get("settings", {})
    validation = _dice_text(segmenter.get("validation_dice", {}))
    held_out = _dice_text(segmenter.get("held_out_dice", {}))
    return [
        f"- Segmenter: MONAI 2D U-Net (`{settings.get('size')}`), {settings.get('steps')} "
        f"steps on {segmenter.get('images')} fully sampled reference images of the internal "
        f"centres' training patients ({segmenter.get('seconds', 0):.0f} s); Dice on the "
        f"internal validation references: {validation}; on the held-out references: "
        f"{held_out}. Its settings were chosen on internal validation Dice only.",
        f"- {scans} held-out cine short-axis scans ({', '.join(centres)}), segmented fully "
        "sampled (every frame: end diastole and end systole = largest and smallest LV blood "
        "volume) and as every method reconstructed them at every setting, with the masks the "
        "PSNR scores use; phenotypes read at the reference's two frames (only those two "
        "frames are reconstructed: every image is reconstructed on its own). Volumes: area x "
        "slice thickness summed over the stack; LV mass: myocardium at end diastole x 1.05 "
        "g/ml.",
        "- Intervals: 95 % two-stage bootstrap over training seeds and scans (a local-only "
        "cell is the mean over its site models' own errors). LoA: limits of agreement, bias "
        "+- 1.96 SD of the differences. With a handful of scans the intervals are wide: a "
        'goal whose interval crosses its bound is "met on the mean only" at best.',
        "",
    ]


def _chain_lines(results: Sequence[Mapping[str, Any]], segmenter: Mapping[str, Any]) -> list[str]:
    """The measurement chain checked on the truth, before any reconstruction is judged."""
    rows = measurement_chain_rows(results, segmenter)
    lines = ["#### The measurement chain on the fully sampled held-out references", ""]
    if not rows:
        return [*lines, "Not measured (no held-out Dice or true LVEF).", ""]
    table = [
        {
            "check": row["goal"],
            "value [95 % CI]": _interval(row["value"], row["ci_low"], row["ci_high"]),
            "target": row["target"],
            "verdict": row["verdict"],
        }
        for row in rows
    ]
    missed = [row["goal"] for row in rows if row["verdict"] != MET]
    note = (
        "Every check of the chain is met: a reconstruction's LVEF error below is the "
        "reconstruction's."
        if not missed
        else "Not met: " + "; ".join(missed) + ". A reconstruction's LVEF error below "
        "includes this much of the segmenter's own error; read it against these figures."
    )
    return [
        *lines,
        "Dice: the segmenter on every fully sampled held-out image (95 % percentile bootstrap "
        "over images); LVEF: the segmenter's LVEF of the fully sampled stacks against the "
        "phantom's true LVEF (over scans).",
        "",
        markdown_table(table, list(table[0])),
        "",
        note,
        "",
    ]


def _verdict_lines(
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    experiment: str,
) -> list[str]:
    verdicts = clinical_verdict_rows(results, comparisons, experiment)
    lines = [f"#### Verdict: LVEF at {GOAL_MASK}", ""]
    if not verdicts:
        return [
            *lines,
            f"Not judged: `{experiment}` was not measured at {GOAL_MASK} in this study.",
            "",
        ]
    table = [
        {
            "goal": row["goal"],
            "mask": row["mask"],
            "value [95 % CI] (points)": _interval(row["value"], row["ci_low"], row["ci_high"]),
            "bound": f"< {row['bound']:g}",
            "scans": row["files"],
            "verdict": row["verdict"],
        }
        for row in verdicts
    ]
    lines += [markdown_table(table, list(table[0])), ""]
    met = sum(row["verdict"] == MET for row in verdicts)
    missed = [row for row in verdicts if row["verdict"] == MISSED]
    summary = f"{met} of {len(verdicts)} LVEF goal checks met with their interval below the bound"
    if missed:
        summary += "; missed: " + "; ".join(
            f"{row['goal']} ({row['value']:+.2f} points)" for row in missed
        )
    return [*lines, summary + ".", ""]


def _lvef_table(results: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[str]:
    """LVEF against the fully sampled reference at every setting: MAE and bias with LoA."""
    masks = list(dict.fromkeys(row["mask"] for row in results if row["mask"] != ANY_MASK))
    table = []
    for experiment in order:
        line = {"experiment": experiment}
        for mask in masks:
            mae = find_result(results, experiment, mask, LVEF, REFERENCE, "mae")
            bias = find_result(results, experiment, mask, LVEF, REFERENCE, "bias")
            low = find_result(results, experiment, mask, LVEF, REFERENCE, "loa_low")
            high = find_result(results, experiment, mask, LVEF, REFERENCE, "loa_high")
            line[f"{mask} MAE"] = _shown_interval(mae)
            line[f"{mask} bias (LoA)"] = (
                f"{bias['value']:+.2f} ({_number(low, '+.1f')}, {_number(high, '+.1f')})"
                if bias
                else "–"
            )
        table.append(line)
    return [
        "#### LVEF against the fully sampled reference (points)",
        "",
        "Mean absolute error [95 % CI]; bias (limits of agreement); the same segmenter on both.",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]


def _goal_mask_table(results: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[str]:
    table = []
    for experiment in order:
        line = {"experiment": experiment}
        for quantity, label in SHOWN.items():
            line[f"{label} MAE"] = _shown_interval(
                find_result(results, experiment, GOAL_MASK, quantity, REFERENCE, "mae")
            )
        for quantity, label in DICE_SHOWN.items():
            line[label] = _shown_interval(
                find_result(results, experiment, GOAL_MASK, quantity, REFERENCE, "mean"), 3
            )
        correlation = find_result(results, experiment, GOAL_MASK, LVEF, REFERENCE, "correlation")
        line["LVEF r"] = _number(correlation, ".2f")
        table.append(line)
    if not any(
        value != "–" for line in table for key, value in line.items() if key != "experiment"
    ):
        return []
    return [
        f"#### Every phenotype at {GOAL_MASK} against the fully sampled reference",
        "",
        "Mean absolute error [95 % CI] per phenotype; Dice of the reconstruction's "
        "segmentation against the reference's at end diastole and end systole; Pearson's r "
        "of LVEF.",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]


def _truth_table(results: Sequence[Mapping[str, Any]], order: Sequence[str]) -> list[str]:
    quantities = {"lv_ef_percent": "LVEF (points)", "lv_edv_ml": "LV EDV (ml)"}
    quantities["lv_esv_ml"] = "LV ESV (ml)"
    table = []
    for experiment in order:
        mask = ANY_MASK if experiment == FULLY_SAMPLED else GOAL_MASK
        line = {"experiment": experiment}
        for quantity, label in quantities.items():
            found = find_result(results, experiment, mask, quantity, TRUTH, "mae")
            line[f"{label} MAE"] = _shown_interval(found)
            line[f"{label} bias"] = _number(
                find_result(results, experiment, mask, quantity, TRUTH, "bias")
            )
        table.append(line)
    if all(value == "–" for line in table for key, value in line.items() if key != "experiment"):
        return []
    return [
        f"#### Against the phantom's true volumes ({GOAL_MASK}; `fully-sampled`: the segmenter "
        "on the fully sampled images)",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]


def _comparison_table(comparisons: Sequence[Mapping[str, Any]]) -> list[str]:
    table = [
        {
            "A - B": row["comparison"],
            "mask": row["mask"],
            "Δ absolute LVEF error (points) [95 % CI]": _interval(
                row["difference"], row["ci_low"], row["ci_high"]
            ),
            "p": "< 0.001" if row["p_value"] < 0.001 else f"{row['p_value']:.3f}",
            "scans": row["files"],
        }
        for row in comparisons
    ]
    return [
        "#### Paired comparisons of the absolute LVEF error",
        "",
        "Negative: A's LVEF is closer to the fully sampled reference; paired over the same "
        "scans (and seeds where both were trained with them).",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]


def _skipped(check: ClinicalCheck) -> list[str]:
    if not check.skipped:
        return []
    return [
        "",
        "Held-out files not measured: "
        + "; ".join(f"{Path(path).as_posix()} ({reason})" for path, reason in check.skipped)
        + ".",
        "",
    ]


def _interval(value: float, low: float, high: float, digits: int = 2) -> str:
    if not math.isfinite(low) or not math.isfinite(high):
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _shown_interval(row: Mapping[str, Any] | None, digits: int = 2) -> str:
    if row is None or not math.isfinite(row["value"]):
        return "–"
    return _interval(row["value"], row["ci_low"], row["ci_high"], digits)


def _number(row: Mapping[str, Any] | None, spec: str = "+.2f") -> str:
    if row is None or not math.isfinite(row["value"]):
        return "–"
    return format(row["value"], spec)


def _dice_text(dice: Mapping[str, float | None]) -> str:
    """``LV blood 0.90, LV myocardium 0.80, RV blood 0.85`` (– where no reference has it)."""
    shown = [
        f"{label} {'–' if dice[name] is None else format(dice[name], '.2f')}"
        for name, label in _CLASS_LABELS.items()
        if name in dice
    ]
    return ", ".join(shown) or "–"


_CLASS_LABELS = {"lv_blood": "LV blood", "lv_myocardium": "LV myocardium", "rv_blood": "RV blood"}
