"""Reconstructions written in the CMRxRecon submission layout, and the run's summary.

Layout under the output folder ``OUT``:

- ``OUT/<relative path>``: one MATLAB v7.3 file per input file, at the input's path below the
  common input root (the folders given, or the folders of the files given). Undersampled
  inputs keep their name (``ValidationSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P007/
  cine_lax_3ch_kus_Uniform8.mat``); a fully sampled input is named after the undersampling
  simulated on it, ``cine_sax.mat`` -> ``cine_sax_kus_ktGaussian16.mat``, always ``.mat``.
  Variables:

  - ``img4ranking``: single, the images the challenge ranks (:func:`ranking_volume`): the
    two central slices (all when fewer than 3), the first three frames (every frame of
    mapping series), magnitude, centre-cropped to (round(ky / 2), round(kx / 3)). h5py shape
    (frames, slices, ky_crop, kx_crop), which MATLAB reads as (kx_crop, ky_crop, slices,
    frames), as the challenge's ``run4Ranking.m`` writes it.
  - ``reconstruction`` (with ``--full``): single, every frame and slice, uncropped, h5py
    (frames, slices, ky, kx) = MATLAB (kx, ky, slices, frames).

- ``OUT/previews/<relative path with .png>``: a picture per file (:mod:`cardiomm.recon.preview`).
- ``OUT/dicom/<relative path without suffix>/``, ``OUT/nifti/<relative path>.nii.gz``: the
  clinical formats (:mod:`cardiomm.recon.dicom`, :mod:`cardiomm.recon.nifti`).
- ``OUT/reconstruction_summary.csv``: one row per input file (:data:`SUMMARY_FIELDS`), skipped
  files and failed reconstructions included with the reason.

A folder that already holds any of these is not written into unless the caller says so
(:func:`existing_results`); nothing here writes a volume with NaN or Inf values.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from cardiomm.data.matlab import write_mat_v73
from cardiomm.metrics import ranking_crop, ranking_frames, ranking_slices

RANKING_VARIABLE = "img4ranking"
FULL_VARIABLE = "reconstruction"
PREVIEW_FOLDER = "previews"
DICOM_FOLDER = "dicom"
NIFTI_FOLDER = "nifti"
SUMMARY_FILE = "reconstruction_summary.csv"
DATA_SUFFIX = ".mat"
SUMMARY_FIELDS = (
    "input",
    "output",
    "status",
    "reason",
    "method",
    "mask",
    "mask_source",
    "sampling_fraction",
    "frames",
    "slices",
    "seconds",
    "psnr",
    "ssim",
    "nmse",
)
# Official mask files (<stem>_mask.mat, <stem>_mask_ktRadial16.mat) sit among the data (2023)
# or in Mask_Task* folders; they hold no k-space.
_MASK_FILE_STEM = re.compile(r"_mask(_[A-Za-z]+\d+)?$")


@dataclasses.dataclass(frozen=True)
class InputFiles:
    """The files to reconstruct and the folder their output paths are taken relative to."""

    files: list[Path]
    root: Path

    def relative(self, path: Path) -> Path:
        """``path`` below :attr:`root`."""
        return path.relative_to(self.root)


def find_inputs(paths: Iterable[str | Path], exclude: str | Path | None = None) -> InputFiles:
    """Expand ``--input`` arguments into k-space files.

    Args:
        paths: files (used as given, any format the readers take) and folders (searched
            recursively for ``.mat`` files, official mask files left out).
        exclude: a folder whose files are never inputs (the output folder, when it lies
            inside an input folder).

    Raises:
        FileNotFoundError: a path does not exist, or no file is found.
    """
    excluded = Path(exclude).resolve() if exclude is not None else None
    files: list[Path] = []
    roots: list[Path] = []
    for given in (Path(path) for path in paths):
        if given.is_dir():
            roots.append(given.resolve())
            files.extend(
                found
                # Not only files: a symlink loop, a dangling symlink or a folder named .mat
                # is an input the reader refuses by name (a skipped row), not one left out.
                for found in sorted(given.resolve().rglob(f"*{DATA_SUFFIX}"))
                if _MASK_FILE_STEM.search(found.stem) is None
                and not (excluded is not None and found.is_relative_to(excluded))
            )
        elif given.is_file():
            roots.append(given.resolve().parent)
            files.append(given.resolve())
        else:
            raise FileNotFoundError(f"{given}: no such file or folder")
    files = list(dict.fromkeys(files))
    if not files:
        listing = ", ".join(str(path) for path in paths)
        raise FileNotFoundError(f"no k-space .mat files found in {listing}")
    return InputFiles(files, Path(os.path.commonpath(roots)))


def output_relative_path(relative_input: Path, mask_name: str, is_undersampled: bool) -> Path:
    """Where a file's reconstruction goes below the output folder.

    ``.../cine_lax_3ch_kus_Uniform8.mat`` (undersampled) stays as it is; fully sampled
    ``.../cine_sax.mat`` becomes ``.../cine_sax_kus_<mask_name>.mat``.
    """
    if is_undersampled:
        return relative_input.with_suffix(DATA_SUFFIX)
    return relative_input.with_name(f"{relative_input.stem}_kus_{mask_name}{DATA_SUFFIX}")


def existing_results(folder: str | Path) -> list[Path]:
    """What in ``folder`` a reconstruction writes and a new one would overwrite: the summary,
    the preview, DICOM and NIfTI folders, then any other ``.mat`` file below it (sorted; []
    when the folder does not exist)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    named = [
        folder / name
        for name in (SUMMARY_FILE, PREVIEW_FOLDER, DICOM_FOLDER, NIFTI_FOLDER)
        if (folder / name).exists()
    ]
    return named + sorted(folder.rglob(f"*{DATA_SUFFIX}"))


