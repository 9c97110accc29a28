"""The privacy part of the study report: what each private experiment spent (its epsilon),
what it cost on the held-out centres against non-private FedAvg, the privacy-utility
figure and the verdict on the privacy goals.

An experiment is private when its sites reported a DP-SGD epsilon (``dp_epsilon`` of its
outcome: the largest any site reported, over its seeds) or the server a central-DP epsilon.
Its target (``dp_target_epsilon``: ``privacy.dp_sgd.target_epsilon``) groups it for the
goals: at target 8 the best private configuration may lose at most 1 dB of held-out PSNR
against FedAvg, at target 1 at most 3 dB, per setting, as paired differences with their
intervals (comparisons.csv: each private experiment against ``fedavg``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulations.report_tables import markdown_table
from simulations.study.outcome import ExperimentOutcome
from simulations.study.results import HELD_OUT, MET, MET_ON_MEAN, MISSED, RANKING_VIEW
from simulations.study.tables import find_result, format_interval

logger = logging.getLogger(__name__)

BASELINE = "fedavg"
# Target epsilon -> the largest held-out PSNR loss against FedAvg allowed (issue 17).
PRIVACY_GOALS = {8.0: 1.0, 1.0: 3.0}


def private_experiments(outcomes: Sequence[ExperimentOutcome]) -> dict[str, dict[str, Any]]:
    """experiment -> {mechanism, epsilon (the largest reported over sites and seeds), target,
    delta} of every private experiment, in run order."""
    found: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        details = outcome.details or {}
        for key, mechanism in (("dp_epsilon", "DP-SGD"), ("central_dp_epsilon", "central DP")):
            value = details.get(key)
            if not isinstance(value, int | float) or not math.isfinite(value):
                continue
            entry = found.setdefault(
                outcome.experiment,
                {
                    "mechanism": mechanism,
                    "epsilon": 0.0,
                    "target": details.get("dp_target_epsilon"),
                    "unit": details.get("dp_unit", "site" if mechanism == "central DP" else ""),
                },
            )
            entry["epsilon"] = max(entry["epsilon"], float(value))
    return found


def privacy_verdict_rows(
    comparisons: Sequence[Mapping[str, Any]], private: Mapping[str, Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Per goal (target epsilon) and setting: the best private experiment of that target
    against FedAvg (paired held-out PSNR difference), met when its interval clears the
    allowed loss, met on the mean only, or missed; goals without such experiments left out."""
    verdicts = []
    for target, loss in PRIVACY_GOALS.items():
        candidates = [name for name, entry in private.items() if entry.get("target") == target]
        rows = [
            row
            for row in comparisons
            if row["a"] in candidates
            and row["b"] == BASELINE
            and row["metric"] == "psnr"
            and row["view"] == RANKING_VIEW
            and row["split"] == HELD_OUT
        ]
        for mask in dict.fromkeys(row["mask"] for row in rows):
            best = max((row for row in rows if row["mask"] == mask), key=lambda r: r["difference"])
            if best["ci_low"] >= -loss:
                status = MET
            elif best["difference"] >= -loss:
                status = MET_ON_MEAN
            else:
                status = MISSED
            verdicts.append(
                {
                    "goal": f"epsilon {target:g}: at most {loss:g} dB below FedAvg",
                    "mask": mask,
                    "best": best["a"],
                    "difference": best["difference"],
                    "ci_low": best["ci_low"],
                    "ci_high": best["ci_high"],
                    "needed": -loss,
                    "verdict": status,
                }
            )
    return verdicts


