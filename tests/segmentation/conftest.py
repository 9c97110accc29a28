"""Fixtures of the segmentation tests: one patient's synthetic cine short-axis file."""

import dataclasses

import pytest

from cardiomm.data.synthetic import generate_dataset, get_preset


@pytest.fixture(scope="session")
def cine_sax_path(tmp_path_factory):
    """The generated cine_sax.mat of one tiny-preset patient (labels and sidecar beside it)."""
    tiny = get_preset("tiny")
    site = dataclasses.replace(tiny.sites[0], patients=1, series=("cine_sax",))
    preset = dataclasses.replace(tiny, name="segmentation", sites=(site,))
    root = generate_dataset(tmp_path_factory.mktemp("cine"), preset, seed=0, show_progress=False)
    (path,) = sorted(root.rglob("cine_sax.mat"))
    return path
