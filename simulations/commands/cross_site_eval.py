"""``cardiomm cross-site-eval``: the cross-site matrix of a finished simulated federation."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "cross-site-eval"
HELP = (
    "Score every model of a finished federation (final, best on validation, vendor variants, "
    "extra checkpoints) at every site on its test split, without training: resumes the run "
    "in RUN_DIR (simulated with `cardiomm simulate` or `flwr run`) with the cross-site phase "
    "on; writes RUN_DIR/cross_site.csv and cross_site.png. A deployed federation does the "
    "same with `flwr run` (README, Evaluation-only sites)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="the federation's output_dir")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME=CHECKPOINT",
        help="another model to score (repeatable), e.g. local-Center001=runs/local/final.pt",
    )
    parser.add_argument(
        "--num-sites",
        type=int,
        help="simulated SuperNodes (default: every centre of the run's partition, held-out "
        "centres as evaluation-only sites)",
    )
    parser.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds before the run is stopped"
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from cardiomm.progress import make_console
    from simulations.cross_site_run import cross_site_again

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    models = dict(_named(item) for item in args.model)
    written = cross_site_again(args.run_dir, models, args.num_sites, args.timeout)
    make_console().print(f"cross-site matrix: {written}", highlight=False)
    return 0


def _named(item: str) -> tuple[str, str]:
    name, separator, path = item.partition("=")
    if not separator or not name or not path:
        raise ValueError(f"--model {item!r}: expected NAME=CHECKPOINT")
    if not Path(path).is_file():
        raise FileNotFoundError(f"--model {name}: no checkpoint {path}")
    return name, str(Path(path).resolve())
