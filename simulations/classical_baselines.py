"""The classical baselines of an evaluation or study, tuned on the internal validation files.

``cardiomm evaluate`` and the study ask for classical methods by name
(:data:`cardiomm.classical.suite.BASELINES`). With ``classical.tune`` (the default) each
mask setting is tuned first on the internal sites' *validation* files, never on the split
being scored: ESPIRiT settings, each method's lambda and the best method
(:func:`cardiomm.classical.tuning.tune_setting`), written to ``classical_tuning.json`` and a
markdown table so a report says what was chosen and from what. Results go through a
content-addressed store (``classical.cache_dir``), so a second evaluation of the same
files costs no solve.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

from cardiomm.classical.cache import ResultCache
from cardiomm.classical.record import parse_tuning_record
from cardiomm.classical.suite import validation_slices
from cardiomm.classical.tuning import DEFAULT_LAMBDAS, SettingChoice, TuningGrid, tune_setting
from cardiomm.cohort.manifest import split_sites_and_files
from cardiomm.data.builders import evaluation_dataset, evaluation_masks_of
from cardiomm.data.masking import MaskSetting
from simulations.classical_schema import (
    ClassicalConfig,
    classical_config,
    register_classical_schema,
)
from simulations.report_tables import markdown_table

logger = logging.getLogger(__name__)

TUNING_FILE = "classical_tuning.json"
TUNING_TABLE = "classical_tuning.md"
# configs/evaluate.yaml and configs/simulate.yaml select the typed schema of ``classical``.
register_classical_schema()


@dataclasses.dataclass(frozen=True)
class ClassicalSettings:
    """How the classical baselines are tuned and run (config ``classical``).

    Attributes:
        tune: choose settings on the internal validation files (False: method defaults).
        tuning_slices: validation slices per mask setting (0: every selected slice).
        workers: processes for the tuning grid.
        cache: the result store, or None.
        grid: lambdas, ESPIRiT settings and solver iterations searched.
    """

    tune: bool = ClassicalConfig.tune
    tuning_slices: int = ClassicalConfig.tuning_slices
    workers: int = ClassicalConfig.workers
    cache: ResultCache | None = None
    grid: TuningGrid = dataclasses.field(default_factory=TuningGrid)


def classical_settings(config: Any) -> ClassicalSettings:
    """The ``classical`` section of a run config (absent keys: the schema's defaults,
    simulations/classical_schema.py).

    Raises:
        ValueError: a value out of range (named).
    """
    values = classical_config(config)
    tuning_slices, workers = values.tuning_slices, values.workers
    if tuning_slices < 0 or workers < 1:
        raise ValueError(
            f"classical.tuning_slices must be >= 0 and classical.workers >= 1, got "
            f"{tuning_slices} and {workers}"
        )
    cache_dir = values.cache_dir
    cache = ResultCache(Path(cache_dir).expanduser()) if cache_dir else None
    lambdas = dict(DEFAULT_LAMBDAS)
    for name, grid in values.lambdas.items():
        lambdas[name] = tuple(grid)
    return ClassicalSettings(
        tune=values.tune,
        tuning_slices=tuning_slices,
        workers=workers,
        cache=cache,
        grid=TuningGrid(lambdas=lambdas, max_iter=dict(values.max_iter)),
    )


def tune_classical(
    config: Any,
    manifest: dict,
    settings: ClassicalSettings,
    masks: list[MaskSetting],
    output_dir: Path,
    show_progress: bool = True,
) -> dict[str, SettingChoice]:
    """Mask name -> what tuning chose there, on the internal validation files; written to
    ``output_dir`` (:data:`TUNING_FILE`, :data:`TUNING_TABLE`). A partition without
    validation files is tuned on the internal training files instead, with a warning and
    the record saying so (never on a test or held-out file). A record from an earlier run
    with the same grid and files is reused.

    Raises:
        ValueError: the partition has no internal validation or training files.
    """
    tuned_on = "val"
    try:
        files = split_sites_and_files(manifest, "val", [])
    except ValueError:
        tuned_on = "train"
        try:
            files = split_sites_and_files(manifest, "train", [])
        except ValueError:
            raise ValueError(
                "tuning the classical baselines needs internal validation or training files, "
                "and the partition has neither; classical.tune=false runs each method with "
                "its default settings"
            ) from None
        logger.warning(
            "the partition has no internal validation files: the classical baselines are "
            "tuned on the %d internal training files (give data.val_fraction > 0 to tune on "
            "files no model trains on)",
            len(files),
        )
    record = output_dir / TUNING_FILE
    signature = {**_signature(settings, files, config), "tuned_on": tuned_on}
    previous = _read_record(record, signature)
    choices: dict[str, SettingChoice] = {}
    all_masks = evaluation_masks_of(config)
    base = None  # indexed only when a setting is not in the record
    for setting in masks:
        if setting.name in previous:
            choices[setting.name] = previous[setting.name]
            continue
        if base is None:
            base = evaluation_dataset(files, config, "ranking", show_progress)
        dataset = base.with_options(masking=all_masks.with_settings(setting))
        slices = validation_slices(dataset, settings.tuning_slices)
        logger.info("tuning the classical methods at %s on %d slices", setting.name, len(slices))
        choices[setting.name] = tune_setting(
            setting.name, slices, settings.grid, settings.cache, settings.workers, show_progress
        )
    write_tuning(output_dir, choices, signature, len(files), tuned_on)
    return choices


def write_tuning(
    output_dir: Path,
    choices: dict[str, SettingChoice],
    signature: dict,
    files: int,
    tuned_on: str = "val",
) -> Path:
    """The tuning record (JSON) and its table (markdown); returns the table's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    values = {
        "signature": signature,
        "choices": {name: choice.to_dict() for name, choice in choices.items()},
    }
    temporary = output_dir / (TUNING_FILE + ".tmp")
    temporary.write_text(json.dumps(values, indent=2))
    temporary.replace(output_dir / TUNING_FILE)
    path = output_dir / TUNING_TABLE
    path.write_text("\n".join(tuning_table(choices, files, tuned_on)) + "\n")
    return path


