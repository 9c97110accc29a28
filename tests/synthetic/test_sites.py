"""Centres differ measurably: SNR, coil count before compression, intensity scale, matrix."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage

from cardiomm.data.synthetic import read_labels, read_sidecar
from cardiomm.data.synthetic.acquisition import ifft2c
from cardiomm.data.synthetic.labels import SOFT_TISSUE_LABELS
from tests.synthetic.conftest import read_kspace


def _first_cine_sax_per_centre(root: Path, files: list[dict]) -> dict[str, Path]:
    chosen: dict[str, Path] = {}
    for entry in files:
        if entry["stem"] == "cine_sax" and entry["centre"] not in chosen:
            chosen[entry["centre"]] = root / entry["path"]
    return chosen


def _measured_snr(path: Path) -> float:
    """Mean soft-tissue RSS over the noise std per coil, the noise taken in air far from the
    body (ringing of the body edges stays out of the estimate)."""
    kspace = read_kspace(path)
    labels = read_labels(path)["labels"]
    coil_power = np.sum(np.abs(ifft2c(kspace)) ** 2, axis=2)
    air = ~ndimage.binary_dilation(labels > 0, structure=np.ones((1, 1, 3, 3)), iterations=4)
    noise = np.sqrt(coil_power[air].mean() / kspace.shape[2])
    return float(np.sqrt(coil_power)[np.isin(labels, SOFT_TISSUE_LABELS)].mean() / noise)


def test_centres_differ_in_snr_measured_from_the_kspace(tiny_root: Path, tiny_files) -> None:
    paths = _first_cine_sax_per_centre(tiny_root, tiny_files)
    stated = {centre: read_sidecar(path)["snr"] for centre, path in paths.items()}
    measured = {centre: _measured_snr(path) for centre, path in paths.items()}
    # The low-field centre is the noisiest, by a wide margin, in the data themselves.
    assert min(measured, key=measured.get) == min(stated, key=stated.get)
    assert max(measured.values()) > 2 * min(measured.values())
    for centre in paths:
        # Compression and residual edge ringing make the estimate a little pessimistic.
        assert 0.6 * stated[centre] < measured[centre] < 1.1 * stated[centre]


def test_centres_differ_in_raw_coil_count(tiny_root: Path, tiny_files) -> None:
    sidecars = [
        read_sidecar(path) for path in _first_cine_sax_per_centre(tiny_root, tiny_files).values()
    ]
    raw = [sidecar["coils_raw"] for sidecar in sidecars]
    assert len(set(raw)) == len(raw)
    assert all(sidecar["coils"] == 4 < sidecar["coils_raw"] for sidecar in sidecars)


def test_vendors_store_kspace_in_units_orders_of_magnitude_apart(
    tiny_root: Path, tiny_files
) -> None:
    levels: dict[str, float] = {}
    for path in _first_cine_sax_per_centre(tiny_root, tiny_files).values():
        vendor = read_sidecar(path)["vendor"]
        levels[vendor] = float(np.log10(np.median(np.abs(read_kspace(path)))))
    ordered = sorted(levels.values())
    assert len(ordered) >= 3
    assert all(high - low > 1.0 for low, high in itertools.pairwise(ordered))


def test_centres_differ_in_matrix_size(tiny_root: Path, tiny_files) -> None:
    shapes = [
        read_kspace(path).shape[-2:]
        for path in _first_cine_sax_per_centre(tiny_root, tiny_files).values()
    ]
    assert len(set(shapes)) == len(shapes)
    assert all(kx % 2 == 0 for _, kx in shapes)
