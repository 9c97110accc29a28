"""``cardiomm make-synthetic``: write the embedded synthetic multi-centre data set."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

NAME = "make-synthetic"
HELP = (
    "Make the synthetic multi-centre, multi-vendor cardiac k-space data set "
    "(CMRxRecon 2025 layout, with ground-truth labels)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--preset",
        default="tiny",
        choices=("tiny", "small", "study", "paper", "vendor-skew"),
        help="tiny: CI, seconds; small: CPU training, a few hundred MB; study: the held-out-"
        "centre study's 6 centres; paper: 13 centres; vendor-skew: one majority vendor, one "
        "small minority-vendor site (default tiny)",
    )
    parser.add_argument(
        "--output", type=Path, required=True, help="directory to write (empty or new)"
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same data (default 0)")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the synthetic data set in a non-empty OUTPUT (other files are kept)",
    )
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (default 1)")


def run(args: argparse.Namespace) -> int:
    from rich.table import Table

    from cardiomm.data.synthetic import generate_dataset, read_manifest
    from cardiomm.data.synthetic.generate import InsufficientSpaceError, planned_bytes
    from cardiomm.progress import make_console

    console = make_console()
    console.print(
        f"writing the synthetic '{args.preset}' set to {args.output}: about "
        f"{planned_bytes(args.preset) / 1e6:,.0f} MB"
    )
    started = time.perf_counter()
    try:
        root = generate_dataset(
            args.output, args.preset, seed=args.seed, overwrite=args.overwrite, workers=args.workers
        )
    except (FileExistsError, InsufficientSpaceError) as error:
        print(f"cardiomm {NAME}: error: {error}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    manifest = read_manifest(root)
    table = Table(title=f"synthetic '{args.preset}' data set, seed {args.seed}")
    for column in (
        "centre",
        "vendor",
        "field",
        "scanner",
        "held out",
        "patients",
        "files",
        "slices",
        "MB",
    ):
        table.add_column(
            column, justify="right" if column in ("patients", "files", "slices", "MB") else "left"
        )
    for centre in manifest["centres"]:
        table.add_row(
            centre["centre"],
            centre["vendor"],
            f"{centre['field_strength']}T",
            centre["scanner_model"],
            "yes" if centre["held_out"] else "",
            str(centre["patients"]),
            str(centre["files"]),
            str(centre["slices"]),
            f"{centre['bytes_written'] / 1e6:.1f}",
        )
    console.print(table)
    totals = manifest["totals"]
    console.print(
        f"wrote {totals['files']} files ({totals['bytes_written'] / 1e6:.1f} MB) to {root} "
        f"in {elapsed:.1f} s; manifest {root / 'synthetic_manifest.json'}"
    )
    return 0
