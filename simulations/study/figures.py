"""The study's figures (PNG, matplotlib's Agg canvas; no pyplot state is touched).

Each function draws what its data allow and returns the file, or None with a logged
warning when there is nothing to draw: a missing piece never stops the report.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cardiomm.metrics import evaluate_image, normalize_percentile, ranking_crop
from cardiomm.recon.preview import DIFFERENCE_GAIN
from federation.records import RoundRecord, finite_series
from simulations.study.outcome import NO_SEED
from simulations.study.scoring import REFERENCES, ExampleImage, path_slug

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

_DPI = 110
# Panels of the example figures per row, so a study with many site models stays readable.
EXAMPLE_COLUMNS = 6
HELD_OUT_PSNR = "held-out/psnr"


def per_centre_psnr_figure(
    scores: Mapping[str, Mapping[str, Mapping[str, float]]],
    held_out: Sequence[str],
    path: str | Path,
) -> Path | None:
    """Grouped bars: centres x experiments, one panel per mask.

    Args:
        scores: {mask: {experiment: {centre: PSNR}}}, centres in the order to show.
        held_out: the held-out centres (labelled as such).
        path: the PNG to write.
    """
    masks = [mask for mask, by_label in scores.items() if any(by_label.values())]
    if not masks:
        logger.warning("no per-centre scores: %s not drawn", Path(path).name)
        return None
    finite = [
        value
        for mask in masks
        for values in scores[mask].values()
        for value in values.values()
        if math.isfinite(value)
    ]
    figure = _figure(len(masks), 1, 5.2, 3.6)
    axes = np.atleast_1d(figure.subplots(1, len(masks), sharey=True))
    # Bars start near the lowest score: differences of a dB or two must stay visible.
    axes[0].set_ylim(min(finite) - 2.0, max(finite) + 1.0)
    for axis, mask in zip(axes, masks, strict=True):
        by_label = {label: values for label, values in scores[mask].items() if values}
        centres = list(dict.fromkeys(c for values in by_label.values() for c in values))
        width = 0.8 / len(by_label)
        for number, (label, values) in enumerate(by_label.items()):
            heights = [values.get(centre, math.nan) for centre in centres]
            offsets = np.arange(len(centres)) - 0.4 + width * (number + 0.5)
            axis.bar(offsets, heights, width, label=label)
        axis.set_xticks(np.arange(len(centres)))
        axis.set_xticklabels(
            [f"{c}\n(held out)" if c in held_out else c for c in centres], fontsize=8
        )
        axis.set_title(mask, fontsize=10)
        axis.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("PSNR (dB)")
    handles, names = axes[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="lower center", ncol=min(len(names), 6), fontsize=8)
    figure.tight_layout(rect=(0, 0.08 + 0.04 * (len(names) // 6), 1, 1))
    return _save(figure, path)


def held_out_psnr_series(history: Sequence[RoundRecord]) -> list[tuple[int, float]]:
    """(round, held-out PSNR): the mean of the evaluation-only sites' own scores where they
    scored, else the server's global evaluation."""
    points = []
    for record in history:
        scores = [site["psnr"] for site in record.zero_shot.values() if "psnr" in site]
        finite = [score for score in scores if math.isfinite(score)]
        if finite:
            points.append((record.round, sum(finite) / len(finite)))
    return points or finite_series(history, "global_scores", HELD_OUT_PSNR)


def convergence_figure(
    histories: Mapping[str, Sequence[RoundRecord]], path: str | Path
) -> Path | None:
    """Held-out PSNR (the held-out sites' own scores, or the server's global evaluation)
    and training loss over rounds.

    Args:
        histories: {experiment: history.json records}; a history without global evaluation
            still gives its loss curve.
        path: the PNG to write.
    """
    psnr = {name: held_out_psnr_series(history) for name, history in histories.items()}
    loss = {name: finite_series(history, "train", "loss") for name, history in histories.items()}
    psnr = {name: points for name, points in psnr.items() if points}
    loss = {name: points for name, points in loss.items() if points}
    if not psnr and not loss:
        logger.warning("no federated history with scores or losses: %s not drawn", Path(path).name)
        return None
    from matplotlib.ticker import MaxNLocator

    figure = _figure(2, 1, 5.0, 3.6)
    psnr_axis, loss_axis = figure.subplots(1, 2)
    for axis, curves, label in (
        (psnr_axis, psnr, "held-out PSNR (dB), global model\n(mean of the held-out sites)"),
        (loss_axis, loss, "training loss (mean over sites)"),
    ):
        for name, points in curves.items():
            rounds, values = zip(*points, strict=True)
            axis.plot(rounds, values, "o-", markersize=3, label=name)
        if curves:
            axis.legend(fontsize=8)
        else:
            axis.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=axis.transAxes)
        axis.set_xlabel("round")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_ylabel(label)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def learning_curve_figure(curves: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Held-out PSNR against the optimiser steps of all sites together, one panel per mask:
    each trained experiment's mean over seeds (the band spans its seeds), the references as
    horizontal lines. An untrained CardioMM returns the zero-filled image (a tested
    property), so every curve starts at zero-filled's score at step 0.

    Args:
        curves: rows of ``curves.csv`` (experiment, seed, steps, mask, psnr).
        path: the PNG to write.
    """
    masks = list(dict.fromkeys(row["mask"] for row in curves))
    trained = [row for row in curves if row["seed"] != NO_SEED]
    if not masks or not trained:
        logger.warning("no learning-curve scores: %s not drawn", Path(path).name)
        return None
    figure = _figure(len(masks), 1, 4.6, 3.6)
    axes = np.atleast_1d(figure.subplots(1, len(masks), sharey=False))
    experiments = list(dict.fromkeys(row["experiment"] for row in trained))
    for axis, mask in zip(axes, masks, strict=True):
        start = [
            float(row["psnr"])
            for row in curves
            if row["experiment"] == REFERENCES[0] and row["mask"] == mask
        ]
        for number, experiment in enumerate(experiments):
            by_step: dict[int, list[float]] = {0: start[:1]} if start else {}
            for row in trained:
                if row["experiment"] == experiment and row["mask"] == mask:
                    by_step.setdefault(int(row["steps"]), []).append(float(row["psnr"]))
            if not by_step:
                continue
            steps = sorted(by_step)
            colour = f"C{number}"
            means = [float(np.mean(by_step[step])) for step in steps]
            axis.plot(steps, means, "o-", markersize=3, color=colour, label=experiment)
            low = [min(by_step[step]) for step in steps]
            high = [max(by_step[step]) for step in steps]
            if any(len(by_step[step]) > 1 for step in steps):
                axis.fill_between(steps, low, high, color=colour, alpha=0.2, linewidth=0)
        for style, reference in zip(("--", ":"), REFERENCES, strict=True):
            values = [
                float(row["psnr"])
                for row in curves
                if row["experiment"] == reference and row["mask"] == mask
            ]
            if values:
                axis.axhline(values[0], color="grey", linestyle=style, label=reference)
        axis.set_title(mask, fontsize=10)
        axis.set_xlabel("optimiser steps, all sites together")
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("held-out PSNR (dB), curve images")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def comparison_figure(comparisons: Sequence[Mapping[str, Any]], path: str | Path) -> Path | None:
    """Paired held-out PSNR differences with their 95 % intervals (ranking view), one row per
    comparison, one marker per mask; the dotted line is no difference.

    Args:
        comparisons: rows of ``comparisons.csv``.
        path: the PNG to write.
    """
    rows = [row for row in comparisons if row["metric"] == "psnr" and row["view"] == "ranking"]
    if not rows:
        logger.warning("no paired comparisons: %s not drawn", Path(path).name)
        return None
    names = list(dict.fromkeys(row["comparison"] for row in rows))
    masks = list(dict.fromkeys(row["mask"] for row in rows))
    figure = _figure(1, 1, 6.4, 0.45 * len(names) * len(masks) + 1.2)
    axis = figure.subplots()
    offsets = np.linspace(-0.25, 0.25, len(masks)) if len(masks) > 1 else [0.0]
    for number, mask in enumerate(masks):
        for position, name in enumerate(names):
            row = next((r for r in rows if r["comparison"] == name and r["mask"] == mask), None)
            if row is None:
                continue
            y = position + offsets[number]
            error = [[row["difference"] - row["ci_low"]], [row["ci_high"] - row["difference"]]]
            axis.errorbar(
                row["difference"],
                y,
                xerr=error,
                fmt="o",
                color=f"C{number}",
                capsize=3,
                label=mask if position == 0 else None,
            )
    axis.axvline(0.0, color="grey", linestyle=":")
    axis.set_yticks(np.arange(len(names)))
    axis.set_yticklabels(names, fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("held-out PSNR difference A - B (dB), 95 % interval")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, path)


def timing_figure(histories: Mapping[str, Sequence[RoundRecord]], path: str | Path) -> Path | None:
    """Per federated experiment, means over rounds: stacked client compute (slowest site's
    training and evaluation) and federation overhead, and the bytes sent to each client."""
    names, stacks, megabytes = [], [], []
    for name, history in histories.items():
        parts = [
            _mean(history, "timing", key)
            for key in ("client-train-seconds-max", "client-eval-seconds-max", "overhead-seconds")
        ]
        traffic = _mean(history, "traffic", "bytes-per-site") / 1e6
        if all(math.isnan(value) for value in [*parts, traffic]):
            continue
        names.append(name)
        stacks.append(parts)
        megabytes.append(traffic)
    if not names:
        logger.warning("no timing or traffic in the histories: %s not drawn", Path(path).name)
        return None
    figure = _figure(2, 1, max(4.0, 0.9 * len(names) + 2.0), 3.8)
    time_axis, traffic_axis = figure.subplots(1, 2)
    positions = np.arange(len(names))
    bottom = np.zeros(len(names))
    for column, label in enumerate(
        ("client training (slowest site)", "client evaluation (slowest site)", "overhead")
    ):
        heights = np.nan_to_num([stack[column] for stack in stacks])
        time_axis.bar(positions, heights, 0.6, bottom=bottom, label=label)
        bottom += heights
    time_axis.set_ylabel("seconds per round (mean)")
    time_axis.legend(fontsize=8)
    traffic_axis.bar(positions, megabytes, 0.6, color="tab:purple")
    traffic_axis.set_ylabel("MB sent per client per round (mean)")
    for axis in (time_axis, traffic_axis):
        axis.set_xticks(positions)
        axis.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    return _save(figure, path)


def example_figures(
    examples: Sequence[ExampleImage], output_dir: str | Path, order: Sequence[str], suffix: str = ""
) -> list[Path]:
    """``examples_<centre><suffix>.png`` for each centre of ``examples``.

    Args:
        examples: every method's reconstruction of the centres' example images.
        output_dir: where the PNGs go.
        order: experiment names in the order to show (others follow).
        suffix: appended to the file stem (the fold, when a study has several).
    """
    by_centre: dict[str, list[ExampleImage]] = {}
    for example in examples:
        by_centre.setdefault(example.centre, []).append(example)
    if not by_centre:
        logger.warning("no example reconstructions saved: example figures not drawn")
    rank = {name: number for number, name in enumerate(order)}
    return [
        example_figure(
            sorted(found, key=lambda e: (rank.get(e.experiment, len(rank)), e.label)),
            Path(output_dir) / f"examples_{path_slug(centre)}{suffix}.png",
        )
        for centre, found in by_centre.items()
    ]


def example_figure(examples: Sequence[ExampleImage], path: str | Path) -> Path:
    """The reference and every method's reconstruction of one image, with |error| maps.

    Every image is divided by its own 99.5th percentile (as the scores are) and shown on
    [0, 1]; every error map on the same [0, 1 / DIFFERENCE_GAIN] scale. Titles give the
    official PSNR / SSIM of that image on the ranked centre crop.
    """
    first = examples[0]
    target = normalize_percentile(first.target)
    panels = [("reference (fully sampled)", target, None)]
    for example in examples:
        shown = normalize_percentile(example.reconstruction)
        scores = evaluate_image(
            ranking_crop(example.target, example.oversampling_removed),
            ranking_crop(example.reconstruction, example.oversampling_removed),
        )
        title = f"{example.label}\n{scores.psnr:.2f} dB, SSIM {scores.ssim:.3f}"
        panels.append((title, shown, np.abs(shown - target)))
    columns = min(EXAMPLE_COLUMNS, len(panels))
    blocks = math.ceil(len(panels) / columns)
    aspect = first.target.shape[0] / first.target.shape[1]
    figure = _figure(columns, 2 * blocks, 2.3, 2.3 * aspect + 0.4, layout="constrained")
    axes = np.asarray(figure.subplots(2 * blocks, columns, squeeze=False))
    for axis in axes.flat:
        axis.set_axis_off()
    error_image = None
    for number, (title, image, error) in enumerate(panels):
        block, column = divmod(number, columns)
        image_axis, error_axis = axes[2 * block, column], axes[2 * block + 1, column]
        image_axis.imshow(image, cmap="gray", vmin=0.0, vmax=1.0)
        image_axis.set_title(title, fontsize=7)
        if error is not None:
            error_image = error_axis.imshow(
                error, cmap="inferno", vmin=0.0, vmax=1.0 / DIFFERENCE_GAIN
            )
            error_axis.set_title("|error|", fontsize=7)
    if error_image is not None:
        # Taken from every panel alike, so images and their error maps stay aligned.
        bar = figure.colorbar(error_image, ax=list(axes.flat), fraction=0.02, shrink=0.6)
        bar.set_label("|image - reference| (own 99.5th percentile = 1)", fontsize=7)
    figure.suptitle(
        f"{first.centre} (held out), {first.mask}: {Path(first.file).name}, "
        f"frame {first.frame}, slice {first.slice_index}",
        fontsize=9,
    )
    return _save(figure, path)


def _mean(history: Sequence[RoundRecord], section: str, key: str) -> float:
    values = [value for _, value in finite_series(history, section, key)]
    return float(np.mean(values)) if values else math.nan


def _figure(
    columns: int, rows: int, panel_width: float, panel_height: float, layout: str | None = None
) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(panel_width * columns, panel_height * rows + 0.6), layout=layout)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=_DPI)
    return path
