"""The held-out centres per vendor: does vendor-aware aggregation keep a minority vendor from
being drowned by the majority?

With ``study.per_vendor``, each held-out vendor's files are scored on their own: every
experiment's mean held-out PSNR per vendor with its 95 % interval (vendor_results.csv), and
every comparison of the study per vendor, paired on that vendor's files and seeds
(vendor_comparisons.csv). A vendor's *role* comes from the internal sites' training images:
``majority`` (the most), ``minority`` (the fewest), ``other``, or ``unseen`` (no internal site
of that vendor). The verdict judges every experiment compared against FedAvg: at least
0.5 dB above FedAvg on the held-out minority vendor with an interval above zero, and at most
0.2 dB below it on the majority vendor, at each undersampling setting (ranking view).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulations.report_tables import markdown_table
from simulations.study.outcome import DIFFERENCE_COLUMNS
from simulations.study.results import (
    ALL_CENTRES,
    HELD_OUT,
    MET,
    MET_ON_MEAN,
    MISSED,
    RANKING_VIEW,
    Comparison,
    comparison_rows,
    first_row,
    result_rows,
)
from simulations.study.tables import format_interval, format_p_value

BASELINE = "fedavg"
MAJORITY, MINORITY, OTHER, UNSEEN = "majority", "minority", "other", "unseen"
# The goals (issue 18): gain on the held-out minority vendor, largest loss on the majority.
MINORITY_GAIN_DB = 0.5
MAJORITY_LOSS_DB = 0.2

VENDOR_RESULTS_FILE = "vendor_results.csv"
VENDOR_COMPARISONS_FILE = "vendor_comparisons.csv"
VENDOR_RESULT_COLUMNS = (
    "fold",
    "experiment",
    "kind",
    "vendor",
    "role",
    "training_share",  # the vendor's share of the internal sites' training images
    "view",
    "mask",
    "centres",
    "seeds",
    "files",
    "images",
    "psnr",
    "psnr_ci_low",
    "psnr_ci_high",
    "ssim",
    "ssim_ci_low",
    "ssim_ci_high",
)
VENDOR_COMPARISON_COLUMNS = (
    "fold",
    "comparison",
    "a",
    "b",
    "vendor",
    "role",
    "view",
    "mask",
    "metric",
    *DIFFERENCE_COLUMNS,
)


def vendor_training_images(manifest: Mapping[str, Any]) -> dict[str, int]:
    """Training images per vendor over the manifest's internal sites."""
    images: dict[str, int] = {}
    for site in manifest["sites"]:
        if site.get("held_out"):
            continue
        vendor = str(site["vendor"])
        images[vendor] = images.get(vendor, 0) + int(site["split_images"].get("train", 0))
    return images


def vendor_roles(training_images: Mapping[str, int], vendors: Sequence[str]) -> dict[str, str]:
    """Each of ``vendors``' role by the internal training images (see the module docstring);
    with one training vendor it is the majority."""
    trained = {vendor: count for vendor, count in training_images.items() if count > 0}
    roles = {}
    for vendor in vendors:
        if vendor not in trained:
            roles[vendor] = UNSEEN
        elif trained[vendor] == max(trained.values()):
            roles[vendor] = MAJORITY
        elif trained[vendor] == min(trained.values()):
            roles[vendor] = MINORITY
        else:
            roles[vendor] = OTHER
    return roles


