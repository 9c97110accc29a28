"""The files are MATLAB v7.3 as CMRxRecon distributes them, and their images look like the
anatomy they were made from."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from cardiomm.data.synthetic import read_labels, read_sidecar
from cardiomm.data.synthetic.acquisition import ifft2c
from cardiomm.data.synthetic.labels import SOFT_TISSUE_LABELS, Label
from tests.synthetic.conftest import read_kspace


def test_files_carry_the_matlab_header_and_class(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        path = tiny_root / entry["path"]
        assert path.read_bytes()[:19] == b"MATLAB 7.3 MAT-file"
        with h5py.File(path, "r") as handle:
            dataset = handle["kspace_full"]
            assert dataset.attrs["MATLAB_class"] == b"single"
            assert dataset.dtype.names == ("real", "imag")
            assert list(dataset.shape) == entry["shape"]


def test_frameless_series_are_four_dimensional(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        expected = 4 if entry["stem"] in ("T1w", "T2w", "blackblood") else 5
        assert len(entry["shape"]) == expected


def test_labels_have_the_kspace_shape_without_coils(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        labels = read_labels(tiny_root / entry["path"])["labels"]
        shape = list(entry["shape"])
        assert labels.dtype == np.uint8
        assert list(labels.shape) == shape[:-3] + shape[-2:]


def test_rss_image_shows_the_labelled_body(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        path = tiny_root / entry["path"]
        rss = np.sqrt(np.sum(np.abs(ifft2c(read_kspace(path))) ** 2, axis=-3))
        labels = read_labels(path)["labels"]
        tissue = np.isin(labels, SOFT_TISSUE_LABELS)
        air = labels == Label.BACKGROUND
        assert rss[tissue].mean() > 3 * rss[air].mean(), entry["path"]
        assert np.corrcoef(rss.ravel(), tissue.ravel())[0, 1] > 0.3, entry["path"]


def test_cine_blood_pool_is_brighter_than_myocardium(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        if entry["stem"] != "cine_sax":
            continue
        path = tiny_root / entry["path"]
        rss = np.sqrt(np.sum(np.abs(ifft2c(read_kspace(path))) ** 2, axis=-3))
        labels = read_labels(path)["labels"]
        blood = rss[labels == Label.LV_BLOOD].mean()
        assert blood > 1.3 * rss[labels == Label.LV_MYOCARDIUM].mean(), entry["path"]


def test_sidecars_hold_the_acquisition_truth(tiny_root: Path, tiny_files) -> None:
    for entry in tiny_files:
        path = tiny_root / entry["path"]
        sidecar = read_sidecar(path)
        frames = entry["shape"][0] if len(entry["shape"]) == 5 else 1
        assert sidecar["coils_raw"] > sidecar["coils"]
        assert sidecar["snr"] > 0 and sidecar["intensity_scale"] > 0
        assert sidecar["disease"] in ("healthy", "dilated", "hypertrophic", "infarct")
        if entry["stem"] == "T1map":
            assert len(sidecar["sequence"]["inversion_times_ms"]) == frames
            assert read_labels(path)["t1_ms"].shape == tuple(
                entry["shape"][1:2] + entry["shape"][-2:]
            )
        if entry["stem"] == "T2map":
            assert sidecar["sequence"]["t2_prep_ms"] == [0.0, 35.0, 55.0]
        if entry["stem"] == "cine_sax":
            assert len(sidecar["cardiac"]["lv_volume_ml"]) == frames
            assert 0.1 < sidecar["cardiac"]["ejection_fraction"] < 0.85
