"""``cardiomm make-synthetic``: writes a data set, never loses data."""

from __future__ import annotations

from pathlib import Path

import pytest

from cardiomm.cli import main
from cardiomm.data.synthetic import MANIFEST_NAME, generate_dataset, read_manifest


def test_make_synthetic_refuses_a_non_empty_directory(tmp_path: Path, capsys) -> None:
    keep = tmp_path / "notes.txt"
    keep.write_text("precious")
    assert main(["make-synthetic", "--output", str(tmp_path)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert keep.read_text() == "precious"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["notes.txt"]


def test_overwrite_never_deletes_a_multicoil_tree_it_did_not_write(tmp_path: Path, capsys) -> None:
    real = tmp_path / "MultiCoil" / "Cine" / "cine_sax.mat"
    real.parent.mkdir(parents=True)
    real.write_bytes(b"real data")
    assert main(["make-synthetic", "--output", str(tmp_path), "--overwrite"]) == 2
    assert "refusing to delete" in capsys.readouterr().err
    assert real.read_bytes() == b"real data"


def test_make_synthetic_writes_tiny_and_prints_the_centres(tmp_path: Path, capsys) -> None:
    output = tmp_path / "synthetic"
    assert main(["make-synthetic", "--output", str(output), "--seed", "5"]) == 0
    printed = capsys.readouterr().out
    assert all(f"Center00{number}" in printed for number in range(1, 5))
    assert "wrote 17 files" in printed and str(output) in printed
    assert '"seed": 5' in (output / MANIFEST_NAME).read_text()


def test_overwrite_replaces_the_dataset_and_keeps_other_files(tmp_path: Path, micro_preset) -> None:
    generate_dataset(tmp_path, micro_preset, seed=1, show_progress=False)
    (tmp_path / "notes.txt").write_text("kept")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_dataset(tmp_path, micro_preset, seed=2, show_progress=False)
    generate_dataset(tmp_path, micro_preset, seed=2, overwrite=True, show_progress=False)
    assert read_manifest(tmp_path)["seed"] == 2
    assert (tmp_path / "notes.txt").read_text() == "kept"
