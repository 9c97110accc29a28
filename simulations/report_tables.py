"""Rich tables of partition manifests."""

from __future__ import annotations

from rich.table import Table

from cardiomm.data.metadata import format_field_strength


def manifest_table(manifest: dict) -> Table:
    """One row per site: vendor, fields, scanners, sizes, split, held-out flag."""
    table = Table(title=f"Sites of {manifest['root']}")
    # Narrow (non-terminal) output folds cells instead of cutting site and scanner names.
    for column in ("site", "vendor", "field", "scanners"):
        table.add_column(column, overflow="fold")
    for column in ("patients", "files", "slices", "images train/val/test"):
        table.add_column(column, justify="right", overflow="fold")
    table.add_column("role", overflow="fold")
    for site in manifest["sites"]:
        split = site["split_images"]
        table.add_row(
            site["site"],
            site["vendor"],
            ", ".join(format_field_strength(f) for f in site["field_strengths"]) or "unknown",
            ", ".join(site["scanners"]),
            str(site["num_patients"]),
            str(site["num_files"]),
            str(site["num_slices"]),
            f"{split['train']}/{split['val']}/{split['test']}",
            "held out" if site["held_out"] else "internal",
        )
    return table


def markdown_table(
    rows: list[dict], columns: list[str], digits: dict[str, int] | None = None
) -> str:
    """A GitHub markdown table of ``rows`` (dicts) with ``columns``; floats rounded per column."""
    digits = digits or {}

    def cell(row: dict, column: str) -> str:
        value = row.get(column, "")
        if isinstance(value, float):
            return f"{value:.{digits.get(column, 4)}f}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row, column) for column in columns) + " |" for row in rows]
    return "\n".join(lines)


def summary_table(rows: list[dict], title: str) -> Table:
    """Rich table of evaluation summary rows (group keys, files, images, PSNR, SSIM, NMSE)."""
    table = Table(title=title)
    if not rows:
        return table
    keys = [key for key in rows[0] if key not in ("files", "images", "psnr", "ssim", "nmse")]
    for key in keys:
        table.add_column(key, overflow="fold")
    for column in ("files", "images", "PSNR (dB)", "SSIM", "NMSE"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            *(str(row[key]) for key in keys),
            str(row["files"]),
            str(row["images"]),
            f"{row['psnr']:.2f}",
            f"{row['ssim']:.4f}",
            f"{row['nmse']:.4f}",
        )
    return table
