"""Fixtures of the reconstruction tests: the synthetic ``tiny`` set (4 centres, every
modality, geometry sidecars) and its zero-filled reconstruction in every output format."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiomm.cli import main
from cardiomm.data.synthetic import generate_dataset


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` preset, seed 0, generated once."""
    return generate_dataset(tmp_path_factory.mktemp("tiny"), "tiny", seed=0, show_progress=False)


@pytest.fixture(scope="session")
def tiny_outputs(tiny_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every file of ``tiny_data`` reconstructed zero-filled at Uniform 4 into the .mat,
    DICOM and NIfTI formats (with --full); the output folder."""
    output = tmp_path_factory.mktemp("tiny-reconstructed") / "out"
    code = main([
        "reconstruct", "--method", "zero-filled", "--input", str(tiny_data), "--output",
        str(output), "--mask", "Uniform4", "--format", "all", "--full", "--no-preview",
    ])  # fmt: skip
    assert code == 0
    return output
