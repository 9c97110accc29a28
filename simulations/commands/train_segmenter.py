"""``cardiomm train-segmenter``: the cardiac segmenter of the clinical check, trained on the
internal centres' fully sampled references and scored on the held-out centres'."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

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

    from rich.table import Table

    from cardiomm.cohort.data_root import load_partition
    from cardiomm.cohort.manifest import held_out_sites, internal_sites, site_files
    from cardiomm.config import load_config
    from cardiomm.progress import make_console
    from cardiomm.segmentation.network import load_segmenter
    from cardiomm.segmentation.reference_slices import reference_slices
    from cardiomm.segmentation.training import (
        SegmenterSettings,
        dice_per_class,
        json_numbers,
        train_segmenter,
    )

    if args.steps is None:
        args.steps = SegmenterSettings.steps
    if args.learning_rate is None:
        args.learning_rate = SegmenterSettings.learning_rate
    if args.steps < 1:
        print(f"cardiomm {NAME}: error: --steps must be >= 1", file=sys.stderr)
        return 2
    config = load_config(args.overrides)
    manifest = load_partition(config.data, int(config.seed), show_progress=args.progress)
    training, validation = (
        [path for site in internal_sites(manifest) for path in site_files(manifest, site, split)]
        for split in ("train", "val")
    )
    held_out = [
        path for site in held_out_sites(manifest) for path in site_files(manifest, site, None)
    ]
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
    (args.output / "segmenter_metrics.json").write_text(json.dumps(summary, indent=2))
    console = make_console()
    centres = ", ".join(summary["held_out_centres"])
    table = Table(title=f"segmenter Dice (held-out centres: {centres})")
    table.add_column("class")
    table.add_column("internal validation", justify="right")
    table.add_column("held-out centres", justify="right")
    for name, value in dice.items():
        table.add_row(name, f"{validation_dice[name]:.3f}", f"{value:.3f}")
    console.print(table)
    console.print(
        f"{result.images} training images, {args.steps} steps in {result.seconds:.0f} s; "
        f"checkpoint {result.checkpoint}"
    )
    return 0
