"""The study report's tables: scores with intervals, comparisons, per centre, missing
metadata, training cost; and how numbers are written in them."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cardiomm.classical.methods import METHODS
from federation.protocol import (
    TRAINABLE_PARAMETERS,
)
from federation.records import RoundRecord, finite_series, read_history
from simulations.report_tables import markdown_table
from simulations.study.outcome import ExperimentOutcome
from simulations.study.results import ALL_CENTRES, HELD_OUT, RANKING_VIEW, first_row
from simulations.study.scoring import INTERNAL_TEST, REFERENCES

logger = logging.getLogger(__name__)

COMPARISONS_FILE = "comparisons.csv"
FULL_VIEW = "full"
MISSING = "–"


def experiment_order(
    results: Sequence[Mapping[str, Any]], outcomes: Sequence[ExperimentOutcome]
) -> list[str]:
    """Experiments in report order: references (the named classical methods after
    best-classical), then the runs' order, then the rest."""
    names = {row["experiment"] for row in results} | {o.experiment for o in outcomes}
    order = [name for name in (*REFERENCES, *METHODS) if name in names]
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
    return first_row(
        results,
        experiment=experiment,
        split=split,
        view=view,
        mask=mask,
        centre=centre,
        metadata=metadata,
    )


def score_table(
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
            line[f"{mask} PSNR"] = format_interval(
                row["psnr"], row["psnr_ci_low"], row["psnr_ci_high"]
            )
            line[f"{mask} SSIM"] = format_interval(
                row["ssim"], row["ssim_ci_low"], row["ssim_ci_high"], digits=3
            )
        if any(value != MISSING for key, value in line.items() if key != "experiment"):
            table.append({"experiment": experiment, "seeds": seeds, **without(line, "experiment")})
    if not table:
        return ["No scores.", ""]
    return [markdown_table(table, list(table[0])), ""]


def comparison_table(comparisons: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = [row for row in comparisons if row["view"] == RANKING_VIEW]
    table = []
    for name in unique(row["comparison"] for row in rows):
        for mask in unique(row["mask"] for row in rows):
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
                    "Δ PSNR (dB) [95 % CI]": format_interval(
                        psnr["difference"], psnr["ci_low"], psnr["ci_high"]
                    ),
                    "p (PSNR)": format_p_value(psnr["p_value"]),
                    "Δ SSIM [95 % CI]": format_interval(
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


def per_centre_table(
    results: Sequence[Mapping[str, Any]], order: Sequence[str], mask: str, held_out: Sequence[str]
) -> list[str]:
    centres = unique(
        row["centre"]
        for split in (INTERNAL_TEST, HELD_OUT)
        for row in results
        if row["split"] == split and is_centre(row)
    )
    table = []
    for experiment in order:
        line: dict[str, Any] = {"experiment": experiment}
        for centre in centres:
            split = HELD_OUT if centre in held_out else INTERNAL_TEST
            row = find_result(results, experiment, split, RANKING_VIEW, mask, centre)
            column = f"{centre} *" if centre in held_out else centre
            line[column] = (
                format_interval(row["psnr"], row["psnr_ci_low"], row["psnr_ci_high"])
                if row
                else MISSING
            )
        if any(value != MISSING for key, value in line.items() if key != "experiment"):
            table.append(line)
    if not table:
        return ["No scores.", ""]
    return [markdown_table(table, list(table[0])), ""]


def metadata_cost_rows(
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


COST_COLUMNS = (
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
    "bytes per trained parameter (down / up)",
    "details",
)
COST_DIGITS = {
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
                f"{key}={short(value)}"
                for key, value in outcome.details.items()
                if key in REPORTED_DETAILS and isinstance(value, str | int | float | bool)
            ),
        }
        summary = round_summary(load_history(outcome.history)) if outcome.history else None
        line.update(summary or dict.fromkeys(COST_COLUMNS[5:-1], MISSING))
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
        "bytes per trained parameter (down / up)": bytes_per_trained_parameter(history[-1]),
    }


def bytes_per_trained_parameter(record: RoundRecord) -> str:
    """``down / up`` of one round: the bytes sent to the site that was sent the most, and
    the most any site sent back, each per parameter a site trains (its
    ``trainable-parameters``); the last round shows the steady state, after a frozen part
    has travelled once."""
    trained = [
        float(site.train[TRAINABLE_PARAMETERS])
        for site in record.sites.values()
        if isinstance((site.train or {}).get(TRAINABLE_PARAMETERS), int | float)
    ]
    received = [
        site.bytes_received for site in record.sites.values() if site.bytes_received is not None
    ]
    sent = record.traffic.get("bytes-per-site")
    if not trained or max(trained) <= 0 or not received or sent is None:
        return MISSING
    return f"{sent / max(trained):.2f} / {max(received) / max(trained):.2f}"


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


def format_interval(mean: float, low: float, high: float, digits: int = 2) -> str:
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def format_p_value(value: float) -> str:
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def is_centre(row: Mapping[str, Any]) -> bool:
    return row["centre"] != ALL_CENTRES


def without(line: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {name: value for name, value in line.items() if name != key}


def unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


def short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)
