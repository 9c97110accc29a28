"""A path under a site's data that cannot be used (symlink loop, dangling symlink, permission
denied, a folder where a file belongs or the reverse) is skipped with its reason, by the
data-root walk, the partition and the readers alike; none of them raises for it."""

import json
import os
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from cardiomm.cohort.data_root import load_partition, resolve_data_root
from cardiomm.cohort.layout import find_kspace_files
from cardiomm.cohort.manifest import partition_dataset, read_manifest, write_manifest
from cardiomm.data.errors import DataFileError
from cardiomm.data.index import SliceIndex
from cardiomm.data.readers import open_series
from tests.builders import FULL_SAMPLE, write_site_file

SCANNER = "Siemens_30T_Vida"


@pytest.fixture
def root(tmp_path):
    """One centre, two patients with one good file each."""
    root = tmp_path / "data"
    for patient in ("P001", "P002"):
        write_site_file(root, "Center001", SCANNER, patient)
    return root


def _scanner_folder(root: Path) -> Path:
    return root / FULL_SAMPLE / "Center001" / SCANNER


def _reasons(root: Path) -> dict[str, str]:
    found = find_kspace_files(root)
    return {bad.path.name: bad.reason for bad in found.unreadable}


def test_a_patient_folder_that_is_a_symlink_loop_is_skipped_as_one(root):
    loop = _scanner_folder(root) / "P003"
    loop.symlink_to(loop)
    found = find_kspace_files(root)
    assert [bad.reason for bad in found.unreadable] == ["a symlink loop"]
    assert len(found.files) == 2


def test_a_dangling_symlink_is_skipped_naming_its_target(root):
    patient = _scanner_folder(root) / "P003"
    patient.mkdir()
    (patient / "cine_sax.mat").symlink_to("/nowhere/cine_sax.mat")
    assert _reasons(root) == {"cine_sax.mat": "a dangling symlink (to /nowhere/cine_sax.mat)"}


def test_an_unreadable_patient_folder_is_listed_and_the_walk_goes_on(root, deny_access):
    deny_access(_scanner_folder(root) / "P002")
    found = find_kspace_files(root)
    assert _reasons(root) == {"P002": "folder cannot be listed: permission denied"}
    assert [path.parent.name for path in found.files] == ["P001"]


def test_a_file_that_cannot_be_opened_is_listed(root, deny_access):
    deny_access(_scanner_folder(root) / "P002" / "cine_sax.mat")
    assert _reasons(root) == {"cine_sax.mat": "permission denied"}


def test_a_folder_named_as_a_kspace_file_is_listed(root):
    (_scanner_folder(root) / "P002" / "cine_lax.mat").mkdir()
    assert _reasons(root) == {"cine_lax.mat": "a folder, not a k-space file"}


def test_a_file_where_the_layout_expects_a_patient_folder_is_listed(root):
    (_scanner_folder(root) / "P003").write_text("not a folder")
    assert _reasons(root) == {"P003": "not a folder (the layout expects a folder here)"}


def test_a_symlinked_folder_is_listed_as_not_followed(root):
    (_scanner_folder(root) / "P003").symlink_to(_scanner_folder(root) / "P001")
    assert "not followed" in _reasons(root)["P003"]


def test_a_symlinked_file_leading_outside_the_data_root_is_listed(root, tmp_path):
    outside = write_site_file(tmp_path / "elsewhere", "Center001", SCANNER, "P009")
    (_scanner_folder(root) / "P002" / "cine_lax.mat").symlink_to(outside)
    assert _reasons(root)["cine_lax.mat"].startswith("a symlink leading outside the data root")


def test_a_fifo_named_as_a_kspace_file_is_listed_without_being_opened(root):
    os.mkfifo(_scanner_folder(root) / "P002" / "cine_lax.mat")  # opening it would wait
    assert _reasons(root) == {"cine_lax.mat": "not a regular file (a FIFO, socket or device)"}


def test_a_data_root_that_is_a_symlink_loop_is_one_line_naming_it(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    expected = f"^{re.escape(str(loop))}: data root is a symlink loop$"
    with pytest.raises(FileNotFoundError, match=expected):
        partition_dataset(loop, show_progress=False)


def test_a_root_whose_every_file_is_unusable_names_them(root, deny_access):
    for patient in ("P001", "P002"):
        deny_access(_scanner_folder(root) / patient)
    with pytest.raises(FileNotFoundError, match=r"2 path\(s\) skipped: .*P001 \(folder cannot"):
        find_kspace_files(root)


def test_the_partition_manifest_lists_the_unusable_paths(root):
    loop = _scanner_folder(root) / "P003"
    loop.symlink_to(loop)
    manifest = partition_dataset(root, show_progress=False)
    assert manifest["unreadable_paths"] == [{"path": str(loop), "reason": "a symlink loop"}]
    assert manifest["sites"][0]["num_files"] == 2


def test_unusable_paths_go_to_the_bad_file_report(root, tmp_path):
    loop = _scanner_folder(root) / "P003"
    loop.symlink_to(loop)
    report = tmp_path / "bad_files.jsonl"
    data = OmegaConf.create({"root": str(root), "manifest": None, "synthetic_preset": None,
                             "hold_out": [], "hold_out_count": 0, "val_fraction": 0.0,
                             "test_fraction": 0.0})  # fmt: skip
    load_partition(data, seed=0, show_progress=False, bad_file_report=report)
    line = json.loads(report.read_text())
    assert line == {"file": str(loop), "reason": "a symlink loop", "stage": "partition"}


def test_a_manifest_whose_file_became_a_symlink_loop_still_reads(root, tmp_path):
    path = write_manifest(partition_dataset(root, show_progress=False), tmp_path / "m.json")
    data_file = _scanner_folder(root) / "P002" / "cine_sax.mat"
    data_file.unlink()
    data_file.symlink_to(data_file)
    assert len(read_manifest(path)["sites"][0]["files"]) == 2


def test_the_reader_names_a_symlink_loop(tmp_path):
    loop = tmp_path / "cine_sax.mat"
    loop.symlink_to(loop)
    with pytest.raises(DataFileError, match="a symlink loop") as caught:
        open_series(loop)
    assert caught.value.path == loop


def test_the_reader_names_a_file_it_cannot_open(root, deny_access):
    data_file = _scanner_folder(root) / "P001" / "cine_sax.mat"
    deny_access(data_file)
    with pytest.raises(DataFileError, match="permission denied"):
        open_series(data_file)


def test_the_index_skips_a_dangling_symlink_with_its_reason(tmp_path):
    dangling = tmp_path / "cine_lax.mat"
    dangling.symlink_to(tmp_path / "gone.mat")
    index = SliceIndex.build([dangling], show_progress=False)
    assert index.files == []
    assert index.bad_files[0].reason == f"a dangling symlink (to {tmp_path / 'gone.mat'})"


def test_a_configured_data_root_that_is_a_symlink_loop_is_named_as_one(tmp_path):
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(FileNotFoundError, match="data root is a symlink loop"):
        resolve_data_root(OmegaConf.create({"root": str(loop), "synthetic_preset": None}))
