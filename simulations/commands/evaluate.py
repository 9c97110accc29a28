"""``cardiomm evaluate``: score checkpoints and baselines with the official metrics."""

from __future__ import annotations

import argparse

NAME = "evaluate"
HELP = (
    "Score trained checkpoints and the classical baselines (zero-filled; sigpy CG-SENSE, "
    "L1-wavelet and k-t sparse CS, tuned on validation files) per centre, vendor, modality "
    "and mask; "
    "Hydra overrides of configs/evaluate.yaml, e.g. checkpoints=[run/checkpoints/final.pt]."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. split=held-out baselines=[kt-sparse]"
    )


def run(args: argparse.Namespace) -> int:
    from cardiomm.config import load_config
    from cardiomm.progress import make_console
    from simulations.checkpoint_evaluation import GROUPINGS, run_evaluation
    from simulations.report_tables import summary_table

    config = load_config(args.overrides, config_name="evaluate")
    result = run_evaluation(config)
    console = make_console()
    console.print(summary_table(result.summary(GROUPINGS["overall"]), "overall"))
    console.print(f"tables and per-image scores in {config.output_dir}")
    return 0
