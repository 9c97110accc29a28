"""Score trained models and classical baselines on a split (``cardiomm evaluate``).

Every method sees the same fixed, seeded masks; images are scored with the official
metrics, averaged per file and then per centre, vendor, modality and mask.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from cardiomm.classical.cache import ResultCache
from cardiomm.classical.suite import BASELINES as CLASSICAL
from cardiomm.classical.suite import is_classical, reconstructors_for
from cardiomm.classical.tuning import SettingChoice, TuningGrid
from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import split_sites_and_files
from cardiomm.data.builders import evaluation_masks_of, evaluation_settings
from cardiomm.data.dataset import SliceDataset
from cardiomm.model import ZeroFilled
from cardiomm.model.checkpoint import read_checkpoint
from cardiomm.model.factory import reconstructor_from_checkpoint
from cardiomm.model.interface import Reconstructor
from cardiomm.train import EvaluationResult, evaluate_reconstructor
from cardiomm.train.runtime import select_device
from simulations.classical_baselines import classical_settings, tune_classical
from simulations.report_tables import markdown_table

BASELINES = ("zero-filled", *CLASSICAL)
# The hand-written torch SENSE these evaluations used before sigpy's methods replaced it.
RETIRED = {"sense": "cg-sense (sigpy's CG-SENSE with ESPIRiT maps)"}
GROUPINGS = {
    "overall": ["method", "mask"],
    "centre": ["method", "centre", "mask"],
    "vendor": ["method", "vendor", "mask"],
    "modality": ["method", "modality", "mask"],
}


def build_methods(
    checkpoints: list[str],
    baselines: list[str],
    clip_path: str | None,
    choice: SettingChoice | None = None,
    grid: TuningGrid | None = None,
    cache: ResultCache | None = None,
) -> list[Reconstructor]:
    """Reconstructors for the named baselines and checkpoints (method names must differ).

    Classical baselines take their settings at one mask setting from ``choice`` (what
    tuning chose there; None: each method's defaults), ``grid`` (solver iterations) and
    store results in ``cache``.
    """
    check_baselines(baselines)
    methods: list[Reconstructor] = []
    for name in baselines:
        if is_classical(name):
            methods += reconstructors_for([name], choice, grid, cache)
        else:
            methods.append(ZeroFilled())
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


def check_baselines(baselines: list[str]) -> None:
    """Refuse a retired or unknown baseline name, saying what to use instead."""
    retired = [name for name in baselines if name in RETIRED]
    if retired:
        raise ValueError(
            "; ".join(f"baseline {name!r} is retired: use {RETIRED[name]}" for name in retired)
        )
    unknown = sorted(set(baselines) - set(BASELINES))
    if unknown:
        raise ValueError(
            f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}"
        )


def run_evaluation(config: Any, show_progress: bool = True) -> EvaluationResult:
    """Evaluate every method at every configured mask; write CSVs and a markdown summary.

    Classical baselines are tuned first, per mask, on the internal validation files
    (``classical.tune``; :mod:`simulations.classical_baselines`), and their seconds per
    image are written to ``classical_seconds.csv``.
    """
    output_dir = Path(config.output_dir)
    manifest = load_partition(
        config.data, config.seed, show_progress, bad_file_report=output_dir / "bad_files.jsonl"
    )
    files = split_sites_and_files(manifest, config.split, list(config.sites))
    baselines = list(config.baselines)
    learned = build_methods(list(config.checkpoints), [], config.clip_path)
    check_baselines(baselines)  # before any work
    classical = classical_settings(config)
    masks = evaluation_settings(config.masks)
    choices: dict[str, SettingChoice] = {}
    if classical.tune and any(is_classical(name) for name in baselines):
        choices = tune_classical(config, manifest, classical, masks, output_dir, show_progress)
    device = select_device(config.device)
    records, costs = [], []
    for setting in masks:
        dataset = SliceDataset(
            files,
            evaluation_masks_of(config).with_settings(setting),
            remove_oversampling=bool(config.data.remove_oversampling),
            selection=config.selection,
            bad_file_report=output_dir / "bad_files.jsonl",
            show_progress=show_progress,
        )
        references = build_methods(
            [], baselines, None, choices.get(setting.name), classical.grid, classical.cache
        )
        for method in [*references, *learned]:
            _to_device(method, device)
            result = evaluate_reconstructor(
                method, dataset, device, int(config.max_items), show_progress
            )
            records += result.records
            if hasattr(method, "seconds_per_image"):
                costs.append(classical_cost(method, setting.name))
    result = EvaluationResult(records)
    write_evaluation_report(result, output_dir, f"split {config.split} of {manifest['root']}")
    if costs:
        write_classical_costs(costs, output_dir)
    return result


def classical_cost(method: Any, mask: str) -> dict:
    """One row of ``classical_seconds.csv``: a classical method's seconds per image at a mask."""
    return {
        "method": method.name,
        "mask": mask,
        "slices": len(method.costs),
        "images solved": sum(cost.frames_solved for cost in method.costs),
        "seconds per image": round(method.seconds_per_image(), 4),
        "from the store": sum(cost.cached for cost in method.costs),
    }


def write_classical_costs(rows: list[dict], output_dir: Path) -> Path:
    """``classical_seconds.csv`` and its table appended to ``summary.md``."""
    path = output_dir / "classical_seconds.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "## Classical methods' seconds per image",
        "",
        "ESPIRiT calibration and solve, per frame reconstructed (a k-t method solves every "
        "frame of a slice), on this machine's CPU; a result from the store counts the "
        "seconds measured when it was made.",
        "",
        markdown_table(rows, list(rows[0])),
        "",
    ]
    with open(output_dir / "summary.md", "a") as handle:
        handle.write("\n".join(lines))
    return path


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
