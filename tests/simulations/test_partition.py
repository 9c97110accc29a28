"""Site partitioning of a 2025-layout root: sites, held-out centres, splits, manifest."""

import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from cardiomm.cli import main
from cardiomm.cohort.data_root import load_partition
from cardiomm.cohort.manifest import (
    SplitFractions,
    internal_sites,
    partition_dataset,
    read_manifest,
    site_files,
    site_for_partition,
    write_manifest,
)
from cardiomm.data.matlab import write_mat_v73
from tests.builders import write_consortium


@pytest.fixture(scope="module")
def consortium(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmrxrecon2025")
    return root, write_consortium(root)


def _partition(root, **options):
    return partition_dataset(root, show_progress=False, **options)


def _site(manifest, name):
    return next(site for site in manifest["sites"] if site["site"] == name)


def test_each_centre_is_one_site_with_its_vendor_and_field(consortium):
    root, _ = consortium
    manifest = _partition(root)
    assert [site["site"] for site in manifest["sites"]] == ["Center001", "Center002", "Center003"]
    uih = _site(manifest, "Center002")
    assert (uih["vendor"], uih["field_strengths"], uih["scanners"]) == (
        "UIH",
        [1.5],
        ["UIH_15T_umr670"],
    )


def test_sites_count_their_files_slices_and_images(consortium):
    root, files = consortium
    site = _site(_partition(root), "Center001")
    assert site["num_files"] == len(files["Center001"]) == 5
    assert site["num_slices"] == 5 * 3
    assert site["num_images"] == 5 * 3 * 2


def test_centres_are_held_out_by_name(consortium):
    root, _ = consortium
    manifest = _partition(root, hold_out=["Center002"])
    assert manifest["held_out"] == ["Center002"]
    assert _site(manifest, "Center002")["held_out"]
    assert not _site(manifest, "Center001")["held_out"]


def test_an_unknown_held_out_name_is_rejected_with_the_centres_found(consortium):
    root, _ = consortium
    with pytest.raises(ValueError, match=r"Center009.*Center001, Center002, Center003"):
        _partition(root, hold_out=["Center009"])


def test_centres_are_held_out_by_count_reproducibly_for_a_seed(consortium):
    root, _ = consortium
    first = _partition(root, hold_out_count=2, seed=4)["held_out"]
    assert len(first) == 2
    assert _partition(root, hold_out_count=2, seed=4)["held_out"] == first


def test_holding_out_every_centre_is_refused(consortium):
    root, _ = consortium
    with pytest.raises(ValueError, match="at least one must train"):
        _partition(root, hold_out_count=3)


def test_held_out_files_are_all_test_data(consortium):
    root, _ = consortium
    site = _site(_partition(root, hold_out=["Center001"]), "Center001")
    assert {entry["split"] for entry in site["files"]} == {"test"}


def test_every_internal_site_keeps_a_training_patient(consortium):
    root, _ = consortium
    manifest = _partition(root, fractions=SplitFractions(val=0.4, test=0.5))
    for site in internal_sites(manifest):
        assert any(entry["split"] == "train" for entry in site["files"])


def test_no_patient_spans_two_splits(consortium):
    root, _ = consortium
    site = _site(_partition(root, fractions=SplitFractions(val=0.2, test=0.2)), "Center001")
    splits_of_patient = {}
    for entry in site["files"]:
        splits_of_patient.setdefault(entry["patient"], set()).add(entry["split"])
    assert all(len(splits) == 1 for splits in splits_of_patient.values())
    assert {s for splits in splits_of_patient.values() for s in splits} == {"train", "val", "test"}


def test_partition_ids_map_to_internal_sites_then_held_out_centres_in_name_order(consortium):
    root, _ = consortium
    manifest = _partition(root, hold_out=["Center002"])
    assert site_for_partition(manifest, 0)["site"] == "Center001"
    assert site_for_partition(manifest, 1)["site"] == "Center003"
    assert site_for_partition(manifest, 2)["site"] == "Center002"
    with pytest.raises(ValueError, match="2 internal sites and 1 held-out centres"):
        site_for_partition(manifest, 3)


def test_site_files_resolve_to_existing_paths_of_the_split(consortium):
    root, files = consortium
    manifest = _partition(root)
    train = site_files(manifest, _site(manifest, "Center003"), "train")
    assert train == files["Center003"]


def test_mask_and_undersampled_files_are_not_partitioned(tmp_path):
    write_consortium(tmp_path)
    masks = tmp_path / "MultiCoil/Cine/TrainingSet/Mask_TaskAll/Center001/Siemens_30T_Vida/P001"
    write_mat_v73(masks / "cine_sax_mask_Uniform8.mat", {"mask": np.ones((24, 32))})
    undersampled = tmp_path / "MultiCoil/Cine/ValidationSet/UnderSample_TaskR1/Center001/X/P001"
    write_mat_v73(undersampled / "cine_sax_kus_Uniform8.mat", {"kus": np.ones((1, 1, 4, 24, 32))})
    manifest = _partition(tmp_path)
    assert manifest["bad_files"] == []
    assert sum(site["num_files"] for site in manifest["sites"]) == 8


def test_manifest_survives_a_write_and_read(consortium, tmp_path):
    root, _ = consortium
    manifest = _partition(root, hold_out=["Center003"])
    assert read_manifest(write_manifest(manifest, tmp_path / "manifest.json")) == manifest


@pytest.mark.parametrize("escape", ["../../etc/passwd", "/etc/passwd"])
def test_a_manifest_file_entry_outside_the_data_root_is_refused(consortium, tmp_path, escape):
    root, _ = consortium
    manifest = _partition(root)
    manifest["sites"][0]["files"][0]["path"] = escape
    path = write_manifest(manifest, tmp_path / "manifest.json")
    with pytest.raises(ValueError, match="is outside the data root"):
        read_manifest(path)


def test_reading_a_file_that_is_not_a_manifest_names_it(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"hello": 1}))
    with pytest.raises(ValueError, match=r"other\.json: not a partition manifest"):
        read_manifest(path)


def test_partition_command_prints_the_sites_and_writes_the_manifest(consortium, tmp_path, capsys):
    root, _ = consortium
    output = tmp_path / "manifest.json"
    code = main(["partition", str(root), "--hold-out", "Center003", "--output", str(output)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Center002" in printed and "held out" in printed
    assert read_manifest(output)["held_out"] == ["Center003"]


def test_partition_command_names_a_missing_root(tmp_path, capsys):
    assert main(["partition", str(tmp_path / "absent")]) == 2
    assert "absent: no such data directory" in capsys.readouterr().err


def test_files_skipped_while_partitioning_go_to_the_bad_file_report(tmp_path):
    root = tmp_path / "data"
    write_consortium(root)
    broken = next(root.rglob("*.mat"))
    broken.write_bytes(b"not k-space")
    data = OmegaConf.create(
        {
            "root": str(root),
            "synthetic_preset": None,
            "manifest": None,
            "hold_out": [],
            "hold_out_count": 0,
            "val_fraction": 0.1,
            "test_fraction": 0.2,
        }
    )
    report = tmp_path / "bad_files.jsonl"
    load_partition(data, 0, show_progress=False, bad_file_report=report)
    [entry] = [json.loads(line) for line in report.read_text().splitlines()]
    assert entry["file"] == str(broken.resolve()) or entry["file"] == str(broken)
    assert entry["stage"] == "partition"
    assert "not an HDF5 file" in entry["reason"]