def tuning_table(choices: dict[str, SettingChoice], files: int, tuned_on: str = "val") -> list[str]:
    """Markdown lines: per mask setting and method, the chosen lambda, ESPIRiT settings and
    tuning PSNR / SSIM, the best method marked; ``tuned_on`` the split tuned on."""
    rows = []
    for name, choice in choices.items():
        for method, value in choice.regularization.items():
            point = choice.chosen_point(method)
            rows.append(
                {
                    "mask": name,
                    "method": method + (" (best)" if method == choice.best_method else ""),
                    "lambda": f"{value:.3g}",
                    "espirit": f"threshold {choice.espirit.threshold}, crop {choice.espirit.crop}",
                    "val psnr": f"{point.psnr:.2f}" if point else "-",
                    "val ssim": f"{point.ssim:.3f}" if point else "-",
                    "slices": point.slices if point else "-",
                    "points": sum(1 for p in choice.points if p.method == method),
                }
            )
    columns = ["mask", "method", "lambda", "espirit", "val psnr", "val ssim", "slices", "points"]
    where = (
        "the internal validation files only"
        if tuned_on == "val"
        else "the internal TRAINING files (the partition has no validation files)"
    )
    return [
        f"Classical settings chosen on {where} ({files} files; "
        "ranking view, per-slice means): ESPIRiT settings by CG-SENSE at the middle of its "
        "grid, then each method's lambda over its grid, extended past an edge that held the "
        "best value.",
        "",
        markdown_table(rows, columns),
    ]


def _signature(settings: ClassicalSettings, files: list[Path], config: Any) -> dict:
    return {
        "files": sorted(str(path) for path in files),
        "tuning_slices": settings.tuning_slices,
        "grid": {
            "methods": list(settings.grid.methods),
            "lambdas": {k: list(v) for k, v in settings.grid.lambdas.items()},
            "espirit": [dataclasses.asdict(e) for e in settings.grid.espirit],
            "extensions": settings.grid.extensions,
            "max_iter": dict(settings.grid.max_iter),
        },
        "seed": int(config.seed),
        "acs_width": int(config.masks.acs_width),
        "remove_oversampling": bool(config.data.remove_oversampling),
    }


def _read_record(path: Path, signature: dict) -> dict[str, SettingChoice]:
    """The choices of an earlier record made the same way, or none (a damaged or different
    record is ignored with a warning: tuning again is only slower)."""
    if not path.is_file():
        return {}
    try:
        values = json.loads(path.read_text())
        if values.get("signature") != signature:
            return {}
        return parse_tuning_record(values, path).choices
    except (ValueError, KeyError, TypeError) as error:
        logger.warning("%s cannot be read (%s); tuning again", path, error)
        return {}
