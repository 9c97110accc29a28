"""The cross-site evaluation matrix: every model of a run scored at every site that allows it.

After the last round (``federation.cross_site.enabled``) the server sends each model to each
connected site, training and evaluation-only, in an evaluate message naming the model
(``cross-site-model``): a training site scores it on its test split, an evaluation-only site
on all of its images, both with the fixed, seeded evaluation masks, and each replies with
metrics only (overall and per modality, view and setting). A site whose own file sets
``sharing.cross_site_evaluation: false`` declines, and its column says so.

The models: the final global model (``global``); the round with the best mean validation
PSNR of the training sites (``global-best-val``) when that is not the last; each vendor's
personalised variant (``global+<vendor>``); and any checkpoint the coordinator names in
``federation.cross_site.models`` (``{name: path}``, e.g. each site's local-only model).

Written to the run's folder: ``cross_site.csv`` (one row per model and site) and
``cross_site.png`` (models x sites heatmaps of PSNR and SSIM).
"""

from __future__ import annotations

import csv
import dataclasses
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from flwr.app import ArrayRecord
from flwr.serverapp import Grid

from cardiomm.model.checkpoint import read_checkpoint
from federation.protocol import (
    CROSS_SITE_DECLINED,
    CROSS_SITE_MODEL,
    NUM_EXAMPLES,
    ROLE_EVALUATE,
    ROLE_TRAIN,
    SERVER_ROUND,
)
from federation.records import RoundRecord
from federation.reply_checks import CROSS_SITE
from server.checkpoints import load_round_checkpoint, round_path
from server.settings import FederationSettings
from server.site_roles import SiteRoles, ask_to_evaluate
from strategies.vendor_personalisation import VendorPersonalisation

logger = logging.getLogger(__name__)

CROSS_SITE_FILE = "cross_site.csv"
CROSS_SITE_FIGURE = "cross_site.png"
COLUMNS = ("model", "site", "role", "status", "images", "psnr", "ssim", "nmse", "reason")
GLOBAL, BEST = "global", "global-best-val"
# A named model's row label (also a key of the Hydra override that carries it).
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")

AfterRounds = Callable[[Any, Sequence[RoundRecord], Any], None]
"""A step after the last round: (the global model, the history, the run's tracker)."""


@dataclasses.dataclass(frozen=True)
class CrossSiteModel:
    """One row of the matrix: a name and the weights every site is sent."""

    name: str
    state: Mapping[str, torch.Tensor]


def run_models(
    final: Mapping[str, torch.Tensor],
    history: Sequence[RoundRecord],
    output_dir: Path,
    vendor_parts: Mapping[str, Mapping[str, torch.Tensor]] | None,
    extra: Mapping[str, str],
) -> list[CrossSiteModel]:
    """The models of the module docstring, in that order.

    Raises:
        ValueError: a named checkpoint that cannot be scored (:func:`named_model_state`).
    """
    models = [CrossSiteModel(GLOBAL, final)]
    best = best_validation_round(history)
    if best is not None and history and best != history[-1].round:
        state = load_round_checkpoint(round_path(output_dir, best)).arrays
        models.append(CrossSiteModel(f"{BEST} (round {best})", state))
    for vendor, part in sorted((vendor_parts or {}).items()):
        models.append(CrossSiteModel(f"{GLOBAL}+{vendor}", {**final, **part}))
    for name, path in extra.items():
        label = f"federation.cross_site.models.{name}"
        models.append(CrossSiteModel(str(name), named_model_state(label, name, path, final)))
    return models


