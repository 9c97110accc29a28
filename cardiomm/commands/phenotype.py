"""``cardiomm phenotype``: ventricular volumes, LVEF and LV mass from reconstructions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from rich.table import Table

NAME = "phenotype"
HELP = (
    "Segment the cine short-axis reconstructions of a `cardiomm reconstruct --full` run and "
    "their fully sampled references, and compare LV / RV volumes, ejection fractions, LV "
    "mass and Dice (and the phantom's true volumes where known); writes phenotypes.csv, "
    "their agreement statistics with 95-percent intervals and a Bland-Altman plot of LVEF."
)
CSV_NAME = "phenotypes.csv"
AGREEMENT_CSV = "phenotype_agreement.csv"
BLAND_ALTMAN_PNG = "bland_altman_lvef.png"
# What is compared, with the fully sampled reference and (phantoms) the truth.
MEASURES = ("lv_ef_percent", "lv_edv_ml", "lv_esv_ml", "lv_mass_g", "rv_ef_percent")


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
    from cardiomm.progress import make_console
    from cardiomm.recon.submission import SUMMARY_FILE
    from cardiomm.segmentation.network import load_segmenter

    summary = args.reconstructions / SUMMARY_FILE
    if not summary.is_file():
        print(f"cardiomm {NAME}: error: no {summary} (run reconstruct first)", file=sys.stderr)
        return 2
    network, size = load_segmenter(args.segmenter)
    rows, skipped = _measure(_cine_sax_entries(summary), network, size)
    if not rows:
        print(f"cardiomm {NAME}: error: no cine short-axis reconstruction", file=sys.stderr)
        return 1
    destination = (args.output or args.reconstructions) / CSV_NAME
    destination.parent.mkdir(parents=True, exist_ok=True)
    _write_csv(destination, rows)
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(f"{row['method']} {row['mask']}", []).append(row)
    agreement_rows = _agreement_rows(groups)
    folder = destination.parent
    _write_csv(folder / AGREEMENT_CSV, agreement_rows)
    plot = _ef_plot(groups, folder / BLAND_ALTMAN_PNG)
    console = make_console()
    console.print(_ef_table(agreement_rows, groups))
    console.print(
        f"{len(rows)} reconstruction(s) measured, {len(skipped)} skipped; {destination}, "
        f"{folder / AGREEMENT_CSV}, {plot}"
    )
    return 0


def _cine_sax_entries(summary: Path) -> list[dict[str, str]]:
    """The rows of a reconstruction summary CSV that name a cine short-axis file written."""
    import csv

    from cardiomm.segmentation.reference_slices import CINE_SAX

    with open(summary, newline="") as handle:
        return [
            row
            for row in csv.DictReader(handle)
            if row["status"] == "ok" and Path(row["input"]).stem == CINE_SAX
        ]


def _measure(
    entries: list[dict[str, str]], network: torch.nn.Module, size: str
) -> tuple[list[dict], list[tuple[Path, str]]]:
    """Segment each entry's whole reconstructed volume and its reference: the clinical rows,
    and (file, why) for each file skipped with a warning (unreadable, written without
    --full)."""
    import h5py

    from cardiomm.data.errors import DataFileError
    from cardiomm.progress import progress_bar
    from cardiomm.recon.submission import FULL_VARIABLE
    from cardiomm.segmentation.clinical import clinical_row

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
    return rows, skipped


def _ef_plot(groups: dict[str, list[dict]], path: Path) -> Path:
    """The Bland-Altman plot of each group's LVEF against the reference, written to ``path``."""
    from cardiomm.segmentation.agreement import bland_altman_plot

    return bland_altman_plot(
        {
            name: (
                [row["recon_lv_ef_percent"] for row in members],
                [row["reference_lv_ef_percent"] for row in members],
            )
            for name, members in sorted(groups.items())
        },
        path,
    )


def _ef_table(agreement_rows: list[dict], groups: dict[str, list[dict]]) -> Table:
    """The console table: per group, LVEF agreement with the reference and the mean LV Dice."""
    from rich.table import Table

    table = Table(title="LVEF of reconstructions against the fully sampled reference (points)")
    for column in ("method, undersampling", "files", "MAE [95 % CI]", "bias", "limits", "Dice LV"):
        table.add_column(column)
    for entry in agreement_rows:
        if entry["measure"] != "lv_ef_percent" or entry["against"] != "reference":
            continue
        members = groups[entry["group"]]
        table.add_row(
            entry["group"],
            str(entry["n"]),
            f"{_shown(entry['mae'])} [{_shown(entry['mae_low'])}, {_shown(entry['mae_high'])}]",
            _shown(entry["bias"], "+.2f"),
            f"{_shown(entry['lower_limit'], '+.2f')} .. {_shown(entry['upper_limit'], '+.2f')}",
            _mean(members, "dice_lv_blood"),
        )
    return table


def _agreement_rows(groups: dict[str, list[dict]]) -> list[dict]:
    """Per group, measure and reference (the fully sampled image, the phantom's truth): the
    Bland-Altman statistics of the reconstructions' values."""
    from cardiomm.segmentation.agreement import agreement

    out = []
    for group, members in sorted(groups.items()):
        for measure in MEASURES:
            for against in ("reference", "true"):
                key = f"{against}_{measure}"
                if not all(key in row for row in members):
                    continue
                stats = agreement(
                    [row[f"recon_{measure}"] for row in members], [row[key] for row in members]
                )
                out.append(
                    {
                        "group": group,
                        "measure": measure,
                        "against": against,
                        "n": stats.n,
                        "mae": stats.mean_absolute_error,
                        "mae_low": stats.mean_absolute_error_ci[0],
                        "mae_high": stats.mean_absolute_error_ci[1],
                        "bias": stats.bias,
                        "bias_low": stats.bias_ci[0],
                        "bias_high": stats.bias_ci[1],
                        "lower_limit": stats.lower_limit,
                        "upper_limit": stats.upper_limit,
                        "correlation": stats.correlation,
                    }
                )
    return out


def _shown(value: float, spec: str = ".2f") -> str:
    """``value`` formatted, or a dash where it is not a number (too few files)."""
    import math

    return format(value, spec) if math.isfinite(value) else "–"


def _write_csv(path: Path, rows: list[dict]) -> None:
    import csv

    fields = list(dict.fromkeys(key for row in rows for key in row)) or ["group"]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def _mean(rows: list[dict], key: str) -> str:
    import math

    values = [row[key] for row in rows if math.isfinite(row[key])]
    return f"{sum(values) / len(values):.3f}" if values else "–"
