"""``cardiomm partition``: split a CMRxRecon-2025-layout root into sites and print them."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "partition"
HELP = "Partition a CMRxRecon-2025-layout data set by centre, hold centres out, write a manifest."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("root", type=Path, help="data root (holds MultiCoil/)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--hold-out", nargs="+", default=[], metavar="CENTRE", help="centres to hold out by name"
    )
    group.add_argument(
        "--hold-out-count", type=int, default=0, help="hold out this many centres, drawn by seed"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws (default 0)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="patients for validation")
    parser.add_argument("--test-fraction", type=float, default=0.2, help="patients for testing")
    parser.add_argument(
        "--output",
        type=Path,
        default=Path("partition_manifest.json"),
        help="manifest to write (default ./partition_manifest.json)",
    )


def run(args: argparse.Namespace) -> int:
    from cardiomm.cohort.manifest import SplitFractions, partition_dataset, write_manifest
    from cardiomm.progress import make_console
    from simulations.report_tables import manifest_table

    manifest = partition_dataset(
        args.root,
        hold_out=args.hold_out,
        hold_out_count=args.hold_out_count,
        seed=args.seed,
        fractions=SplitFractions(val=args.val_fraction, test=args.test_fraction),
    )
    path = write_manifest(manifest, args.output)
    console = make_console()
    console.print(manifest_table(manifest))
    skipped = [*manifest["unreadable_paths"], *manifest["bad_files"]]
    if skipped:
        console.print(f"[yellow]{len(skipped)} path(s) skipped:[/yellow]")
        for bad in skipped:
            console.print(f"  {bad['path']}: {bad['reason']}")
    console.print(f"manifest written to {path}")
    return 0
