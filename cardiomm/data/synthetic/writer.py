"""Output in the CMRxRecon 2025 layout: k-space .mat files, per-file sidecars, the manifest.

For ``.../P001/cine_sax.mat`` the generator writes beside it:

- ``cine_sax.json``: the series' description and ground truth (scanner, sequence with
  inversion / T2-prep times, SNR, coils before and after compression, vendor scale, disease,
  ejection fraction and true LV volume per frame, the subject's parameters).
- ``cine_sax_labels.npz``: ``labels`` uint8 tissue labels with the k-space's shape minus the
  coil axis, on the stored k-space grid (readout oversampling included); mapping series add
  the true ``t1_ms`` or ``t2_ms`` maps (slices, ky, kx).

The dataset root gets ``synthetic_manifest.json`` (generator version, preset, seed, centres).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.synthetic.scan import SimulatedSeries
from cardiomm.data.synthetic.series import SeriesSpec
from cardiomm.data.synthetic.sites import SiteProfile

MANIFEST_NAME = "synthetic_manifest.json"
KSPACE_VARIABLE = "kspace_full"


def series_relative_path(site: SiteProfile, patient: str, spec: SeriesSpec) -> Path:
    """``MultiCoil/{Modality}/TrainingSet/FullSample/Center00X/{scanner}/P00X/<stem>.mat``."""
    return (
        Path("MultiCoil")
        / spec.folder
        / "TrainingSet"
        / "FullSample"
        / site.centre
        / site.scanner_folder
        / patient
        / f"{spec.stem}.mat"
    )


def sidecar_paths(kspace_path: str | Path) -> tuple[Path, Path]:
    """(JSON sidecar, label file) of a synthetic k-space file."""
    path = Path(kspace_path)
    return path.with_suffix(".json"), path.with_name(f"{path.stem}_labels.npz")


def write_series(path: Path, series: SimulatedSeries) -> int:
    """Write the .mat file and its sidecars; returns the bytes written."""
    write_mat_v73(path, {KSPACE_VARIABLE: series.kspace})
    json_path, labels_path = sidecar_paths(path)
    json_path.write_text(json.dumps(series.sidecar, indent=1, sort_keys=True, default=_plain))
    with open(labels_path, "wb") as handle:
        np.savez_compressed(handle, labels=series.labels, **series.parameter_maps)
    return sum(item.stat().st_size for item in (path, json_path, labels_path))


def write_manifest(root: Path, manifest: dict[str, object]) -> Path:
    path = root / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=1, default=_plain))
    return path


def read_manifest(root: str | Path) -> dict[str, object] | None:
    """The manifest of a synthetic dataset root, or None when there is none."""
    path = Path(root) / MANIFEST_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def read_sidecar(kspace_path: str | Path) -> dict[str, object]:
    """The JSON sidecar of a synthetic k-space file."""
    return json.loads(sidecar_paths(kspace_path)[0].read_text())


def read_labels(kspace_path: str | Path) -> dict[str, np.ndarray]:
    """Labels (and true parameter maps) of a synthetic k-space file."""
    with np.load(sidecar_paths(kspace_path)[1]) as data:
        return {name: data[name] for name in data.files}


def _plain(value: object) -> object:
    # numpy scalars and arrays inside dataclass dumps.
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
