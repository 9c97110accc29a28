"""Score a reconstruction method on a slice dataset with the official metrics.

Images are scored one by one (99.5th-percentile normalisation), averaged per file, then per
group, as the CMRxRecon 2025 evaluation does. The ``ranking`` view scores the challenge's
centre crop of each image; the ``full`` view the whole image (background included).
"""

from __future__ import annotations

import csv
import dataclasses
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cardiomm.data.dataset import UNKNOWN, SliceDataset
from cardiomm.data.errors import DataFileError
from cardiomm.metrics import evaluate_image, ranking_crop
from cardiomm.model.interface import (
    CineReconstructor,
    CineTexts,
    ReconstructionInput,
    Reconstructor,
    reconstruct_cine_with_texts,
)
from cardiomm.progress import progress_bar

METRICS = ("psnr", "ssim", "nmse")
RANKING_VIEW, FULL_VIEW = "ranking", "full"
VIEWS = (RANKING_VIEW, FULL_VIEW)
RECORD_FIELDS = (
    "method",
    "view",
    "file",
    "frame",
    "slice",
    "centre",
    "vendor",
    "modality",
    "cardiac_view",
    "mask",
    *METRICS,
)


@dataclasses.dataclass
class EvaluationResult:
    """Per-image scores with their provenance (one dict per image, keys RECORD_FIELDS)."""

    records: list[dict]

    def summary(self, group_by: Sequence[str] = ()) -> list[dict]:
        """Mean scores per group: images averaged per file first, files then per group.

        Returns:
            one dict per group with the group keys, ``files``, ``images`` and the metrics.

        Raises:
            ValueError: the records hold several views and ``group_by`` does not separate them.
        """
        if "view" not in group_by and len({record["view"] for record in self.records}) > 1:
            raise ValueError("the records hold several views: group by 'view' too")
        per_file: dict[tuple, list[dict]] = defaultdict(list)
        for record in self.records:
            key = (*(record[g] for g in group_by), record["method"], record["file"], record["mask"])
            per_file[key].append(record)
        groups: dict[tuple, list[dict]] = defaultdict(list)
        for key, records in per_file.items():
            file_scores = {m: float(np.mean([r[m] for r in records])) for m in METRICS}
            groups[key[: len(group_by)]].append({**file_scores, "images": len(records)})
        rows = []
        for key in sorted(groups):
            files = groups[key]
            row = dict(zip(group_by, key, strict=True))
            row.update({"files": len(files), "images": sum(f["images"] for f in files)})
            row.update({m: float(np.mean([f[m] for f in files])) for m in METRICS})
            rows.append(row)
        return rows

    def mean(self) -> dict[str, float]:
        """Overall per-file-averaged PSNR / SSIM / NMSE (NaN when empty)."""
        rows = self.summary()
        return rows[0] if rows else {m: math.nan for m in METRICS}

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=RECORD_FIELDS)
            writer.writeheader()
            writer.writerows(self.records)
        return path


