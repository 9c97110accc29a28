"""Time the synthetic data set generator per preset and report what it wrote.

    .venv/bin/python benchmarks/synthetic_generation.py                 # tiny and small
    .venv/bin/python benchmarks/synthetic_generation.py --presets paper --workers 2

Each preset is generated into a temporary directory (removed afterwards unless --keep),
with the same seed, and the table gives wall time, files, 2D images and bytes on disk.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from rich.table import Table

from cardiomm.data.synthetic import generate_dataset, read_manifest
from cardiomm.progress import make_console


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=["tiny", "small"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="write the data sets under this directory")
    args = parser.parse_args()

    console = make_console()
    table = Table(title=f"synthetic generation, seed {args.seed}, {args.workers} worker(s)")
    for column in ("preset", "centres", "files", "2D images", "MB", "seconds", "ms / image"):
        table.add_column(column, justify="left" if column == "preset" else "right")
    for preset in args.presets:
        parent = args.keep or Path(tempfile.mkdtemp(prefix="cardiomm-synthetic-"))
        root = parent / preset
        started = time.perf_counter()
        generate_dataset(root, preset, seed=args.seed, overwrite=True, workers=args.workers)
        elapsed = time.perf_counter() - started
        totals = read_manifest(root)["totals"]
        centres = len(read_manifest(root)["centres"])
        table.add_row(
            preset,
            str(centres),
            str(totals["files"]),
            str(totals["images"]),
            f"{totals['bytes_written'] / 1e6:.1f}",
            f"{elapsed:.1f}",
            f"{1000 * elapsed / totals['images']:.1f}",
        )
        if args.keep is None:
            shutil.rmtree(parent)
    console.print(table)


if __name__ == "__main__":
    main()
