"""``cardiomm cross-site-eval``: the cross-site matrix of a finished simulated federation."""

from __future__ import annotations

import argparse
import contextlib
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

NAME = "cross-site-eval"
HELP = (
    "Score every model of a finished federation (final, best on validation, vendor variants, "
    "extra checkpoints) at every site on its test split, without training and without "
    "changing any file of the run: checks the run's final state and every --model first "
    "(exit 2 naming what cannot be scored), then resumes a temporary working copy of RUN_DIR "
    "(simulated with `cardiomm simulate` or `flwr run`) with the cross-site phase on; writes "
    "RUN_DIR/cross_site.csv and cross_site.png (an earlier matrix only with --overwrite). A "
    "deployed federation does the same with `flwr run` (docs/federated-training.md, "
    "Cross-site evaluation matrix)."
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
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the cross_site.csv / cross_site.png already in RUN_DIR (refused without)",
    )


def run(args: argparse.Namespace) -> int:
    import logging
    import sys

    from cardiomm.progress import make_console
    from simulations.cross_site_run import CrossSiteEvalError, cross_site_again
    from simulations.study.flower_run import FlowerRunError

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    models = _models(args.model)

    def warn(message: str) -> None:
        print(f"cardiomm {NAME}: warning: {message}", file=sys.stderr)

    try:
        with _terminate_unwinds():
            written = cross_site_again(
                args.run_dir, models, args.num_sites, args.timeout, args.overwrite, warn
            )
    except (FlowerRunError, CrossSiteEvalError) as error:
        # The evaluation ran in a working copy, now removed: the run's files are untouched.
        print(
            f"cardiomm {NAME}: error: {args.run_dir} unchanged, the evaluation failed: "
            f"{str(error).splitlines()[0]}",
            file=sys.stderr,
        )
        return 1
    make_console().print(
        f"cross-site matrix: {written} (nothing trained, no other file changed)", highlight=False
    )
    return 0


def _models(items: list[str]) -> dict[str, str]:
    """``--model NAME=CHECKPOINT`` values by name (each name once)."""
    models: dict[str, str] = {}
    for item in items:
        name, separator, path = item.partition("=")
        if not separator or not name or not path:
            raise ValueError(f"--model {item!r}: expected NAME=CHECKPOINT")
        if name in models:
            raise ValueError(f"--model {name}: named twice ({models[name]} and {path})")
        models[name] = path
    return models


@contextlib.contextmanager
def _terminate_unwinds() -> Iterator[None]:
    """SIGTERM (a scheduler, `timeout`, `kill`) ends the command as Ctrl-C does, through
    every ``finally``: Flower's processes are stopped and the working copy removed (Python's
    default would exit at once, leaving both)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
