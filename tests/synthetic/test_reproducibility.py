"""Same seed, same k-space; another seed, another data set."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cardiomm.data.synthetic.generate import make_file, plan_dataset
from cardiomm.data.synthetic.sites import get_preset
from tests.synthetic.conftest import read_kspace


def _make(root: Path, seed: int, stem: str) -> np.ndarray:
    preset = get_preset("tiny")
    task = next(task for task in plan_dataset(preset) if task.spec.stem == stem)
    make_file(root, task, preset, seed)
    return read_kspace(root / task.relative_path)


def test_same_seed_gives_byte_identical_kspace(tmp_path: Path, tiny_root: Path) -> None:
    again = _make(tmp_path / "again", 0, "cine_sax")
    first = read_kspace(
        tiny_root
        / next(task.relative_path for task in plan_dataset("tiny") if task.spec.stem == "cine_sax")
    )
    assert again.dtype == first.dtype
    assert again.tobytes() == first.tobytes()


def test_different_seed_gives_different_kspace(tmp_path: Path) -> None:
    zero = _make(tmp_path / "zero", 0, "T2map")
    one = _make(tmp_path / "one", 1, "T2map")
    assert zero.shape == one.shape
    assert not np.allclose(zero, one)
