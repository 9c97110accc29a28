"""Score a fold's trained models and the classical references (the study's evaluation).

Every model of every experiment (every training seed) is scored on the internal test split
and on each held-out centre at every configured evaluation mask, and on the held-out centres
once more with their metadata text reduced to unknowns; zero-filled and the best classical
method (tuned per mask on the fold's internal validation files) are scored once per fold.
Scores follow ``cardiomm evaluate``: the ranking selection of images, official metrics, in
two views (the challenge's centre crop, ``ranking``, and the whole image, ``full``), images
averaged per file: one row per model and file (:data:`FILE_COLUMNS`),
from which simulations/study/results.py computes means with intervals. The first image of
each held-out centre at the example mask is kept per method (``examples/``) for the report's
figures.

The learning curves (:func:`curve_rows`) score the checkpoints a run kept along the way
(federated rounds, centralised steps) on the first images of each held-out centre.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiomm.classical.methods import METHODS
from cardiomm.classical.suite import BEST_CLASSICAL
from cardiomm.cohort.manifest import HELD_OUT, held_out_sites, internal_sites, split_sites_and_files
from cardiomm.data.builders import evaluation_dataset, evaluation_masks_of, evaluation_settings
from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import MaskSetting
from cardiomm.model.interface import (
    CineReconstructor,
    CineResult,
    CineTexts,
    ReconstructionInput,
    Reconstructor,
    TextConditionedCineReconstructor,
    reconstruct_cine_with_texts,
)
from cardiomm.train import evaluate_reconstructor
from cardiomm.train.evaluate import VIEWS
from cardiomm.train.runtime import select_device
from cardiomm.train.schema import configured_device
from simulations.checkpoint_evaluation import _to_device, build_methods, classical_cost
from simulations.classical_baselines import classical_settings, tune_classical
from simulations.report_tables import markdown_table
from simulations.study.outcome import FILE_COLUMNS, NO_SEED, ExperimentOutcome
from simulations.study.schema import study_config

logger = logging.getLogger(__name__)

INTERNAL_TEST = "internal-test"
SPLITS = (INTERNAL_TEST, HELD_OUT)
# The references every comparison can name: zero-filled, and the classical method (sigpy:
# CG-SENSE, L1-wavelet or k-t sparse CS, ESPIRiT maps) that tuning on the fold's internal
# validation files found best at each mask. The learning curves and the clinical check score
# these two; the final evaluation also scores each classical method of
# ``study.classical_baselines`` by name (:func:`scored_references`).
REFERENCES = ("zero-filled", BEST_CLASSICAL)
# Per fold, the classical methods' seconds per image (beside the tuning record).
SECONDS_TABLE = "classical_seconds.md"
# Where each fold's classical tuning record and result store live in the study's folder.
CLASSICAL_FOLDER = "classical"
REFERENCE_MODEL = "-"
GLOBAL_MODEL = "global"
# Scores are averaged per file within each (experiment, seed, model, split, metadata).
FILE_KEYS = ["view", "centre", "vendor", "modality", "mask", "file"]
EXAMPLES_FOLDER = "examples"
# The example images are taken at this mask when it is configured (else the first one).
EXAMPLE_MASK = "Uniform8"


@dataclasses.dataclass(frozen=True)
class EvaluationData:
    """One dataset the models are scored on: a centre of a split at one mask.

    Attributes:
        split: ``internal-test`` or ``held-out``.
        centre: the site.
        mask: the mask setting's name, e.g. ``Uniform8``.
        metadata: ``full`` or ``unknown`` (what the metadata texts say).
        dataset: the eval-mode dataset (ranking selection, one fixed seeded mask setting).
        is_example: its first image is the centre's example for the figures (held-out
            centres, full metadata, the example mask).
    """

    split: str
    centre: str
    mask: str
    metadata: str
    dataset: SliceDataset
    is_example: bool = False


def evaluate_outcomes(
    outcomes: Sequence[ExperimentOutcome],
    config: Any,
    manifest: dict,
    output_dir: str | Path,
    show_progress: bool = True,
    *,
    include_references: bool = True,
    fold: str | None = None,
) -> list[dict]:
    """Score every model of ``outcomes`` (one fold) and, once, the references.

    Args:
        outcomes: finished experiments of one fold (the manifest's).
        config: reads ``masks.evaluation``, ``masks.acs_width``, ``seed``,
            ``data.remove_oversampling``, and optionally ``study.max_eval_items`` (images per
            model, centre, mask and metadata variant; 0 or absent: all), ``train.device``
            (default ``auto``) and ``study.clip_path`` (a moved CLIP checkpoint).
        manifest: the fold's partition manifest (internal and held-out sites, files).
        output_dir: receives ``bad_files.jsonl`` and ``examples/<fold>/<centre>/*.npz``.
        show_progress: progress bars.
        include_references: also score the references (a runner that evaluates one
            experiment at a time asks for them once).
        fold: the fold's name when ``outcomes`` is empty (default: from the manifest).

    Returns:
        rows with exactly :data:`FILE_COLUMNS`, one per (experiment, seed, model, split,
        metadata, view, file).
    """
    output_dir = Path(output_dir)
    fold = _fold_name(outcomes, manifest, fold)
    device = select_device(configured_device(config))
    study = study_config(config)
    max_items, clip_path = study.max_eval_items, study.clip_path
    data = evaluation_data(config, manifest, output_dir, show_progress)
    examples = output_dir / EXAMPLES_FOLDER / path_slug(fold)
    root = Path(manifest["root"])
    rows: list[dict] = []
    if include_references:
        rows += score_references(
            config, manifest, data, fold, device, max_items, output_dir, show_progress
        )
    for outcome in outcomes:
        for model, checkpoint in outcome.checkpoints.items():
            logger.info(
                "evaluating %s seed %d (%s) of fold %s",
                outcome.experiment,
                outcome.seed,
                model,
                fold,
            )
            (method,) = build_methods([str(checkpoint)], [], clip_path)
            labels = run_labels(fold, outcome.experiment, outcome.kind, str(outcome.seed), model)
            # One seed's examples are enough for the figures.
            keep = examples if outcome.seed == min(o.seed for o in outcomes) else None
            rows += score_method(method, data, labels, device, max_items, keep, show_progress, root)
            del method  # one model in memory at a time
    return rows


def score_references(
    config: Any,
    manifest: dict,
    data: Sequence[EvaluationData],
    fold: str,
    device: torch.device,
    max_items: int,
    output_dir: Path,
    show_progress: bool = True,
) -> list[dict]:
    """Score the references of :func:`scored_references` on the full-metadata ``data`` (the
    references read no text: unknown-metadata rows would repeat these) and write the
    classical methods' seconds per image beside the tuning record (:data:`SECONDS_TABLE`).

    Returns:
        rows with exactly :data:`FILE_COLUMNS`.
    """
    full = [item for item in data if item.metadata == "full"]
    classical = output_dir / CLASSICAL_FOLDER
    examples = output_dir / EXAMPLES_FOLDER / path_slug(fold)
    root = Path(manifest["root"])
    references = reference_methods(
        config, manifest, classical, show_progress, scored_references(config)
    )
    rows, costs = [], []
    for mask, methods in references.items():
        at_mask = [item for item in full if item.mask == mask]
        for method in methods:
            labels = run_labels(fold, method.name, "reference", NO_SEED, REFERENCE_MODEL)
            rows += score_method(
                method, at_mask, labels, device, max_items, examples, show_progress, root
            )
            if hasattr(method, "seconds_per_image"):
                costs.append(classical_cost(method, mask))
    if costs:
        (classical / SECONDS_TABLE).write_text(markdown_table(costs, list(costs[0])) + "\n")
    return rows


def scored_references(config: Any) -> tuple[str, ...]:
    """The references the final evaluation scores: :data:`REFERENCES`, then each classical
    method named in ``study.classical_baselines`` (default: all of them), tuned like
    best-classical.

    Raises:
        ValueError: a name that is not a classical method.
    """
    names = study_config(config).classical_baselines
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise ValueError(
            f"study.classical_baselines: unknown method(s) {', '.join(unknown)}; choose from "
            f"{', '.join(METHODS)}"
        )
    return (*REFERENCES, *dict.fromkeys(names))


def reference_methods(
    config: Any,
    manifest: dict,
    folder: Path,
    show_progress: bool = False,
    names: Sequence[str] = REFERENCES,
) -> dict[str, list[Reconstructor | CineReconstructor]]:
    """Mask name -> the fold's references ``names`` at that mask (default
    :data:`REFERENCES`), the classical ones tuned on the fold's internal validation files;
    the tuning record and the result store in ``folder`` (the store elsewhere when
    ``classical.cache_dir`` names one). The evaluation, the curves and the clinical check
    of a fold share one folder, so the fold is tuned once.

    Raises:
        ValueError: the fold has no internal validation files to tune on.
    """
    settings = classical_settings(config)
    folder = Path(folder)
    if settings.cache is None:
        from cardiomm.classical.cache import ResultCache

        settings = dataclasses.replace(settings, cache=ResultCache(folder / "store"))
    masks = evaluation_settings(config.masks)
    choices = tune_classical(config, manifest, settings, masks, folder, show_progress)
    return {
        setting.name: build_methods(
            [], list(names), None, choices[setting.name], settings.grid, settings.cache
        )
        for setting in masks
    }


def evaluation_data(
    config: Any, manifest: dict, output_dir: Path, show_progress: bool = False
) -> list[EvaluationData]:
    """The datasets of a fold: per split and centre, every configured mask; the held-out
    centres with full and with unknown metadata. Each centre's index is built once."""
    masks = evaluation_masks_of(config)
    settings = masks.settings
    example = example_mask(settings)
    data = []
    for split, site, files in _split_centres(manifest):
        base = evaluation_dataset(
            files,
            config,
            "ranking",
            show_progress,
            bad_file_report=output_dir / "bad_files.jsonl",
        )
        variants = ("full", "unknown") if split == HELD_OUT else ("full",)
        data += [
            EvaluationData(
                split,
                site,
                setting.name,
                metadata,
                base.with_options(masking=masks.with_settings(setting), metadata=metadata),
                is_example=split == HELD_OUT and metadata == "full" and setting.name == example,
            )
            for setting in settings
            for metadata in variants
        ]
    return data


def example_mask(settings: Sequence[MaskSetting]) -> str:
    """The mask the example images are shown at: Uniform 8 if configured, else the first."""
    names = [setting.name for setting in settings]
    return EXAMPLE_MASK if EXAMPLE_MASK in names else names[0]


def score_method(
    method: Reconstructor,
    data: Sequence[EvaluationData],
    labels: dict[str, str],
    device: torch.device,
    max_items: int,
    examples: Path | None,
    show_progress: bool = False,
    root: Path | None = None,
    views: Sequence[str] = VIEWS,
) -> list[dict]:
    """Per-file rows of ``method`` on every dataset of ``data``, labelled with ``labels``
    (fold, experiment, kind, seed, model); its first image of each example dataset goes to
    ``examples`` (when given). Files are named relative to ``root`` when inside it."""
    _to_device(method, device)
    rows = []
    for item in data:
        recorder: Reconstructor | CineReconstructor = (
            _FirstCineImage(method)
            if isinstance(method, CineReconstructor)
            else _FirstImage(method)
        )
        result = evaluate_reconstructor(
            recorder, item.dataset, device, max_items, show_progress, views
        )
        if examples is not None and item.is_example and recorder.image is not None:
            save_example(examples, example_image(item, recorder.image, labels))
        for group in result.summary(FILE_KEYS):
            row = {**labels, "split": item.split, "metadata": item.metadata, **group}
            row["file"] = _relative(row["file"], root)
            rows.append({column: row[column] for column in FILE_COLUMNS})
    return rows


@dataclasses.dataclass(frozen=True)
class ExampleImage:
    """One method's reconstruction of a held-out centre's example image.

    Attributes:
        fold, experiment, kind, model: whose reconstruction (as in RESULT_COLUMNS).
        centre, mask: where and how it was undersampled.
        file, frame, slice_index: which image.
        target: float32 (ky, kx), the fully sampled RSS image.
        reconstruction: float32 (ky, kx), the method's magnitude image.
        oversampling_removed: whether the readout oversampling was cropped first (the ranked
            centre crop depends on it).
    """

    fold: str
    experiment: str
    kind: str
    model: str
    centre: str
    mask: str
    file: str
    frame: int
    slice_index: int
    target: np.ndarray
    reconstruction: np.ndarray
    oversampling_removed: bool

    @property
    def label(self) -> str:
        """How figures name the method: the experiment, with the site of a site model."""
        if self.model in (GLOBAL_MODEL, REFERENCE_MODEL):
            return self.experiment
        return f"{self.experiment} ({self.model})"


def example_image(
    item: EvaluationData, reconstruction: np.ndarray, labels: dict[str, str]
) -> ExampleImage:
    """The example of ``item`` (its first image) as reconstructed by the labelled method."""
    sample = item.dataset[0]
    return ExampleImage(
        **{key: value for key, value in labels.items() if key != "seed"},
        centre=item.centre,
        mask=item.mask,
        file=sample.file,
        frame=sample.frame,
        slice_index=sample.slice_index,
        target=sample.target.numpy(),
        reconstruction=np.asarray(reconstruction, dtype=np.float32),
        oversampling_removed=item.dataset.remove_oversampling,
    )


def save_example(folder: str | Path, example: ExampleImage) -> Path:
    """Write ``example`` to ``folder/<centre>/<experiment>__<model>.npz``."""
    name = f"{path_slug(example.experiment)}__{path_slug(example.model)}.npz"
    path = Path(folder) / path_slug(example.centre) / name
    path.parent.mkdir(parents=True, exist_ok=True)
    values = dataclasses.asdict(example)
    # np.savez takes its own first argument as `file`.
    values["source_file"] = values.pop("file")
    np.savez_compressed(path, **values)
    return path


def load_examples(folder: str | Path) -> Iterator[ExampleImage]:
    """Every example saved under ``folder`` (any depth), in path order."""
    for path in sorted(Path(folder).rglob("*.npz")):
        with np.load(path, allow_pickle=False) as values:
            text = {name: str(values[name]) for name in _EXAMPLE_TEXTS}
            yield ExampleImage(
                **text,
                file=str(values["source_file"]),
                frame=int(values["frame"]),
                slice_index=int(values["slice_index"]),
                target=values["target"],
                reconstruction=values["reconstruction"],
                oversampling_removed=bool(values["oversampling_removed"]),
            )


_EXAMPLE_TEXTS = ("fold", "experiment", "kind", "model", "centre", "mask")


def path_slug(name: str) -> str:
    """``held-out=Center005+Center006`` -> ``held-out_Center005_Center006`` (a safe file name)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "_"


class _FirstImage:
    """Passes reconstructions through and keeps the first image it made (the example)."""

    def __init__(self, method: Reconstructor) -> None:
        self.method = method
        self.name = method.name
        self.image: np.ndarray | None = None

    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        images = self.method.reconstruct(inputs)
        if self.image is None:
            self.image = images[0].float().cpu().numpy()
        return images


class _FirstCineImage:
    """A cine method's :class:`_FirstImage`: the first scored frame of its first slice."""

    def __init__(self, method: CineReconstructor) -> None:
        self.method = method
        self.name = method.name
        self.image: np.ndarray | None = None
        if isinstance(method, TextConditionedCineReconstructor):
            # The evaluation hands the slice's texts only to a method that says it reads them.
            self.reads_texts = True

    def reconstruct_cine(
        self,
        masked_kspace: np.ndarray,
        masks: np.ndarray,
        frames: Sequence[int],
        texts: CineTexts | None = None,
    ) -> CineResult:
        if texts is None:
            result = self.method.reconstruct_cine(masked_kspace, masks, frames)
        else:
            result = reconstruct_cine_with_texts(self.method, masked_kspace, masks, frames, texts)
        if self.image is None:
            self.image = np.asarray(result.images[0], dtype=np.float32)
        return result


def _split_centres(manifest: dict) -> Iterator[tuple[str, str, list[Path]]]:
    """(split, centre, files) for each internal site's test files and each held-out centre."""
    for split, sites, manifest_split in (
        (INTERNAL_TEST, internal_sites(manifest), "test"),
        (HELD_OUT, held_out_sites(manifest), HELD_OUT),
    ):
        for site in sites:
            try:
                files = split_sites_and_files(manifest, manifest_split, [site["site"]])
            except ValueError:
                # e.g. a small site whose few patients all train: nothing of it to test.
                logger.warning("%s has no files in the %s split; not scored", site["site"], split)
                continue
            yield split, site["site"], files


def _fold_name(outcomes: Sequence[ExperimentOutcome], manifest: dict, fold: str | None) -> str:
    folds = sorted({outcome.fold for outcome in outcomes})
    if len(folds) > 1:
        raise ValueError(
            f"outcomes of several folds ({', '.join(folds)}): evaluate each fold with its "
            "own manifest"
        )
    if folds:
        return folds[0]
    return fold or "held-out=" + "+".join(manifest.get("held_out", []))


def run_labels(fold: str, experiment: str, kind: str, seed: str, model: str) -> dict[str, str]:
    """The labels of a method's rows: whose run and model it is."""
    return {"fold": fold, "experiment": experiment, "kind": kind, "seed": seed, "model": model}


def _relative(file: str, root: Path | None) -> str:
    path = Path(file)
    if root is not None and path.is_relative_to(root):
        return path.relative_to(root).as_posix()
    return path.as_posix()


# -- learning curves -----------------------------------------------------------------------

CURVE_COLUMNS = ("fold", "experiment", "seed", "steps", "mask", "images", "psnr", "ssim")


def curve_rows(
    outcomes: Sequence[ExperimentOutcome],
    config: Any,
    manifest: dict,
    experiments: Sequence[str],
    items: int,
    output_dir: Path,
    show_progress: bool = False,
) -> list[dict]:
    """Held-out scores along training, for the learning-curve figure.

    Each run of ``experiments`` is scored at every checkpoint it kept (a federation's
    rounds, a centralised run's ``step-*.pt``) and at its end, against the optimiser steps of
    all sites together; the untrained network (zero-filled, step 0) and the references are scored on
    the same images. Only the first ``items`` images of each held-out centre and mask count
    (full metadata, ranking view): the curves show a trend, the final evaluation the result.

    Returns:
        rows with :data:`CURVE_COLUMNS`; the references have seed ``-`` and steps 0.
    """
    if items <= 0:
        return []
    fold = _fold_name(outcomes, manifest, None)
    device = select_device(configured_device(config))
    data = [
        item
        for item in evaluation_data(config, manifest, output_dir, show_progress)
        if item.split == HELD_OUT and item.metadata == "full"
    ]
    rows = []
    references = reference_methods(
        config, manifest, Path(output_dir) / CLASSICAL_FOLDER, show_progress
    )
    for mask, methods in references.items():
        at_mask = [item for item in data if item.mask == mask]
        for method in methods:
            rows += _curve_points(method, at_mask, items, device, fold, method.name, NO_SEED, 0)
    for outcome in outcomes:
        if outcome.experiment not in experiments or "global" not in outcome.checkpoints:
            continue
        final = outcome.checkpoints["global"]
        for steps, weights in _checkpoints_along(outcome):
            (method,) = build_methods([str(final)], [], None)
            if weights is not None:
                method.network.load_state_dict(weights, strict=True)
            rows += _curve_points(
                method, data, items, device, fold, outcome.experiment, str(outcome.seed), steps
            )
    return rows


def _checkpoints_along(outcome: ExperimentOutcome) -> Iterator[tuple[int, dict | None]]:
    """(total steps so far, weights) of every checkpoint a run kept; None: the final one."""
    import torch

    from server.checkpoints import load_round_checkpoint

    total = int(outcome.details.get("total_steps", outcome.steps_per_site))
    folder = Path(outcome.run_dir) / "checkpoints"
    if outcome.kind == "federated":
        rounds = max(1, int(outcome.details.get("rounds", 1)))
        for path in sorted(folder.glob("round-*.pt")):
            checkpoint = load_round_checkpoint(path)
            if checkpoint.server_round < rounds:
                yield total * checkpoint.server_round // rounds, checkpoint.arrays
    else:
        for path in sorted(folder.glob("step-*.pt")):
            content = torch.load(path, map_location="cpu", weights_only=True)
            yield int(content["extra"]["step"]), content["state_dict"]
    yield total, None


def _curve_points(
    method: Reconstructor,
    data: Sequence[EvaluationData],
    items: int,
    device: torch.device,
    fold: str,
    experiment: str,
    seed: str,
    steps: int,
) -> list[dict]:
    _to_device(method, device)
    rows = []
    for mask in dict.fromkeys(item.mask for item in data):
        records = []
        for item in data:
            if item.mask == mask:
                result = evaluate_reconstructor(method, item.dataset, device, items, False)
                records += result.records
        if not records:
            continue
        rows.append(
            {
                "fold": fold,
                "experiment": experiment,
                "seed": seed,
                "steps": steps,
                "mask": mask,
                "images": len(records),
                "psnr": float(np.mean([record["psnr"] for record in records])),
                "ssim": float(np.mean([record["ssim"] for record in records])),
            }
        )
    return rows


# -- the undersampling the study asks for -----------------------------------------------------


def acceleration_rows(config: Any, manifest: dict) -> list[dict[str, Any]]:
    """Per evaluation setting: its nominal acceleration, the true one on the held-out files
    (1 / the sampled fraction of their ranked frames, ACS included, as the evaluation draws
    them), and the true one on the reference matrix (``masks.reference_matrix``) if any.
    """
    from cardiomm.masks import make_mask
    from cardiomm.masks.sampler import reference_matrix_from_config

    reference = reference_matrix_from_config(config.masks)
    acs_width = int(config.masks.acs_width)
    halve = bool(config.data.remove_oversampling)
    entries = [entry for site in held_out_sites(manifest) for entry in site["files"]]
    rows = []
    for setting in evaluation_settings(config.masks):
        fractions = [
            make_mask(
                setting.pattern,
                setting.acceleration,
                (int(entry["ky"]), int(entry["kx"]) // 2 if halve else int(entry["kx"])),
                num_frames=min(3, max(1, int(entry["frames"]))),
                acs_width=acs_width,
                reference_matrix=reference,
            ).sampling_fraction
            for entry in entries
        ]
        row = {
            "setting": setting.name,
            "nominal R": setting.acceleration,
            "true R, held-out files": f"{1 / np.mean(fractions):.2f}" if fractions else "–",
        }
        if reference is not None:
            on_reference = make_mask(
                setting.pattern, setting.acceleration, reference, num_frames=12, acs_width=acs_width
            )
            row[f"true R, {reference[0]} x {reference[1]} (full size)"] = (
                f"{on_reference.true_acceleration:.2f}"
            )
        rows.append(row)
    return rows
