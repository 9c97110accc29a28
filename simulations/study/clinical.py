"""The study's clinical check: ventricular volumes and ejection fractions from every method's
reconstructions of the held-out centres' cine short-axis stacks.

Per fold, a MONAI segmenter (cardiomm/segmentation/) is trained on the fully sampled
references of the internal centres' training patients (never a held-out image), on the
field of view the models see (the readout oversampling removed when the study removes it).
Each held-out cine short-axis file with labels and a geometry sidecar is then:

- segmented fully sampled (every frame and slice): the reference phenotypes, and the frames
  of end diastole and end systole (largest and smallest LV blood volume);
- reconstructed by every method (zero-filled, the best classical method, every model of every
  run) at every evaluation setting, with the same fixed, seeded masks the study scores PSNR
  with, at those two frames, every slice; segmented by the same network; its phenotypes read
  at the same two frames, and its segmentation compared with the reference's by Dice.

Only the two frames are kept because the phenotypes are read at them: the learned models
reconstruct each image on its own, and a classical cine method (k-t sparse CS, or any method
with ESPIRiT maps from the time-averaged k-space) gets every frame of the slice and returns
those two. One row per (run, model, setting, file):
:data:`CLINICAL_COLUMNS`; simulations/study/clinical_results.py turns them into means
with intervals, paired comparisons and the verdict.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cardiomm.cohort.manifest import held_out_sites, internal_sites, site_files
from cardiomm.data.builders import evaluation_dataset, evaluation_masks_of, evaluation_settings
from cardiomm.data.dataset import SliceDataset
from cardiomm.data.errors import DataFileError
from cardiomm.data.geometry import ScanGeometry, read_geometry
from cardiomm.model.interface import (
    CineReconstructor,
    CineTexts,
    ReconstructionInput,
    Reconstructor,
    reconstruct_cine_with_texts,
)
from cardiomm.progress import progress_bar
from cardiomm.segmentation.classes import CLASS_NAMES
from cardiomm.segmentation.clinical import PHENOTYPE_FIELDS, segment_stack, stack_dice
from cardiomm.segmentation.network import CHECKPOINT_VERSION as SEGMENTER_CHECKPOINT_VERSION
from cardiomm.segmentation.network import load_segmenter
from cardiomm.segmentation.phenotypes import Phenotypes, true_lv_phenotypes, ventricular_phenotypes
from cardiomm.segmentation.reference_slices import cine_sax_files, reference_slices
from cardiomm.segmentation.training import (
    SegmenterSettings,
    dice_intervals,
    dice_per_class,
    dice_scores,
    json_numbers,
    train_segmenter,
)
from cardiomm.train.runtime import select_device
from cardiomm.train.schema import configured_device
from simulations.checkpoint_evaluation import _to_device, build_methods
from simulations.study.outcome import NO_SEED, ExperimentOutcome
from simulations.study.schema import ClinicalConfig, study_config
from simulations.study.scoring import (
    CLASSICAL_FOLDER,
    REFERENCE_MODEL,
    reference_methods,
    run_labels,
)

logger = logging.getLogger(__name__)

SEGMENTER_FOLDER = "segmenter"
SEGMENTER_METRICS = "segmenter_metrics.json"
TRUE_FIELDS = ("lv_edv_ml", "lv_esv_ml", "lv_ef_percent")
DICE_FIELDS = tuple(f"dice_{name}" for name in CLASS_NAMES[1:])
CLINICAL_COLUMNS = (
    "fold",
    "experiment",
    "kind",
    "seed",
    "model",
    "centre",
    "vendor",
    "mask",
    "file",
    "ed_frame",
    "es_frame",
    *(f"recon_{name}" for name in PHENOTYPE_FIELDS),
    *(f"reference_{name}" for name in PHENOTYPE_FIELDS),
    *(f"true_{name}" for name in TRUE_FIELDS),
    *DICE_FIELDS,
)


@dataclasses.dataclass(frozen=True)
class ClinicalSettings:
    """``study.clinical`` of configs/simulate.yaml.

    Attributes:
        enabled: run the clinical check (``cardiomm simulate --no-clinical`` turns it off).
        segmenter: how the fold's segmenter trains (its seed is the study's ``seed``).
        experiment: the federated experiment the LVEF goal judges.
    """

    enabled: bool = ClinicalConfig.enabled
    segmenter: SegmenterSettings = dataclasses.field(default_factory=SegmenterSettings)
    experiment: str = ClinicalConfig.experiment

    @classmethod
    def from_config(cls, config: Any) -> ClinicalSettings:
        """``study.clinical`` of ``config`` (absent: the schema's defaults)."""
        block = study_config(config).clinical
        segmenter = SegmenterSettings(
            size=block.segmenter_size,
            steps=block.segmenter_steps,
            learning_rate=block.segmenter_learning_rate,
            seed=int(config.seed),
        )
        if segmenter.steps < 1:
            raise ValueError(f"study.clinical.segmenter_steps must be >= 1, got {segmenter.steps}")
        return cls(enabled=block.enabled, segmenter=segmenter, experiment=block.experiment)


@dataclasses.dataclass(frozen=True)
class ClinicalCheck:
    """What the clinical check of one fold gave.

    Attributes:
        rows: :data:`CLINICAL_COLUMNS` rows.
        segmenter: the segmenter's summary (checkpoint, images, Dice on the internal
            validation and the held-out references); empty when none was trained.
        skipped: held-out files not measured, each with the reason.
        note: why nothing was measured (empty when something was).
    """

    rows: list[dict[str, Any]]
    segmenter: dict[str, Any]
    skipped: list[tuple[str, str]]
    note: str = ""


@dataclasses.dataclass(frozen=True)
class _Scan:
    """A held-out cine short-axis file, segmented fully sampled."""

    path: Path
    centre: str
    vendor: str
    geometry: ScanGeometry
    reference_classes: np.ndarray  # uint8 (frames, slices, ky, kx)
    reference: Phenotypes
    truth: dict[str, float]
    items: dict[tuple[int, int], int]  # (frame, slice) -> dataset item


def clinical_check(
    outcomes: Sequence[ExperimentOutcome],
    config: Any,
    manifest: dict,
    output_dir: Path,
    fold: str,
    show_progress: bool = False,
    classical_folder: Path | None = None,
) -> ClinicalCheck:
    """The clinical check of one fold (module docstring): references, then every model.

    Args:
        outcomes: the fold's finished runs.
        config: the fold's study config (masks, data, seed, train.device, study.clinical).
        manifest: the fold's partition manifest.
        output_dir: receives ``segmenter/`` (checkpoint and metrics, reused by a rerun with
            the same settings and images).
        fold: the fold's name (the rows' ``fold``).
        show_progress: progress bars.
        classical_folder: the fold's classical tuning record and result store, shared with
            its evaluation (default: ``output_dir/classical``).
    """
    settings = ClinicalSettings.from_config(config)
    candidates, skipped = _held_out_candidates(manifest)
    if not candidates:
        return ClinicalCheck(
            [],
            {},
            skipped,
            "no held-out cine short-axis file with segmentation labels and a geometry "
            "sidecar (the synthetic sets write both; CMRxRecon's files hold neither)",
        )
    fitted = _fit_segmenter(settings, config, manifest, candidates, output_dir, show_progress)
    if fitted is None:
        return ClinicalCheck(
            [], {}, skipped, "no labelled cine short-axis file among the internal training files"
        )
    segmenter, network, size = fitted
    base = evaluation_dataset(candidates, config, "all", show_progress)
    scans = _reference_scans(base, network, size, skipped)
    device = select_device(configured_device(config))
    scoring = _ClinicalScoring(scans, network, size, device, show_progress)
    datasets = _masked_datasets(base, config)
    rows: list[dict[str, Any]] = []
    folder = classical_folder or output_dir / CLASSICAL_FOLDER
    for mask, methods in reference_methods(config, manifest, folder, show_progress).items():
        for method in methods:
            labels = run_labels(fold, method.name, "reference", NO_SEED, REFERENCE_MODEL)
            rows += _method_rows(method, labels, {mask: datasets[mask]}, scoring)
    clip_path = study_config(config).clip_path
    for outcome in outcomes:
        for model, checkpoint in outcome.checkpoints.items():
            (method,) = build_methods([str(checkpoint)], [], clip_path)
            labels = run_labels(fold, outcome.experiment, outcome.kind, str(outcome.seed), model)
            rows += _method_rows(method, labels, datasets, scoring)
            del method  # one model in memory at a time
    return ClinicalCheck(rows, segmenter, skipped)


def _held_out_candidates(manifest: dict) -> tuple[list[Path], list[tuple[str, str]]]:
    """The held-out centres' cine short-axis files with a geometry sidecar, and (file, why)
    for those without one."""
    held_out = [
        path for site in held_out_sites(manifest) for path in site_files(manifest, site, None)
    ]
    candidates = cine_sax_files(held_out)
    skipped = [(str(path), "no geometry sidecar") for path in candidates if not _has_geometry(path)]
    return [path for path in candidates if _has_geometry(path)], skipped


def _fit_segmenter(
    settings: ClinicalSettings,
    config: Any,
    manifest: dict,
    candidates: list[Path],
    output_dir: Path,
    show_progress: bool,
) -> tuple[dict[str, Any], torch.nn.Module, str] | None:
    """Train (or reuse) the segmenter on the internal training files and score it on the
    validation files and the held-out ``candidates``; writes its metrics into
    ``output_dir/segmenter/``. Returns (its metrics, the network, its size), or None when no
    internal training file is labelled."""
    remove_oversampling = bool(config.data.remove_oversampling)
    training, validation = (
        [path for site in internal_sites(manifest) for path in site_files(manifest, site, split)]
        for split in ("train", "val")
    )
    unusable: list[tuple[Path, str]] = []
    train_pairs = reference_slices(training, remove_oversampling, unusable)
    if not train_pairs:
        return None
    folder = output_dir / SEGMENTER_FOLDER
    segmenter = _segmenter(settings.segmenter, train_pairs, folder, show_progress)
    network, size = load_segmenter(Path(segmenter["checkpoint"]))
    segmenter["validation_dice"] = json_numbers(
        dice_per_class(network, size, reference_slices(validation, remove_oversampling))
    )
    held_out_scores = dice_scores(
        network, size, reference_slices(candidates, remove_oversampling, unusable)
    )
    intervals = dice_intervals(held_out_scores, seed=int(config.seed))
    segmenter["held_out_dice"] = json_numbers({k: v[0] for k, v in intervals.items()})
    segmenter["held_out_dice_ci"] = {
        name: [None if math.isnan(value) else value for value in values[1:]]
        for name, values in intervals.items()
    }
    segmenter["skipped_files"] = [f"{path}: {reason}" for path, reason in unusable]
    (folder / SEGMENTER_METRICS).write_text(json.dumps(segmenter, indent=2))
    return segmenter, network, size


def _masked_datasets(base: SliceDataset, config: Any) -> dict[str, SliceDataset]:
    """``base`` under each evaluation mask setting of ``config.masks``, by setting name."""
    masks = evaluation_masks_of(config)
    return {
        setting.name: base.with_options(masking=masks.with_settings(setting))
        for setting in evaluation_settings(config.masks)
    }


@dataclasses.dataclass(frozen=True)
class _ClinicalScoring:
    """What scores every method the same way: the reference scans, the segmenter (network
    and size), the device the methods run on, and whether to show progress."""

    scans: list[_Scan]
    network: torch.nn.Module
    size: str
    device: torch.device
    show_progress: bool


def _has_geometry(path: Path) -> bool:
    try:
        return read_geometry(path) is not None
    except DataFileError:
        return False


def _segmenter(
    settings: SegmenterSettings,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    folder: Path,
    show_progress: bool,
) -> dict[str, Any]:
    """The fold's segmenter: the one a previous invocation trained with the same settings
    on as many images, in this checkpoint version (a segmenter of another version saw other
    inputs), or a new one."""
    wanted = {
        **dataclasses.asdict(settings),
        "images": len(pairs),
        "checkpoint_version": SEGMENTER_CHECKPOINT_VERSION,
    }
    metrics = folder / SEGMENTER_METRICS
    checkpoint = folder / "segmenter.pt"
    if metrics.is_file() and checkpoint.is_file():
        try:
            earlier = json.loads(metrics.read_text())
        except json.JSONDecodeError:
            earlier = {}
        if earlier.get("settings") == wanted:
            return {
                "checkpoint": str(checkpoint),
                **{key: earlier[key] for key in ("settings", "seconds", "images")},
            }
    run = train_segmenter(pairs, settings, folder, show_progress)
    return {
        "checkpoint": str(run.checkpoint),
        "settings": wanted,
        "seconds": run.seconds,
        "images": run.images,
    }


def _reference_scans(
    dataset: SliceDataset, network: torch.nn.Module, size: str, skipped: list[tuple[str, str]]
) -> list[_Scan]:
    """Every file of ``dataset`` segmented fully sampled (files that fail are skipped)."""
    positions: dict[int, dict[tuple[int, int], int]] = {}
    for item, image in enumerate(dataset.index.images):
        positions.setdefault(image.file_number, {})[(image.frame, image.slice_index)] = item
    scans = []
    for number, indexed in enumerate(dataset.index.files):
        items = positions.get(number, {})
        frames, slices = indexed.shape[0], indexed.shape[1]
        try:
            geometry = read_geometry(indexed.path)
            assert geometry is not None  # files without one were left out before
            stack: np.ndarray | None = None
            for (frame, slice_index), item in items.items():
                sample = dataset[item]
                if sample.file != str(indexed.path):  # unreadable: the dataset moved on
                    raise DataFileError(indexed.path, "an image could not be read")
                if stack is None:  # every image of a file has one matrix
                    stack = np.zeros((frames, slices, *sample.target.shape), dtype=np.float32)
                stack[frame, slice_index] = sample.target.numpy()
            if stack is None or len(items) != frames * slices:
                raise DataFileError(indexed.path, "not every frame and slice is indexed")
        except (DataFileError, KeyError) as error:
            skipped.append((str(indexed.path), str(error)))
            continue
        classes = segment_stack(network, size, stack)
        reference = ventricular_phenotypes(
            classes, geometry.pixel_spacing_mm, geometry.slice_thickness_mm
        )
        try:
            truth = true_lv_phenotypes(indexed.path)
        except (OSError, KeyError, ValueError):
            truth = {}  # only a phantom has a truth
        scans.append(
            _Scan(
                path=indexed.path,
                centre=indexed.metadata.centre or "unknown",
                vendor=indexed.metadata.vendor or "unknown",
                geometry=geometry,
                reference_classes=classes,
                reference=reference,
                truth=truth,
                items=items,
            )
        )
    return scans


def _method_rows(
    method: Reconstructor,
    labels: dict[str, str],
    datasets: dict[str, SliceDataset],
    scoring: _ClinicalScoring,
) -> list[dict[str, Any]]:
    """One row per setting and scan: ``method``'s phenotypes at the reference's frames."""
    scans, network, size, device = scoring.scans, scoring.network, scoring.size, scoring.device
    show_progress = scoring.show_progress
    _to_device(method, device)
    rows = []
    jobs = [(mask, scan) for mask in datasets for scan in scans]
    for mask, scan in progress_bar(jobs, f"clinical check of {method.name}", show_progress):
        frames = (scan.reference.ed_frame, scan.reference.es_frame)
        slices = scan.reference_classes.shape[1]
        if isinstance(method, CineReconstructor):
            volume = _reconstruct_cine(method, datasets[mask], scan, frames, slices)
        else:
            samples = [
                datasets[mask][scan.items[(frame, slice_index)]]
                for frame in frames
                for slice_index in range(slices)
            ]
            images = _reconstruct(method, samples, device)
            volume = images.reshape(2, slices, *images.shape[1:])
        classes = segment_stack(network, size, volume)
        geometry = scan.geometry
        measured = ventricular_phenotypes(
            classes, geometry.pixel_spacing_mm, geometry.slice_thickness_mm, (0, 1)
        )
        row: dict[str, Any] = {
            **labels,
            "centre": scan.centre,
            "vendor": scan.vendor,
            "mask": mask,
            "file": str(scan.path),
            "ed_frame": frames[0],
            "es_frame": frames[1],
        }
        for name in PHENOTYPE_FIELDS:
            row[f"recon_{name}"] = getattr(measured, name)
            row[f"reference_{name}"] = getattr(scan.reference, name)
        for name in TRUE_FIELDS:
            row[f"true_{name}"] = scan.truth.get(name, math.nan)
        row.update(stack_dice(classes, scan.reference_classes[list(frames)]))
        rows.append(row)
    return rows


def _reconstruct_cine(
    method: CineReconstructor,
    dataset: SliceDataset,
    scan: _Scan,
    frames: tuple[int, int],
    slices: int,
) -> np.ndarray:
    """float32 (2, slices, ky, kx): a cine method's end-diastolic and end-systolic frames of
    every slice, each slice reconstructed from all its frames."""
    per_slice = []
    for slice_index in range(slices):
        cine = dataset.load_cine(scan.items[(frames[0], slice_index)])
        texts = CineTexts(cine.metadata_text, cine.undersampling_text)
        result = reconstruct_cine_with_texts(
            method, cine.masked_kspace, cine.masks, list(frames), texts
        )
        per_slice.append(np.asarray(result.images, dtype=np.float32))
    return np.stack(per_slice, axis=1)


def _reconstruct(method: Reconstructor, samples: list[Any], device: torch.device) -> np.ndarray:
    """float32 (images, ky, kx) reconstructions of one file's samples (one matrix), in one
    batch."""
    inputs = ReconstructionInput(
        masked_kspace=torch.stack([sample.masked_kspace for sample in samples]).to(device),
        mask=torch.stack([sample.mask for sample in samples]).to(device),
        metadata_text=[sample.metadata_text for sample in samples],
        undersampling_text=[sample.undersampling_text for sample in samples],
    )
    with torch.no_grad():
        return method.reconstruct(inputs).float().cpu().numpy()
