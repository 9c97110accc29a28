"""``cardiomm phenotype``: ventricular volumes, LVEF and LV mass from reconstructions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

NAME = "phenotype"
HELP = (
    "Segment the cine short-axis reconstructions of a `cardiomm reconstruct --full` run and "
    "their fully sampled references, and compare LV / RV volumes, ejection fractions, LV "
    "mass and Dice (and the phantom's true volumes where known); writes phenotypes.csv."
)
CSV_NAME = "phenotypes.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reconstructions",
        type=Path,
        required=True,
        help="the output folder of `cardiomm reconstruct --full` (its reconstruction_summary.csv)",
    )
    parser.add_argument(
        "--segmenter", type=Path, required=True, help="segmenter.pt of `cardiomm train-segmenter`"
    )
    parser.add_argument("--output", type=Path, help=f"where {CSV_NAME} goes (default: the run)")


def run(args: argparse.Namespace) -> int:
    import csv

    import h5py
    from rich.table import Table

    from cardiomm.data.errors import DataFileError
    from cardiomm.progress import make_console, progress_bar
    from cardiomm.recon.submission import FULL_VARIABLE, SUMMARY_FILE
    from cardiomm.segmentation.clinical import clinical_row
    from cardiomm.segmentation.network import load_segmenter
    from cardiomm.segmentation.reference_slices import CINE_SAX

    summary = args.reconstructions / SUMMARY_FILE
    if not summary.is_file():
        print(f"cardiomm {NAME}: error: no {summary} (run reconstruct first)", file=sys.stderr)
        return 2
    network, size = load_segmenter(args.segmenter)
    with open(summary, newline="") as handle:
        entries = [
            row
            for row in csv.DictReader(handle)
            if row["status"] == "ok" and Path(row["input"]).stem == CINE_SAX
        ]
    rows, skipped = [], []
    for entry in progress_bar(entries, "segmenting reconstructions"):
        output = Path(entry["output"])
        try:
            with h5py.File(output, "r") as handle:
                if FULL_VARIABLE not in handle:
                    raise DataFileError(output, "written without --full: no whole volume")
                volume = handle[FULL_VARIABLE][()]
            row = clinical_row(network, size, volume, Path(entry["input"]))
        except (DataFileError, OSError) as error:
            skipped.append((output, str(error)))
            print(f"cardiomm {NAME}: warning: skipping {output}: {error}", file=sys.stderr)
            continue
        rows.append({"file": str(output), "method": entry["method"], "mask": entry["mask"], **row})
    if not rows:
        print(f"cardiomm {NAME}: error: no cine short-axis reconstruction", file=sys.stderr)
        return 1
    destination = (args.output or args.reconstructions) / CSV_NAME
    destination.parent.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    with open(destination, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    table = Table(title="LVEF from reconstructions (percentage points)")
    columns = ("method", "mask", "files", "|LVEF - reference|", "|LVEF - truth|", "Dice LV blood")
    for column in columns:
        table.add_column(column)
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["method"], row["mask"]), []).append(row)
    for (method, mask), members in sorted(groups.items()):
        table.add_row(
            method,
            mask,
            str(len(members)),
            _mean_abs(members, "recon_lv_ef_percent", "reference_lv_ef_percent"),
            _mean_abs(members, "recon_lv_ef_percent", "true_lv_ef_percent"),
            _mean(members, "dice_lv_blood"),
        )
    console = make_console()
    console.print(table)
    console.print(f"{len(rows)} reconstruction(s) measured, {len(skipped)} skipped; {destination}")
    return 0


def _mean_abs(rows: list[dict], measured: str, reference: str) -> str:
    import math

    values = [
        abs(row[measured] - row[reference])
        for row in rows
        if reference in row and math.isfinite(row[measured]) and math.isfinite(row[reference])
    ]
    return f"{sum(values) / len(values):.2f}" if values else "–"


def _mean(rows: list[dict], key: str) -> str:
    import math

    values = [row[key] for row in rows if math.isfinite(row[key])]
    return f"{sum(values) / len(values):.3f}" if values else "–"
