"""The report's cross-site section: each chosen federation's matrix of models x sites.

The federations of ``study.cross_site_experiments`` end with the server's cross-site phase
(server/cross_site.py), which writes ``cross_site.csv`` and ``cross_site.png`` into the run's
folder; here they are gathered into the study's ``cross_site.csv`` (fold, experiment and
seed first), the heatmaps copied beside the report, and each matrix laid out as a table of
PSNR / SSIM. A site returns means only, so the cells carry no interval.
"""

from __future__ import annotations

import csv
import logging
import math
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from simulations.report_tables import markdown_table
from simulations.study.outcome import ExperimentOutcome
from simulations.study.scoring import path_slug

logger = logging.getLogger(__name__)

CROSS_SITE_FILE = "cross_site.csv"
CROSS_SITE_FIGURE = "cross_site.png"
CROSS_SITE_COLUMNS = (
    "fold",
    "experiment",
    "seed",
    "model",
    "site",
    "role",
    "status",
    "images",
    "psnr",
    "ssim",
    "nmse",
    "reason",
)


def cross_site_rows(outcomes: Sequence[ExperimentOutcome]) -> list[dict[str, Any]]:
    """:data:`CROSS_SITE_COLUMNS` rows of every federated run that wrote a matrix."""
    rows = []
    for outcome in outcomes:
        path = Path(outcome.run_dir) / CROSS_SITE_FILE
        if outcome.kind != "federated" or not path.is_file():
            continue
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                rows.append(
                    {
                        "fold": outcome.fold,
                        "experiment": outcome.experiment,
                        "seed": outcome.seed,
                        **row,
                        **{key: _number(row[key]) for key in ("images", "psnr", "ssim", "nmse")},
                    }
                )
    return rows


def copy_figures(outcomes: Sequence[ExperimentOutcome], study_dir: Path) -> list[Path]:
    """Each run's heatmap, copied beside the report as ``cross_site_<experiment>_seed-<s>.png``."""
    copied = []
    for outcome in outcomes:
        source = Path(outcome.run_dir) / CROSS_SITE_FIGURE
        if outcome.kind != "federated" or not source.is_file():
            continue
        target = study_dir / (
            f"cross_site_{path_slug(outcome.fold)}_{outcome.experiment}_seed-{outcome.seed}.png"
        )
        shutil.copyfile(source, target)
        copied.append(target)
    return copied


def cross_site_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """One table per federation and seed: models as rows, sites as columns, PSNR / SSIM."""
    if not rows:
        return []
    lines = [
        "### Cross-site evaluation matrix",
        "",
        "After its last round, the federation sent each model to every site, which scored it "
        "on its own test split (a held-out site: on all of its images) with the fixed "
        "evaluation masks and returned means only (PSNR dB / SSIM; no interval). "
        "`global-best-val` is the round with the best mean validation PSNR of the training "
        "sites (internal validation only), shown when it is not the last; `local-<site>` is "
        "that site's local-only model of the same seed. Each site's column compares models "
        "on the same images; columns are not comparable with each other.",
        "",
    ]
    runs = list(dict.fromkeys((row["experiment"], row["seed"]) for row in rows))
    for experiment, seed in runs:
        matrix = [row for row in rows if (row["experiment"], row["seed"]) == (experiment, seed)]
        sites = list(dict.fromkeys(row["site"] for row in matrix))
        table = []
        for model in dict.fromkeys(row["model"] for row in matrix):
            cells = {row["site"]: row for row in matrix if row["model"] == model}
            table.append({"model": model, **{site: _cell(cells.get(site)) for site in sites}})
        roles = {row["site"]: row["role"] for row in matrix}
        header = [f"{site} (held out)" if roles[site] == "evaluate" else site for site in sites]
        renamed = [
            {"model": row["model"], **dict(zip(header, (row[s] for s in sites), strict=True))}
            for row in table
        ]
        lines += [
            f"{experiment}, seed {seed}:",
            "",
            markdown_table(renamed, ["model", *header]),
            "",
        ]
    return lines


def _cell(row: Mapping[str, Any] | None) -> str:
    if row is None:
        return "–"
    if row["status"] != "ok":
        return str(row["status"])
    return f"{row['psnr']:.2f} / {row['ssim']:.3f}"


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan
