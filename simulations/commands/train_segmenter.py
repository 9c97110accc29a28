"""``cardiomm train-segmenter``: the cardiac segmenter of the clinical check, trained on the
internal centres' fully sampled references and scored on the held-out centres'."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from cardiomm.segmentation.training import SegmenterRun

NAME = "train-segmenter"
HELP = (
    "Train the MONAI U-Net segmenter (LV blood, LV myocardium, RV blood) on the internal "
    "centres' fully sampled cine short-axis references and report its Dice on the held-out "
    "centres'; Hydra overrides choose the data, e.g. data=synthetic data.synthetic_preset=small."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", type=Path, required=True, help="folder for the checkpoints")
    parser.add_argument("--size", default="default", help="tiny | default (network width)")
    # Defaults (None): SegmenterSettings's, read when the command runs (torch loads late).
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (batches)")
    parser.add_argument("--learning-rate", type=float, default=None)
    parser.add_argument(
        "--checkpoint-every", type=int, default=0, help="also keep step-NNNNNN.pt (0: final only)"
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=True, help="progress bar"
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides of configs/config.yaml (data=..., seed=...)"
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from cardiomm.cohort.data_root import load_partition
    from cardiomm.config import load_config
    from cardiomm.progress import make_console
    from cardiomm.segmentation.reference_slices import reference_slices
    from cardiomm.segmentation.training import SegmenterSettings, train_segmenter

    if args.steps is None:
        args.steps = SegmenterSettings.steps
    if args.learning_rate is None:
        args.learning_rate = SegmenterSettings.learning_rate
    if args.steps < 1:
        print(f"cardiomm {NAME}: error: --steps must be >= 1", file=sys.stderr)
        return 2
    config = load_config(args.overrides)
    manifest = load_partition(config.data, int(config.seed), show_progress=args.progress)
    training, validation, held_out = _fold_files(manifest)
    if not held_out:
        print(
            f"cardiomm {NAME}: error: no held-out centres to score on: name them "
            "(data.hold_out=[Center005]) or draw them (data.hold_out_count=2)",
            file=sys.stderr,
        )
        return 2
    train_pairs = reference_slices(training)
    if not train_pairs:
        print(
            f"cardiomm {NAME}: error: no labelled cine short-axis file among the internal "
            f"centres' {len(training)} training files",
            file=sys.stderr,
        )
        return 1
    settings = SegmenterSettings(
        size=args.size,
        steps=args.steps,
        learning_rate=args.learning_rate,
        seed=int(config.seed),
        checkpoint_every=args.checkpoint_every,
    )
    result = train_segmenter(train_pairs, settings, args.output, show_progress=args.progress)
    summary, validation_dice, dice = _scored_summary(result, manifest, validation, held_out)
    (args.output / "segmenter_metrics.json").write_text(json.dumps(summary, indent=2))
    console = make_console()
    console.print(_dice_table(summary["held_out_centres"], validation_dice, dice))
    console.print(
        f"{result.images} training images, {args.steps} steps in {result.seconds:.0f} s; "
        f"checkpoint {result.checkpoint}"
    )
    return 0


def _fold_files(manifest: dict) -> tuple[list[Path], list[Path], list[Path]]:
    """The internal centres' training and validation files and the held-out centres' files."""
    from cardiomm.cohort.manifest import held_out_sites, internal_sites, site_files

    training, validation = (
        [path for site in internal_sites(manifest) for path in site_files(manifest, site, split)]
        for split in ("train", "val")
    )
    held_out = [
        path for site in held_out_sites(manifest) for path in site_files(manifest, site, None)
    ]
    return training, validation, held_out


def _scored_summary(
    result: SegmenterRun, manifest: dict, validation: list[Path], held_out: list[Path]
) -> tuple[dict[str, Any], dict[str, float], dict[str, float]]:
    """The trained segmenter's summary (segmenter_metrics.json), its Dice per class on the
    internal validation files, and on the held-out centres'."""
    from cardiomm.cohort.manifest import held_out_sites
    from cardiomm.segmentation.network import load_segmenter
    from cardiomm.segmentation.reference_slices import reference_slices
    from cardiomm.segmentation.training import dice_per_class, json_numbers

    network, size = load_segmenter(result.checkpoint)
    # Settings are chosen on the internal validation patients, never on the held-out centres.
    validation_dice = dice_per_class(network, size, reference_slices(validation))
    dice = dice_per_class(network, size, reference_slices(held_out))
    summary = {
        "checkpoint": str(result.checkpoint),
        "training_images": result.images,
        "held_out_centres": [site["site"] for site in held_out_sites(manifest)],
        "final_loss": result.final_loss,
        "seconds": result.seconds,
        # null where no reference image has the class (JSON has no NaN)
        "validation_dice": json_numbers(validation_dice),
        "held_out_dice": json_numbers(dice),
    }
    return summary, validation_dice, dice


def _dice_table(
    centres: list[str], validation_dice: dict[str, float], dice: dict[str, float]
) -> Table:
    """The console table of Dice per class, internal validation beside the held-out centres."""
    from rich.table import Table

    table = Table(title=f"segmenter Dice (held-out centres: {', '.join(centres)})")
    table.add_column("class")
    table.add_column("internal validation", justify="right")
    table.add_column("held-out centres", justify="right")
    for name, value in dice.items():
        table.add_row(name, f"{validation_dice[name]:.3f}", f"{value:.3f}")
    return table
