"""Score trained models and classical baselines on a split (``cardiomm evaluate``).

Every method sees the same fixed, seeded masks; images are scored with the official
metrics, averaged per file and then per centre, vendor, modality and mask.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import split_sites_and_files
from cardiomm.data.builders import evaluation_masks_of, evaluation_settings
from cardiomm.data.dataset import SliceDataset
from cardiomm.model import SENSE, ZeroFilled
from cardiomm.model.checkpoint import read_checkpoint
from cardiomm.model.factory import reconstructor_from_checkpoint
from cardiomm.model.interface import Reconstructor
from cardiomm.train import EvaluationResult, evaluate_reconstructor
from cardiomm.train.runtime import select_device
from simulations.report_tables import markdown_table

BASELINES = {"zero-filled": ZeroFilled, "sense": SENSE}
GROUPINGS = {
    "overall": ["method", "mask"],
    "centre": ["method", "centre", "mask"],
    "vendor": ["method", "vendor", "mask"],
    "modality": ["method", "modality", "mask"],
}


def build_methods(
    checkpoints: list[str], baselines: list[str], clip_path: str | None
) -> list[Reconstructor]:
    """Reconstructors for the named baselines and checkpoints (method names must differ)."""
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(
            f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}"
        )
    methods: list[Reconstructor] = [BASELINES[name]() for name in baselines]
    for path in checkpoints:
        methods.append(reconstructor_from_checkpoint(read_checkpoint(path), clip_path=clip_path))
    names = [method.name for method in methods]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"two methods are called {', '.join(duplicates)}; give the checkpoints distinct "
            "'method' names when training (method=...)"
        )
    return methods


def run_evaluation(config: Any, show_progress: bool = True) -> EvaluationResult:
    """Evaluate every method at every configured mask; write CSVs and a markdown summary."""
    output_dir = Path(config.output_dir)
    manifest = load_partition(
        config.data, config.seed, show_progress, bad_file_report=output_dir / "bad_files.jsonl"
    )
    files = split_sites_and_files(manifest, config.split, list(config.sites))
    methods = build_methods(list(config.checkpoints), list(config.baselines), config.clip_path)
    device = select_device(config.device)
    records = []
    for setting in evaluation_settings(config.masks):
        dataset = SliceDataset(
            files,
            evaluation_masks_of(config).with_settings(setting),
            remove_oversampling=bool(config.data.remove_oversampling),
            selection=config.selection,
            bad_file_report=output_dir / "bad_files.jsonl",
            show_progress=show_progress,
        )
        for method in methods:
            _to_device(method, device)
            result = evaluate_reconstructor(
                method, dataset, device, int(config.max_items), show_progress
            )
            records += result.records
    result = EvaluationResult(records)
    write_evaluation_report(result, output_dir, f"split {config.split} of {manifest['root']}")
    return result


def write_evaluation_report(result: EvaluationResult, output_dir: Path, title: str) -> Path:
    """records.csv, summary_<grouping>.csv for each grouping, and summary.md."""
    output_dir.mkdir(parents=True, exist_ok=True)
    result.write_csv(output_dir / "records.csv")
    sections = [f"# Evaluation: {title}", ""]
    for name, keys in GROUPINGS.items():
        rows = result.summary(keys)
        columns = [*keys, "files", "images", "psnr", "ssim", "nmse"]
        with open(output_dir / f"summary_{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
        sections += [f"## By {name}", "", markdown_table(rows, columns, {"psnr": 2}), ""]
    path = output_dir / "summary.md"
    path.write_text("\n".join(sections))
    return path


def _to_device(method: Reconstructor, device: Any) -> None:
    network = getattr(method, "network", None)
    if network is not None:
        network.to(device)
