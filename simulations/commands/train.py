"""``cardiomm train``: centralised or single-site training from the Hydra config."""

from __future__ import annotations

import argparse

NAME = "train"
HELP = (
    "Train CardioMM (or dcunet) on every internal site's data or on named sites; "
    "Hydra overrides, e.g. model=small train.max_steps=500 data.sites=[Center001]."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides of configs/config.yaml (data=..., model=..., text=..., train.*)",
    )


def run(args: argparse.Namespace) -> int:
    import sys

    from cardiomm.config import load_config
    from cardiomm.progress import make_console
    from simulations.training import TrainingFailedError, run_training

    config = load_config(args.overrides)
    console = make_console()
    console.print(
        f"training {config.method} ({config.model.name} model), output in {config.output_dir}"
    )
    try:
        summary = run_training(config)
    except TrainingFailedError as error:
        print(f"cardiomm {NAME}: error: {error}", file=sys.stderr)
        return 1
    metrics = summary["metrics"]
    console.print(
        f"{summary['train_images']} training slices from {summary['sites']}; "
        f"final loss {metrics['final-loss']:.4f} in {metrics['train-seconds']:.0f} s"
    )
    if "val-psnr" in metrics:
        console.print(
            f"validation: PSNR {metrics['val-psnr']:.2f} dB, SSIM {metrics['val-ssim']:.4f}, "
            f"NMSE {metrics['val-nmse']:.4f}"
        )
    for bad in summary["skipped_files"]:
        console.print(f"[yellow]skipped[/yellow] {bad['path']}: {bad['reason']}")
    console.print(f"checkpoint: {summary['checkpoint']}")
    return 0
