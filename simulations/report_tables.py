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
