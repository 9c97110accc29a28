"""Make a whole synthetic consortium: plan the files, simulate them, write them, summarise.

Every file draws from its own random stream, seeded by (seed, centre number, patient,
series), so a file is the same whatever order or process it is made in, the same seed gives
identical arrays and another seed another data set. A patient's series share one subject
(and exam field maps and coil placement); the same centre number and patient in two presets
are the same subject (the quick and standard study sets hold the same patients at two
resolutions), and presets with other centre numbers hold other patients.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from cardiomm.data.synthetic.scan import simulate_series
from cardiomm.data.synthetic.series import SERIES, SeriesSpec
from cardiomm.data.synthetic.sites import DatasetPreset, SiteProfile, get_preset
from cardiomm.data.synthetic.subjects import Subject, sample_subject
from cardiomm.data.synthetic.writer import (
    MANIFEST_NAME,
    read_manifest,
    series_relative_path,
    sidecar_paths,
    write_manifest,
    write_series,
)
from cardiomm.progress import progress_bar

# 2.0: clinical-resolution study presets, vendor chains, segmented-cine motion and flow.
GENERATOR_VERSION = "2.0"
MANIFEST_FORMAT = "cardiomm-fl synthetic dataset"
# Present while a generation runs: a root holding it is an unfinished synthetic data set.
INCOMPLETE_MARKER = ".synthetic_incomplete"
_SERIES_CODES = {stem: index + 1 for index, stem in enumerate(SERIES)}


@dataclasses.dataclass(frozen=True)
class FileTask:
    """One file to make.

    Attributes:
        site_index: position of the site in the preset.
        site: the centre and scanner.
        patient_index: 0-based patient number within the site.
        spec: the series.
        shape: k-space shape as stored.
        relative_path: the .mat path under the dataset root.
    """

    site_index: int
    site: SiteProfile
    patient_index: int
    spec: SeriesSpec
    shape: tuple[int, ...]
    relative_path: Path

    @property
    def patient(self) -> str:
        return f"P{self.patient_index + 1:03d}"

    @property
    def num_slices(self) -> int:
        return self.shape[-4]

    @property
    def num_images(self) -> int:
        return math.prod(self.shape[:-3])

    @property
    def kspace_bytes(self) -> int:
        return math.prod(self.shape) * np.dtype(np.complex64).itemsize


def plan_dataset(preset: DatasetPreset | str) -> list[FileTask]:
    """Every file of a preset with its shape, without simulating anything."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    tasks = []
    for site_index, site in enumerate(preset.sites):
        for patient_index in range(site.patients):
            for stem in site.series:
                spec = SERIES[stem]
                patient = f"P{patient_index + 1:03d}"
                tasks.append(
                    FileTask(
                        site_index,
                        site,
                        patient_index,
                        spec,
                        site.kspace_shape(spec, preset.protocol),
                        series_relative_path(site, patient, spec),
                    )
                )
    return tasks


# Sets larger than this are made by several processes on first use (smaller ones are done
# before the processes would have started).
PARALLEL_FROM_BYTES = 500_000_000
# HDF5 headers, MATLAB's bookkeeping and the JSON sidecars on top of the k-space itself.
_FILE_OVERHEAD = 1.05


class InsufficientSpaceError(OSError):
    """Not enough free disk space for what is about to be written; nothing was written."""


def planned_bytes(preset: DatasetPreset | str) -> int:
    """About how many bytes a preset's data set takes on disk."""
    return int(sum(task.kspace_bytes for task in plan_dataset(preset)) * _FILE_OVERHEAD)


def check_free_space(root: Path, needed: int, what: str) -> None:
    """Raise InsufficientSpaceError when the disk holding ``root`` (or its nearest existing
    parent) has less than ``needed`` bytes free."""
    existing = Path(root).resolve()
    while not existing.exists():
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed:
        raise InsufficientSpaceError(
            f"{what} needs about {needed / 1e9:.2f} GB at {root}, but only {free / 1e9:.2f} GB "
            "is free there; choose another --output / data.root or free some space"
        )


