"""Fixtures of the synthetic generator's tests: one ``tiny`` data set shared by the session."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from cardiomm.data.synthetic import DatasetPreset, generate_dataset, get_preset, read_manifest


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset, seed 0, generated once."""
    return generate_dataset(tmp_path_factory.mktemp("tiny"), "tiny", seed=0, show_progress=False)


@pytest.fixture(scope="session")
def tiny_files(tiny_root: Path) -> list[dict]:
    """The manifest's file entries of the ``tiny`` data set."""
    return read_manifest(tiny_root)["files"]


def read_kspace(path: Path) -> np.ndarray:
    """complex64 ``kspace_full`` of a generated file, h5py axis order."""
    with h5py.File(path, "r") as handle:
        stored = handle["kspace_full"][()]
    return stored["real"] + 1j * stored["imag"]


@pytest.fixture(scope="session")
def micro_preset() -> DatasetPreset:
    """One patient, one small series: for tests of the dataset machinery, not of the data."""
    tiny = get_preset("tiny")
    site = dataclasses.replace(tiny.sites[0], patients=1, series=("T2map",))
    return DatasetPreset("micro", "one T2 map", tiny.protocol, (site,))
