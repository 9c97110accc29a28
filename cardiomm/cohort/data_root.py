"""Find the data a run uses: a real CMRxRecon root, or the synthetic set made on first use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cardiomm.cohort.layout import data_root
from cardiomm.cohort.manifest import SplitFractions, partition_dataset, read_manifest
from cardiomm.data.bad_file_report import PARTITION, append_bad_files


def resolve_data_root(data: Any, show_progress: bool = True) -> Path:
    """The data root of the ``data`` config; the synthetic preset is generated if absent.

    Raises:
        FileNotFoundError: a real-data root that does not exist or cannot be used (a symlink
            loop, not a folder, not listable; :func:`cardiomm.cohort.layout.data_root`).
        FileExistsError: the synthetic root holds other data (another preset, seed or set).
    """
    root = Path(data.root).expanduser()
    if data.synthetic_preset:
        from cardiomm.data.synthetic import ensure_synthetic_dataset

        return ensure_synthetic_dataset(
            root, data.synthetic_preset, seed=data.synthetic_seed, show_progress=show_progress
        )
    data_root(root)  # a missing root, a symlink loop, a folder it cannot list: one line
    return root


def load_partition(
    data: Any,
    seed: int,
    show_progress: bool = True,
    bad_file_report: str | Path | None = None,
) -> dict:
    """The partition manifest: ``data.manifest`` if given, else a fresh partition of the root.

    Args:
        bad_file_report: ``bad_files.jsonl`` to append the paths and files the partition
            skipped to (stage ``partition``).
    """
    if data.manifest:
        manifest = read_manifest(data.manifest)
    else:
        manifest = partition_dataset(
            resolve_data_root(data, show_progress),
            hold_out=list(data.hold_out),
            hold_out_count=int(data.hold_out_count),
            seed=seed,
            fractions=SplitFractions(val=data.val_fraction, test=data.test_fraction),
            show_progress=show_progress,
        )
    if bad_file_report is not None:
        skipped = [*manifest.get("unreadable_paths", []), *manifest.get("bad_files", [])]
        append_bad_files(bad_file_report, skipped, PARTITION)
    return manifest