def centre_summaries(preset: DatasetPreset | str) -> list[dict[str, object]]:
    """Per-centre totals of a preset's plan: patients, files, slices, 2D images, k-space bytes."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    by_centre: dict[str, list[FileTask]] = collections.defaultdict(list)
    for task in plan_dataset(preset):
        by_centre[task.site.centre].append(task)
    summaries = []
    for site in preset.sites:
        tasks = by_centre[site.centre]
        summaries.append(
            {
                **site.identity(),
                "patients": site.patients,
                "files": len(tasks),
                "slices": sum(task.num_slices for task in tasks),
                "images": sum(task.num_images for task in tasks),
                "kspace_bytes": sum(task.kspace_bytes for task in tasks),
                "raw_coils": site.raw_coils,
                "snr": site.snr,
                "intensity_scale": site.intensity_scale,
                "matrix": list(site.matrix),
                "fov_mm": list(site.fov_mm),
                "series": list(site.series),
            }
        )
    return summaries


def subject_for(seed: int, centre_number: int, patient_index: int) -> Subject:
    """The patient of (seed, centre number, patient): the same in every series of that
    patient."""
    return sample_subject(np.random.default_rng([seed, centre_number, patient_index]))


def make_file(root: Path, task: FileTask, preset: DatasetPreset, seed: int) -> int:
    """Simulate and write one file (and its sidecars); returns the bytes written."""
    subject = subject_for(seed, task.site.number, task.patient_index)
    rng = np.random.default_rng(
        [seed, task.site.number, task.patient_index, _SERIES_CODES[task.spec.stem]]
    )
    series = simulate_series(task.site, preset.protocol, subject, task.spec, rng)
    series.sidecar.update(
        {
            "generator_version": GENERATOR_VERSION,
            "preset": preset.name,
            "seed": seed,
            "patient": task.patient,
            "file": task.relative_path.as_posix(),
        }
    )
    return write_series(root / task.relative_path, series)


def generate_dataset(
    root: str | Path,
    preset: DatasetPreset | str = "tiny",
    seed: int = 0,
    overwrite: bool = False,
    workers: int = 1,
    show_progress: bool = True,
) -> Path:
    """Write a synthetic multi-centre, multi-vendor data set in the CMRxRecon 2025 layout.

    Args:
        root: output directory; made if absent.
        preset: ``tiny``, ``small``, ``paper`` or a :class:`DatasetPreset`.
        seed: the same seed gives identical k-space, another seed another data set.
        overwrite: replace the synthetic data set already at ``root`` (only what the generator
            writes is removed; other files stay).
        workers: processes simulating files in parallel.
        show_progress: rich progress bar over files.

    Returns:
        ``root``.

    Raises:
        FileExistsError: ``root`` is not empty and ``overwrite`` is False, or it holds a
            ``MultiCoil`` tree the generator did not write.
        InsufficientSpaceError: the disk holding ``root`` has less free space than the set
            needs (nothing is written).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    root = Path(root)
    tasks = plan_dataset(preset)
    check_free_space(root, planned_bytes(preset), f"the synthetic '{preset.name}' set")
    _prepare_root(root, overwrite)
    (root / INCOMPLETE_MARKER).write_text(json.dumps({"preset": preset.name, "seed": seed}))
    description = f"synthetic {preset.name}"
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = [pool.submit(make_file, root, task, preset, seed) for task in tasks]
            sizes = [
                future.result() for future in progress_bar(futures, description, show_progress)
            ]
    else:
        sizes = [
            make_file(root, task, preset, seed)
            for task in progress_bar(tasks, description, show_progress)
        ]
    write_manifest(root, _manifest(preset, seed, tasks, sizes))
    (root / INCOMPLETE_MARKER).unlink()
    return root


def ensure_synthetic_dataset(
    root: str | Path,
    preset: DatasetPreset | str = "tiny",
    seed: int = 0,
    show_progress: bool = True,
    workers: int | None = None,
) -> Path:
    """The synthetic data set at ``root``, made on first use.

    An existing complete data set of the same preset, seed and generator version is reused;
    an unfinished one (interrupted generation) is made again, with ``workers`` processes
    (default: one per core, at most 4, for sets over :data:`PARALLEL_FROM_BYTES`; the files
    are the same whatever the count).

    Raises:
        FileExistsError: ``root`` holds something else (another preset or seed, other data).
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    root = Path(root)
    manifest = read_manifest(root)
    unfinished = (root / INCOMPLETE_MARKER).exists()
    if manifest is not None and not unfinished:
        wanted = (MANIFEST_FORMAT, GENERATOR_VERSION, preset.name, seed)
        found = (
            manifest.get("format"),
            manifest.get("generator_version"),
            manifest.get("preset"),
            manifest.get("seed"),
        )
        if found == wanted:
            return root
        raise FileExistsError(
            f"{root} holds synthetic data set (format, version, preset, seed) = {found}, "
            f"not {wanted}; use another directory or generate_dataset(..., overwrite=True)"
        )
    if workers is None:
        large = planned_bytes(preset) > PARALLEL_FROM_BYTES
        workers = max(1, min(4, os.cpu_count() or 1)) if large else 1
    return generate_dataset(
        root, preset, seed, overwrite=unfinished, workers=workers, show_progress=show_progress
    )


def _prepare_root(root: Path, overwrite: bool) -> None:
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"{root} exists and is not a directory")
    if not root.exists() or not any(root.iterdir()):
        root.mkdir(parents=True, exist_ok=True)
        return
    if not overwrite:
        raise FileExistsError(
            f"{root} is not empty; choose an empty directory or pass --overwrite "
            "(overwrite=True) to replace the synthetic data set there"
        )
    ours = (root / MANIFEST_NAME).exists() or (root / INCOMPLETE_MARKER).exists()
    if (root / "MultiCoil").exists():
        if not ours:
            raise FileExistsError(
                f"{root}/MultiCoil was not written by the synthetic generator "
                "(no synthetic_manifest.json); refusing to delete it"
            )
        shutil.rmtree(root / "MultiCoil")
    (root / MANIFEST_NAME).unlink(missing_ok=True)


def _manifest(
    preset: DatasetPreset, seed: int, tasks: list[FileTask], sizes: list[int]
) -> dict[str, object]:
    centres = centre_summaries(preset)
    written: dict[str, int] = collections.Counter()
    for task, size in zip(tasks, sizes, strict=True):
        written[task.site.centre] += size
    for centre in centres:
        centre["bytes_written"] = written[str(centre["centre"])]
    files = []
    for task in tasks:
        json_path, labels_path = sidecar_paths(task.relative_path)
        files.append(
            {
                "path": task.relative_path.as_posix(),
                "sidecar": json_path.as_posix(),
                "labels": labels_path.as_posix(),
                "centre": task.site.centre,
                "patient": task.patient,
                "stem": task.spec.stem,
                "shape": list(task.shape),
            }
        )
    return {
        "format": MANIFEST_FORMAT,
        "generator_version": GENERATOR_VERSION,
        "preset": preset.name,
        "description": preset.description,
        "seed": seed,
        "protocol": dataclasses.asdict(preset.protocol),
        "suggested_held_out": [site.centre for site in preset.sites if site.held_out],
        "centres": centres,
        "totals": {
            "files": len(tasks),
            "slices": sum(task.num_slices for task in tasks),
            "images": sum(task.num_images for task in tasks),
            "bytes_written": sum(sizes),
        },
        "files": files,
    }
