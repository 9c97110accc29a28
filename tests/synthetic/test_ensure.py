"""``ensure_synthetic_dataset``: made on first use, reused after, never mixed up."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cardiomm.data.synthetic import (
    GENERATOR_VERSION,
    MANIFEST_NAME,
    ensure_synthetic_dataset,
    read_manifest,
)
from cardiomm.data.synthetic.generate import INCOMPLETE_MARKER


def test_existing_dataset_is_reused_untouched(tiny_root: Path) -> None:
    manifest = tiny_root / MANIFEST_NAME
    before = manifest.stat().st_mtime_ns
    assert ensure_synthetic_dataset(tiny_root, "tiny", seed=0) == tiny_root
    assert manifest.stat().st_mtime_ns == before


def test_first_use_makes_the_dataset(tmp_path: Path, micro_preset) -> None:
    root = ensure_synthetic_dataset(tmp_path / "new", micro_preset, seed=3, show_progress=False)
    assert read_manifest(root)["seed"] == 3


def test_another_seed_in_the_same_directory_is_refused(tiny_root: Path) -> None:
    with pytest.raises(FileExistsError, match="seed"):
        ensure_synthetic_dataset(tiny_root, "tiny", seed=1)


def test_unfinished_dataset_is_made_again(tmp_path: Path, micro_preset) -> None:
    (tmp_path / INCOMPLETE_MARKER).write_text(json.dumps({"preset": "micro", "seed": 0}))
    (tmp_path / "MultiCoil").mkdir()
    ensure_synthetic_dataset(tmp_path, micro_preset, seed=0, show_progress=False)
    manifest = read_manifest(tmp_path)
    assert manifest["generator_version"] == GENERATOR_VERSION
    assert manifest["preset"] == "micro" and manifest["seed"] == 0
    assert not (tmp_path / INCOMPLETE_MARKER).exists()
    assert all((tmp_path / entry["path"]).is_file() for entry in manifest["files"])


def test_manifest_summarises_every_centre(tiny_root: Path) -> None:
    manifest = read_manifest(tiny_root)
    assert manifest["suggested_held_out"] == ["Center003", "Center004"]
    assert [centre["centre"] for centre in manifest["centres"]] == [
        "Center001",
        "Center002",
        "Center003",
        "Center004",
    ]
    for centre in manifest["centres"]:
        assert centre["bytes_written"] > 0 and centre["slices"] > 0
    assert manifest["totals"]["files"] == len(manifest["files"])