def named_model_state(
    label: str, name: str, path: str | Path, reference: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """The weights of the checkpoint at ``path``, a model of the matrix named ``name``,
    checked against the run's model ``reference`` (its state dict).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: one line starting with ``label`` (how the user named it): a name that
            cannot label a row, a file that is not a readable CardioMM checkpoint, weights of
            another model (keys or shapes) or with NaN / Inf.
    """
    if not MODEL_NAME.match(str(name)) or str(name).startswith(GLOBAL):
        raise ValueError(
            f"{label}: {name!r} cannot name a model of the matrix: use 1-64 letters, digits, "
            "'.', '_', '+' or '-', not starting with 'global' (the run's own models)"
        )
    try:
        content = read_checkpoint(Path(path))
    except FileNotFoundError as error:
        raise FileNotFoundError(f"{label}: {error}") from error
    except ValueError as error:
        raise ValueError(f"{label}: {error}") from error
    state = content.get("state_dict")
    if not isinstance(state, Mapping) or not all(
        isinstance(value, torch.Tensor) for value in state.values()
    ):
        raise ValueError(f"{label}: {path} holds no state dict of tensors")
    problem = _weights_problem(state, reference)
    if problem:
        raise ValueError(f"{label}: {path} holds another model than this run ({problem})")
    broken = next(
        (
            key
            for key, value in state.items()
            if value.is_floating_point() and not bool(torch.isfinite(value).all())
        ),
        None,
    )
    if broken is not None:
        raise ValueError(f"{label}: {path} has NaN or Inf weights ({broken})")
    return dict(state)


def _weights_problem(
    state: Mapping[str, torch.Tensor], reference: Mapping[str, torch.Tensor]
) -> str | None:
    """What makes ``state`` another model than ``reference`` (keys, shapes), or None."""
    missing = sorted(set(reference) - set(state))
    unexpected = sorted(set(state) - set(reference))
    if missing or unexpected:
        parts = [
            f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
            for what, keys in (("missing", missing), ("unexpected", unexpected))
            if keys
        ]
        return "; ".join(parts)
    for key, value in reference.items():
        if tuple(state[key].shape) != tuple(value.shape):
            return f"{key} is {tuple(state[key].shape)}, this run's {tuple(value.shape)}"
    return None


def best_validation_round(history: Sequence[RoundRecord]) -> int | None:
    """The round whose global model scored the best mean validation PSNR at the training
    sites (chosen on internal validation only), or None without such scores."""
    scored = [
        (record.evaluate["psnr"], -record.round, record.round)
        for record in history
        if isinstance(record.evaluate.get("psnr"), float) and math.isfinite(record.evaluate["psnr"])
    ]
    return max(scored)[2] if scored else None


def evaluate_matrix(
    models: Sequence[CrossSiteModel],
    grid: Grid,
    roles: SiteRoles,
    server_round: int,
    timeout: float | None,
) -> list[dict[str, Any]]:
    """Send every model to every connected site with a known role; one row per model and
    site (:data:`COLUMNS`), ``status`` ok, no images (a site without test patients), declined
    or failed."""
    nodes = roles.connected(grid, ROLE_TRAIN, ROLE_EVALUATE)
    rows: list[dict[str, Any]] = []
    for model in models:
        config = {SERVER_ROUND: server_round, CROSS_SITE_MODEL: model.name}
        arrays = ArrayRecord(dict(model.state))
        replies = ask_to_evaluate(CROSS_SITE, nodes, arrays, config, grid, roles.gate, timeout)
        rows += _rows(model.name, replies, roles)
    return rows


def _rows(model: str, replies: Any, roles: SiteRoles) -> list[dict[str, Any]]:
    site_of_node = roles.gate.identities.site_of_node
    rows = []
    for site, entry in sorted(replies.sites.items()):
        metrics = entry["metrics"]
        rows.append(
            {
                "model": model,
                "site": site,
                "role": roles.role_of_node.get(entry["node-id"], ""),
                "status": "ok" if metrics.get(NUM_EXAMPLES, 0.0) > 0 else "no images",
                "images": metrics.get(NUM_EXAMPLES, math.nan),
                **{metric: metrics.get(metric, math.nan) for metric in ("psnr", "ssim", "nmse")},
                "reason": "",
            }
        )
    for failure in [*replies.errors, *replies.refused]:
        node = int(failure["node-id"])
        declined = failure.get("code") == CROSS_SITE_DECLINED
        rows.append(
            {
                "model": model,
                "site": site_of_node.get(node, f"node-{node}"),
                "role": roles.role_of_node.get(node, ""),
                "status": "declined" if declined else "failed",
                "images": math.nan,
                "psnr": math.nan,
                "ssim": math.nan,
                "nmse": math.nan,
                "reason": failure["reason"],
            }
        )
    return rows


def write_matrix(rows: Sequence[Mapping[str, Any]], output_dir: Path) -> list[Path]:
    """``cross_site.csv`` and, when any cell has a score, ``cross_site.png``."""
    path = output_dir / CROSS_SITE_FILE
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    written = [path]
    figure = matrix_figure(rows, output_dir / CROSS_SITE_FIGURE)
    if figure is not None:
        written.append(figure)
    return written


def matrix_figure(rows: Sequence[Mapping[str, Any]], path: Path) -> Path | None:
    """Heatmaps, models x sites: PSNR and SSIM; a cell without a score shows its status."""
    models = list(dict.fromkeys(row["model"] for row in rows))
    sites = list(dict.fromkeys(row["site"] for row in rows))
    if not any(row["status"] == "ok" for row in rows):
        return None
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    colour_map = colormaps["viridis"].with_extremes(bad="lightgrey")  # no score: grey

    cell = {(row["model"], row["site"]): row for row in rows}
    figure = Figure(figsize=(2.0 + 1.3 * len(sites) * 2, 1.2 + 0.45 * len(models)), dpi=110)
    for index, (metric, digits) in enumerate((("psnr", 2), ("ssim", 3))):
        axis = figure.add_subplot(1, 2, index + 1)
        values = np.array(
            [[float(cell.get((m, s), {}).get(metric, math.nan)) for s in sites] for m in models]
        )
        image = axis.imshow(np.ma.masked_invalid(values), cmap=colour_map, aspect="auto")
        figure.colorbar(image, ax=axis, shrink=0.8)
        for row_index, model in enumerate(models):
            for column_index, site in enumerate(sites):
                value = values[row_index, column_index]
                status = cell.get((model, site), {}).get("status", "")
                text = f"{value:.{digits}f}" if math.isfinite(value) else status or "–"
                axis.text(column_index, row_index, text, ha="center", va="center", fontsize=7)
        axis.set_xticks(range(len(sites)), sites, rotation=30, ha="right", fontsize=8)
        axis.set_yticks(range(len(models)), models, fontsize=8)
        axis.set_title(f"{metric.upper()} at each site (its test split)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path)
    return path


def matrix_metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """MLflow metrics ``cross-site/<model>/<site>/<metric>`` of the scored cells."""
    values = {}
    for row in rows:
        if row["status"] != "ok":
            continue
        model = row["model"].replace(" ", "_").replace("(", "").replace(")", "")
        for metric in ("psnr", "ssim", "nmse"):
            if math.isfinite(row[metric]):
                values[f"cross-site/{model}/{row['site']}/{metric}"] = float(row[metric])
    return values


def cross_site_phase(
    settings: FederationSettings,
    grid: Grid,
    roles: SiteRoles,
    personalisation: VendorPersonalisation | None = None,
    model_state: Mapping[str, torch.Tensor] | None = None,
) -> AfterRounds | None:
    """The step :func:`server.rounds.run_rounds` takes after the last round: the matrix of
    this module's docstring, written beside the run and logged to its tracker (None when
    ``federation.cross_site.enabled`` is off).

    With ``model_state`` (the run's model), every named checkpoint is checked now, before
    any round, so that a bad one stops the run at its start rather than after training.
    """
    if not settings.cross_site:
        return None
    if model_state is not None:
        for name, path in settings.cross_site_models.items():
            named_model_state(f"federation.cross_site.models.{name}", name, path, model_state)

    def evaluate(model: Any, history: Sequence[RoundRecord], tracker: Any) -> None:
        if not history:
            return
        vendor_parts = personalisation.vendor_state_dicts() if personalisation else None
        models = run_models(
            model.state_dict(),
            history,
            settings.output_dir,
            vendor_parts,
            settings.cross_site_models,
        )
        rows = evaluate_matrix(models, grid, roles, history[-1].round, settings.timeout)
        written = write_matrix(rows, settings.output_dir)
        tracker.log_cross_site(matrix_metrics(rows), written)
        scored = sum(row["status"] == "ok" for row in rows)
        logger.info(
            "cross-site evaluation: %d model(s) x %d site(s), %d cell(s) scored, in %s",
            len(models),
            len({row["site"] for row in rows}),
            scored,
            written[0],
        )

    return evaluate