@torch.no_grad()
def evaluate_reconstructor(
    reconstructor: Reconstructor | CineReconstructor,
    dataset: SliceDataset,
    device: torch.device | str = "cpu",
    max_items: int = 0,
    show_progress: bool = True,
    views: Sequence[str] = (RANKING_VIEW,),
) -> EvaluationResult:
    """Reconstruct every item of ``dataset`` (or the first ``max_items``) and score it.

    Args:
        reconstructor: any :class:`Reconstructor` (CardioMM, DCUNet-style, zero-filled), or
            a :class:`CineReconstructor` (the classical methods, the frame-window CardioMM),
            which gets every frame of each scored slice with each frame's mask and the
            slice's texts, and returns the scored frames.
        dataset: an eval-mode slice dataset (its masks are fixed and seeded).
        device: where to reconstruct.
        max_items: 0 for all items.
        show_progress: progress bar.
        views: ``ranking`` (the challenge's centre crop) and / or ``full`` (the whole image);
            one record per image and view.
    """
    unknown = sorted(set(views) - set(VIEWS))
    if unknown or not views:
        raise ValueError(f"views must be among {VIEWS}, got {list(views)}")
    count = len(dataset) if not max_items else min(max_items, len(dataset))
    if isinstance(reconstructor, CineReconstructor):
        return _evaluate_cine(reconstructor, dataset, count, show_progress, views)
    device = torch.device(device)
    subset = torch.utils.data.Subset(dataset, range(count))
    # One slice per batch: files of a site differ in matrix size.
    loader = DataLoader(subset, batch_size=1, shuffle=False)
    records = []
    for sample in progress_bar(loader, f"evaluating {reconstructor.name}", enabled=show_progress):
        inputs = ReconstructionInput(
            masked_kspace=sample.masked_kspace.to(device),
            mask=sample.mask.to(device),
            metadata_text=list(sample.metadata_text),
            undersampling_text=list(sample.undersampling_text),
        )
        reconstruction = reconstructor.reconstruct(inputs)[0].float().cpu().numpy()
        provenance = {
            "file": sample.file[0],
            "frame": int(sample.frame[0]),
            "slice": int(sample.slice_index[0]),
            "centre": sample.centre[0],
            "vendor": sample.vendor[0],
            "modality": sample.modality[0],
            "cardiac_view": sample.cardiac_view[0],
            "mask": sample.mask_name[0],
        }
        records += _image_records(
            reconstructor.name,
            provenance,
            sample.target[0].numpy(),
            reconstruction,
            views,
            dataset.remove_oversampling,
        )
    return EvaluationResult(records)


def _evaluate_cine(
    reconstructor: CineReconstructor,
    dataset: SliceDataset,
    count: int,
    show_progress: bool,
    views: Sequence[str],
) -> EvaluationResult:
    """Score a cine method: one reconstruction per scored slice, for its scored frames."""
    slices: dict[tuple[int, int], list[int]] = defaultdict(list)
    for item in range(count):
        image = dataset.index.images[item]
        slices[(image.file_number, image.slice_index)].append(item)
    records = []
    for items in progress_bar(
        list(slices.values()), f"evaluating {reconstructor.name}", enabled=show_progress
    ):
        try:
            cine = dataset.load_cine(items[0])
        except DataFileError:
            continue  # skipped and reported by the dataset, as an unreadable image is
        frames = [dataset.index.images[item].frame for item in items]
        texts = CineTexts(cine.metadata_text, cine.undersampling_text)
        result = reconstruct_cine_with_texts(
            reconstructor, cine.masked_kspace, cine.masks, frames, texts
        )
        metadata = dataset.index.files[dataset.index.images[items[0]].file_number].metadata
        for position, frame in enumerate(frames):
            provenance = {
                "file": cine.file,
                "frame": frame,
                "slice": cine.slice_index,
                "centre": metadata.centre or UNKNOWN,
                "vendor": metadata.vendor or UNKNOWN,
                "modality": metadata.modality or UNKNOWN,
                "cardiac_view": metadata.view or UNKNOWN,
                "mask": cine.mask_name,
            }
            records += _image_records(
                reconstructor.name,
                provenance,
                cine.targets[frame],
                np.asarray(result.images[position], dtype=np.float32),
                views,
                dataset.remove_oversampling,
            )
    return EvaluationResult(records)


def _image_records(
    method: str,
    provenance: dict,
    target: np.ndarray,
    reconstruction: np.ndarray,
    views: Sequence[str],
    oversampling_removed: bool,
) -> list[dict]:
    """One record per view of one image."""
    records = []
    for view in views:
        if view == RANKING_VIEW:
            scores = evaluate_image(
                ranking_crop(target, oversampling_removed),
                ranking_crop(reconstruction, oversampling_removed),
            )
        else:
            scores = evaluate_image(target, reconstruction)
        records.append(
            {
                "method": method,
                "view": view,
                **provenance,
                "psnr": scores.psnr,
                "ssim": scores.ssim,
                "nmse": scores.nmse,
            }
        )
    return records
