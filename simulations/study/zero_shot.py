"""What the evaluation-only sites reported: the held-out centres scoring each federation's
global model themselves, through the ClientApp's ``role=evaluate`` path (client/), as they
would in a deployment.

The rows come from the federations' ``history.json`` (the rounds' ``zero-shot`` records):
one per experiment, seed, round, site and group, the group ``all`` being the site's overall
score. A site returns only means (its per-image scores stay with it), so these rows carry
no interval; the harness's evaluation of the same final checkpoints, with intervals, is in
the score tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from federation.protocol import (
    BREAKDOWN_METRICS,
    NUM_EXAMPLES,
)
from simulations.report_tables import markdown_table
from simulations.study.outcome import ExperimentOutcome
from simulations.study.tables import load_history

ZERO_SHOT_FILE = "zero_shot.csv"
ZERO_SHOT_COLUMNS = (
    "fold",
    "experiment",
    "seed",
    "round",
    "site",
    "group",
    "images",
    "psnr",
    "ssim",
    "nmse",
)
OVERALL = "all"
_TABLE_COLUMNS = ("experiment", "seed", "site", "round", "images", "psnr", "ssim")
_DIGITS = {"psnr": 2, "ssim": 4}


def zero_shot_rows(outcomes: Sequence[ExperimentOutcome]) -> list[dict[str, Any]]:
    """:data:`ZERO_SHOT_COLUMNS` rows of every federated outcome's history."""
    rows = []
    for outcome in outcomes:
        if outcome.kind != "federated":
            continue
        for record in load_history(outcome.history) or []:
            for site, scores in record.zero_shot.items():
                base = {
                    "fold": outcome.fold,
                    "experiment": outcome.experiment,
                    "seed": outcome.seed,
                    "round": record.round,
                    "site": site,
                }
                rows.append({**base, **_overall(scores)})
                rows += [{**base, **group} for group in _groups(scores)]
    return rows


def _overall(scores: Mapping[str, float]) -> dict[str, Any]:
    return {
        "group": OVERALL,
        "images": scores.get(NUM_EXAMPLES, math.nan),
        **{metric: scores.get(metric, math.nan) for metric in ("psnr", "ssim", "nmse")},
    }


def _groups(scores: Mapping[str, float]) -> list[dict[str, Any]]:
    names = sorted({key.split("/", 1)[1] for key in scores if "/" in key})
    return [
        {
            "group": name,
            **{metric: scores.get(f"{metric}/{name}", math.nan) for metric in BREAKDOWN_METRICS},
        }
        for name in names
    ]


def zero_shot_section(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The last round's overall scores of every held-out site, per experiment and seed."""
    if not rows:
        return []
    last: dict[tuple, Mapping[str, Any]] = {}
    for row in rows:
        if row["group"] != OVERALL:
            continue
        key = (row["experiment"], row["seed"], row["site"])
        if key not in last or row["round"] > last[key]["round"]:
            last[key] = row
    return [
        "### Zero-shot scores reported by the held-out sites",
        "",
        "Each held-out centre took part in the federations as an evaluation-only site "
        "(`role=evaluate`): it never trained, and scored the global model on all of its "
        "images with the fixed evaluation masks, as a deployed evaluation site does; the "
        "server never read its k-space. Below, each site's overall mean at the last round "
        "it scored (every round, and each group of modality, view and setting, are in "
        f"`{ZERO_SHOT_FILE}`). A site sends means only, so these carry no interval; the "
        "tables above score the same final models with intervals, on the ranking images "
        "of each setting.",
        "",
        markdown_table(
            [{**row, "images": _count(row["images"])} for row in last.values()],
            list(_TABLE_COLUMNS),
            _DIGITS,
        ),
        "",
    ]


def _count(value: float) -> int | str:
    return int(value) if math.isfinite(value) else "–"