def preview_relative_path(relative_output: Path) -> Path:
    """``previews/<relative output path>`` with ``.png``."""
    return Path(PREVIEW_FOLDER) / relative_output.with_suffix(".png")


def ranking_volume(
    volume: np.ndarray, is_mapping: bool, oversampling_removed: bool = False
) -> np.ndarray:
    """The images the CMRxRecon ranking scores.

    Args:
        volume: (frames, slices, ky, kx) magnitude (or complex: the magnitude is taken).
        is_mapping: every frame is ranked (parametric mapping series).
        oversampling_removed: kx is the halved readout (the crop keeps round(2 kx / 3)).

    Returns:
        float32 (frames_ranked, slices_ranked, round(ky / 2), round(kx / 3) of the file's
        readout), C-contiguous.
    """
    frames = ranking_frames(volume.shape[0], is_mapping)
    slices = ranking_slices(volume.shape[1])
    selected = np.abs(volume[np.ix_(frames, slices)])
    return np.ascontiguousarray(ranking_crop(selected, oversampling_removed), dtype=np.float32)


def write_reconstruction(
    path: str | Path,
    volume: np.ndarray,
    is_mapping: bool,
    full: bool = False,
    oversampling_removed: bool = False,
) -> Path:
    """Write one file's submission ``.mat`` (see the module docstring).

    Args:
        path: the ``.mat`` to write (folders are made).
        volume: float32 (frames, slices, ky, kx) magnitude images.
        is_mapping: every frame is ranked (parametric mapping series).
        full: also store the whole volume as ``reconstruction``.
        oversampling_removed: the volume's readout is halved already.

    Raises:
        ValueError: ``volume`` holds NaN or Inf (nothing is written).
    """
    if not np.isfinite(volume).all():
        raise ValueError(
            f"{path}: the volume holds {np.count_nonzero(~np.isfinite(volume))} NaN or Inf "
            "values; no submission file is written for it"
        )
    variables = {RANKING_VARIABLE: ranking_volume(volume, is_mapping, oversampling_removed)}
    if full:
        variables[FULL_VARIABLE] = np.ascontiguousarray(volume, dtype=np.float32)
    return write_mat_v73(path, variables)


@dataclasses.dataclass
class FileSummary:
    """One row of the summary: a reconstructed (``ok``), a ``skipped`` (unusable input) or a
    failed (``error``: the method's output was unusable) file.

    Scores are the official PSNR / SSIM / NMSE averaged over the ranked images; NaN when
    there is no reference (undersampled input) or the file was skipped.
    """

    input: Path
    status: str
    output: Path | None = None
    reason: str = ""
    method: str = ""
    mask: str = ""
    mask_source: str = ""
    sampling_fraction: float = math.nan
    frames: int = 0
    slices: int = 0
    seconds: float = math.nan
    psnr: float = math.nan
    ssim: float = math.nan
    nmse: float = math.nan

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def as_row(self) -> dict[str, str | int | float]:
        """The CSV row: empty cells for missing values."""
        row: dict[str, str | int | float] = {}
        for field in SUMMARY_FIELDS:
            value = getattr(self, field)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                row[field] = ""
            elif isinstance(value, float):
                row[field] = f"{value:.6g}"
            else:
                row[field] = str(value) if isinstance(value, Path) else value
        return row


def write_summary(path: str | Path, rows: Sequence[FileSummary]) -> Path:
    """Write :data:`SUMMARY_FIELDS` for every file to a CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_FIELDS)
        writer.writeheader()
        writer.writerows(row.as_row() for row in rows)
    return path