def privacy_section(
    results: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
) -> list[str]:
    """The markdown lines of the privacy section (none when no experiment was private)."""
    private = private_experiments(outcomes)
    if not private:
        return []
    masks = list(dict.fromkeys(row["mask"] for row in results))
    table = []
    for name, entry in private.items():
        line: dict[str, Any] = {
            "experiment": name,
            "mechanism": entry["mechanism"],
            "unit": entry["unit"] or "–",
            "target epsilon": "–" if entry["target"] is None else f"{entry['target']:g}",
            "epsilon spent": f"{entry['epsilon']:.3g}",
        }
        for mask in masks:
            row = _difference(comparisons, name, mask)
            line[f"{mask} Δ PSNR vs FedAvg"] = (
                format_interval(row["difference"], row["ci_low"], row["ci_high"]) if row else "–"
            )
        table.append(line)
    lines = [
        "### Privacy: what each private experiment spent and what it cost",
        "",
        "Epsilon spent: the largest cumulative epsilon any site reported (DP-SGD, delta "
        "1e-5) or the server's accountant (central DP), over seeds; unit: what the guarantee "
        "protects (patient: every image of one patient). Δ: held-out PSNR (ranking view) "
        "minus non-private FedAvg's, paired over the same files, dB [95 % CI].",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]
    verdicts = privacy_verdict_rows(comparisons, private)
    if verdicts:
        rows = [
            {
                "goal": row["goal"],
                "mask": row["mask"],
                "best private experiment": row["best"],
                "Δ PSNR (dB) [95 % CI]": format_interval(
                    row["difference"], row["ci_low"], row["ci_high"]
                ),
                "needed": f"{row['needed']:+g}",
                "verdict": row["verdict"],
            }
            for row in verdicts
        ]
        lines += ["#### Verdict: privacy with utility", "", markdown_table(rows, list(rows[0])), ""]
    else:
        lines += ["No privacy goal could be judged: no experiment targets epsilon 8 or 1.", ""]
    return lines


def privacy_utility_figure(
    results: Sequence[Mapping[str, Any]],
    outcomes: Sequence[ExperimentOutcome],
    path: str | Path,
) -> Path | None:
    """Held-out PSNR (ranking view, 95 % interval) of every private experiment against the
    epsilon it spent, one panel per setting, with the best classical method and non-private
    FedAvg as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cardiomm.figures import save_figure

    private = private_experiments(outcomes)
    if not private:
        return None
    masks = list(dict.fromkeys(row["mask"] for row in results))
    figure, axes = plt.subplots(1, len(masks), figsize=(4.4 * len(masks), 3.6), squeeze=False)
    for axis, mask in zip(axes[0], masks, strict=True):
        for number, (name, entry) in enumerate(private.items()):
            row = _held_out(results, name, mask)
            if row is None:
                continue
            error = [[row["psnr"] - row["psnr_ci_low"]], [row["psnr_ci_high"] - row["psnr"]]]
            axis.errorbar(
                max(entry["epsilon"], 1e-3), row["psnr"], yerr=error, fmt="o", capsize=3,
                color=f"C{number}", label=name,
            )  # fmt: skip
        for reference, style in (("best-classical", ":"), (BASELINE, "--")):
            row = _held_out(results, reference, mask)
            if row is not None:
                axis.axhline(row["psnr"], color="black", linestyle=style, label=reference)
        axis.set_xscale("log")
        axis.set_xlabel("epsilon spent (log scale)")
        axis.set_ylabel("held-out PSNR (dB)")
        axis.set_title(mask, fontsize=9)
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save_figure(figure, path, dpi=120)


def _held_out(
    results: Sequence[Mapping[str, Any]], experiment: str, mask: str
) -> Mapping[str, Any] | None:
    return find_result(results, experiment, HELD_OUT, RANKING_VIEW, mask)


def _difference(
    comparisons: Sequence[Mapping[str, Any]], experiment: str, mask: str
) -> Mapping[str, Any] | None:
    for row in comparisons:
        if (
            row["a"] == experiment
            and row["b"] == BASELINE
            and row["mask"] == mask
            and row["metric"] == "psnr"
            and row["view"] == RANKING_VIEW
        ):
            return row
    return None