def vendor_rows(
    file_rows: Sequence[Mapping[str, Any]],
    fold: str,
    comparisons: Sequence[Comparison],
    training_images: Mapping[str, int],
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(vendor_results.csv rows, vendor_comparisons.csv rows) of one fold's held-out
    centres with full metadata."""
    held_out = [
        row
        for row in file_rows
        if row["fold"] == fold and row["split"] == HELD_OUT and row["metadata"] == "full"
    ]
    vendors = sorted({str(row["vendor"]) for row in held_out})
    roles = vendor_roles(training_images, vendors)
    total = sum(training_images.values())
    results, differences = [], []
    for vendor in vendors:
        rows = [row for row in held_out if row["vendor"] == vendor]
        labels = {
            "vendor": vendor,
            "role": roles[vendor],
        }
        share = training_images.get(vendor, 0) / total if total else 0.0
        centres = len({row["centre"] for row in rows})
        for line in result_rows(rows, fold):
            if line["centre"] != ALL_CENTRES:
                continue
            results.append(
                {
                    **{key: line[key] for key in VENDOR_RESULT_COLUMNS if key in line},
                    **labels,
                    "training_share": share,
                    "centres": centres,
                }
            )
        for line in comparison_rows(rows, fold, comparisons):
            labelled = {**line, **labels}
            differences.append({key: labelled[key] for key in VENDOR_COMPARISON_COLUMNS})
    return results, differences


def vendor_verdict_rows(differences: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per experiment compared against FedAvg and setting: its paired held-out PSNR
    difference on the minority and on the majority vendor, and the verdict (module
    docstring); met on the mean only when the means clear both bars but the minority
    interval reaches zero."""
    psnr = [
        row
        for row in differences
        if row["b"] == BASELINE and row["metric"] == "psnr" and row["view"] == RANKING_VIEW
    ]
    verdicts = []
    for experiment in dict.fromkeys(row["a"] for row in psnr):
        for mask in dict.fromkeys(row["mask"] for row in psnr if row["a"] == experiment):
            by_role = {
                row["role"]: row for row in psnr if row["a"] == experiment and row["mask"] == mask
            }
            minority, majority = by_role.get(MINORITY), by_role.get(MAJORITY)
            if minority is None or majority is None:
                continue
            means_clear = (
                minority["difference"] >= MINORITY_GAIN_DB
                and majority["difference"] >= -MAJORITY_LOSS_DB
            )
            if means_clear and minority["ci_low"] > 0:
                status = MET
            elif means_clear:
                status = MET_ON_MEAN
            else:
                status = MISSED
            verdicts.append(
                {
                    "experiment": experiment,
                    "mask": mask,
                    "minority": minority,
                    "majority": majority,
                    "verdict": status,
                }
            )
    return verdicts


def vendor_section(
    results: Sequence[Mapping[str, Any]], differences: Sequence[Mapping[str, Any]]
) -> list[str]:
    """The markdown lines of the per-vendor section (none without per-vendor rows)."""
    ranking = [row for row in results if row["view"] == RANKING_VIEW]
    if not ranking:
        return []
    vendors = list(dict.fromkeys((row["vendor"], row["role"]) for row in ranking))
    shares = {row["vendor"]: row["training_share"] for row in ranking}
    table = _vendor_psnr_table(ranking, vendors)
    described = ", ".join(
        f"{vendor} {role} ({100 * shares[vendor]:.0f} % of the training images)"
        for vendor, role in vendors
    )
    lines = [
        "### Held-out centres per vendor",
        "",
        f"Held-out vendors: {described}. Held-out PSNR (dB, ranking view) on each vendor's "
        "files, mean [95 % CI] over training seeds and files.",
        "",
        markdown_table(table, list(table[0])),
        "",
    ]
    return lines + _vendor_differences_lines(differences) + _vendor_verdict_lines(differences)


def _vendor_psnr_table(
    ranking: Sequence[Mapping[str, Any]], vendors: Sequence[tuple[str, str]]
) -> list[dict[str, Any]]:
    """One row per experiment and mask: the held-out PSNR [95 % CI] per (vendor, role)."""
    table = []
    for experiment in dict.fromkeys(row["experiment"] for row in ranking):
        for mask in dict.fromkeys(row["mask"] for row in ranking):
            line: dict[str, Any] = {"experiment": experiment, "mask": mask}
            for vendor, role in vendors:
                row = _find(ranking, experiment, vendor, mask)
                line[f"{vendor} ({role})"] = (
                    format_interval(row["psnr"], row["psnr_ci_low"], row["psnr_ci_high"])
                    if row
                    else "–"
                )
            table.append(line)
    return table


def _vendor_differences_lines(differences: Sequence[Mapping[str, Any]]) -> list[str]:
    """The table of paired PSNR differences per vendor (none without such rows)."""
    psnr = [row for row in differences if row["metric"] == "psnr" and row["view"] == RANKING_VIEW]
    if not psnr:
        return []
    rows = [
        {
            "comparison": row["comparison"],
            "vendor": f"{row['vendor']} ({row['role']})",
            "mask": row["mask"],
            "Δ PSNR (dB) [95 % CI]": format_interval(
                row["difference"], row["ci_low"], row["ci_high"]
            ),
            "p": format_p_value(row["p_value"]),
            "files": row["files"],
        }
        for row in psnr
    ]
    return [
        "Paired differences per vendor (A − B on the same files and seeds):",
        "",
        markdown_table(rows, list(rows[0])),
        "",
    ]


def _vendor_verdict_lines(differences: Sequence[Mapping[str, Any]]) -> list[str]:
    """The vendor-skew verdict table, or the sentence saying why there is none."""
    verdicts = vendor_verdict_rows(differences)
    if not verdicts:
        return [
            "No vendor-skew verdict: the held-out centres lack a minority or a majority "
            "vendor, or no experiment was compared against FedAvg.",
            "",
        ]
    rows = [
        {
            "experiment": row["experiment"],
            "mask": row["mask"],
            "minority Δ vs FedAvg": format_interval(
                row["minority"]["difference"],
                row["minority"]["ci_low"],
                row["minority"]["ci_high"],
            ),
            "p": format_p_value(row["minority"]["p_value"]),
            "majority Δ vs FedAvg": format_interval(
                row["majority"]["difference"],
                row["majority"]["ci_low"],
                row["majority"]["ci_high"],
            ),
            "verdict": row["verdict"],
        }
        for row in verdicts
    ]
    return [
        "#### Verdict: vendor-aware aggregation under vendor skew",
        "",
        f"Goal: at least {MINORITY_GAIN_DB:g} dB above FedAvg on the held-out minority "
        f"vendor with a 95 % interval above zero, and at most {MAJORITY_LOSS_DB:g} dB "
        "below it on the majority vendor (means).",
        "",
        markdown_table(rows, list(rows[0])),
        "",
    ]


def vendor_figure(results: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Held-out PSNR per vendor (ranking view, 95 % intervals): one panel per setting, one
    group of bars per held-out vendor, one bar per experiment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cardiomm.figures import save_figure

    ranking = [row for row in results if row["view"] == RANKING_VIEW]
    if not ranking:
        return None
    masks = list(dict.fromkeys(row["mask"] for row in ranking))
    vendors = list(dict.fromkeys((row["vendor"], row["role"]) for row in ranking))
    experiments = list(dict.fromkeys(row["experiment"] for row in ranking))
    width = 0.8 / len(experiments)
    figure, axes = plt.subplots(1, len(masks), figsize=(4.6 * len(masks), 3.8), squeeze=False)
    for axis, mask in zip(axes[0], masks, strict=True):
        for number, experiment in enumerate(experiments):
            for position, (vendor, _) in enumerate(vendors):
                row = _find(ranking, experiment, vendor, mask)
                if row is None:
                    continue
                axis.bar(
                    position + (number - (len(experiments) - 1) / 2) * width,
                    row["psnr"],
                    width,
                    yerr=[[row["psnr"] - row["psnr_ci_low"]], [row["psnr_ci_high"] - row["psnr"]]],
                    capsize=2,
                    color=f"C{number}",
                    label=experiment if position == 0 else None,
                )
        axis.set_xticks(range(len(vendors)))
        axis.set_xticklabels([f"{vendor}\n({role})" for vendor, role in vendors], fontsize=8)
        low = min(row["psnr_ci_low"] for row in ranking if row["mask"] == mask)
        high = max(row["psnr_ci_high"] for row in ranking if row["mask"] == mask)
        axis.set_ylim(low - 1.0, high + 0.5)
        axis.set_ylabel("held-out PSNR (dB)")
        axis.set_title(mask, fontsize=9)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    return save_figure(figure, path, dpi=120)


def _find(
    rows: Sequence[Mapping[str, Any]], experiment: str, vendor: str, mask: str
) -> Mapping[str, Any] | None:
    return first_row(rows, experiment=experiment, vendor=vendor, mask=mask)
