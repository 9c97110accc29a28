"""The study's CSV files: written whole and renamed into place, read back with numbers as
numbers."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

METRICS = ("psnr", "ssim", "nmse")


def write_csv(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], path: Path) -> Path:
    """A CSV with exactly ``columns`` (written whole, then renamed into place)."""
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns), extrasaction="raise")
        writer.writeheader()
        writer.writerows(rows)
    partial.replace(path)
    return path


def read_file_scores(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a ``file_scores.csv``, with images as ints and metrics as floats."""
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["images"] = int(row["images"])
        row.update({metric: float(row[metric]) for metric in METRICS})
    return rows
