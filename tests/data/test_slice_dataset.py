"""The slice dataset: items, masks per mode, oversampling, index cache, bad files."""

import json

import h5py
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.index import SliceIndex
from cardiomm.data.masking import EvaluationMasks, TrainingMasks, evaluation_masks
from cardiomm.data.matlab import write_mat_v73
from cardiomm.masks import MaskSampler
from cardiomm.physics import ifft2c, rss
from tests.builders import phantom_kspace, write_site_file

SCANNER = "Siemens_30T_Vida"
SHAPE = (2, 3, 4, 24, 32)  # frames, slices, coils, ky, kx


@pytest.fixture
def cine_file(tmp_path):
    return write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=SHAPE)


def _dataset(files, **options):
    return SliceDataset(files, show_progress=False, **options)


def test_dataset_has_one_item_per_frame_and_slice(cine_file):
    assert len(_dataset([cine_file])) == SHAPE[0] * SHAPE[1]


def test_items_carry_kspace_mask_target_texts_and_provenance(cine_file):
    sample = _dataset([cine_file], masking=evaluation_masks(("ktGaussian", 8)))[4]
    assert sample.kspace.shape == sample.masked_kspace.shape == (4, 24, 32)
    assert sample.kspace.dtype == torch.complex64
    assert sample.mask.shape == sample.target.shape == (24, 32)
    assert sample.metadata_text == (
        "Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida. Modality: cine, short-axis."
    )
    assert sample.undersampling_text == "Undersampling: 8x random."
    assert (sample.file, sample.frame, sample.slice_index) == (str(cine_file), 0, 2)
    assert (sample.centre, sample.vendor, sample.mask_name) == (
        "Center001",
        "Siemens",
        "ktGaussian8",
    )


def test_items_read_the_right_image_of_the_file(cine_file):
    sample = _dataset([cine_file])[3]  # slice-major: item 3 = frame 1 of slice 1
    expected = phantom_kspace(*SHAPE)[1, 1]
    np.testing.assert_array_equal(sample.kspace.numpy(), expected)


def test_ranking_selection_keeps_the_central_slices_and_first_frames(tmp_path):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=(4, 5, 2, 16, 16))
    dataset = _dataset([path], selection="ranking")
    picked = {(dataset[i].frame, dataset[i].slice_index) for i in range(len(dataset))}
    assert picked == {(f, z) for f in range(3) for z in (1, 2)}


def test_masked_kspace_is_the_kspace_times_the_mask(cine_file):
    sample = _dataset([cine_file])[0]
    torch.testing.assert_close(sample.masked_kspace, sample.kspace * sample.mask)


def test_target_is_the_rss_of_the_fully_sampled_coil_images(cine_file):
    sample = _dataset([cine_file])[0]
    torch.testing.assert_close(sample.target, rss(ifft2c(sample.kspace)))


def test_train_masks_are_reproducible_for_seed_and_epoch(cine_file):
    first, second = (_dataset([cine_file], masking=TrainingMasks(seed=3)) for _ in range(2))
    assert torch.equal(first[2].mask, second[2].mask)


def test_train_masks_change_with_the_epoch(cine_file):
    sampler = MaskSampler(patterns=["ktGaussian"], accelerations=[4])
    dataset = _dataset([cine_file], masking=TrainingMasks(sampler))
    before = dataset[0].mask
    dataset.set_epoch(1)
    assert not torch.equal(before, dataset[0].mask)


def test_train_masks_come_from_the_configured_sampler(cine_file):
    sampler = MaskSampler(patterns=["ktRadial"], accelerations=[16], acs_width=4)
    dataset = _dataset([cine_file], masking=TrainingMasks(sampler))
    names = {dataset[i].mask_name for i in range(6)}
    assert names == {"ktRadial16"}


def test_eval_masks_are_fixed_across_epochs(cine_file):
    dataset = _dataset([cine_file], masking=evaluation_masks(("ktGaussian", 16)))
    before = dataset[1].mask
    dataset.set_epoch(5)
    assert torch.equal(before, dataset[1].mask)


def test_eval_spreads_several_mask_settings_over_the_images(cine_file):
    settings = [("Uniform", 8), ("ktGaussian", 16), ("ktRadial", 24)]
    dataset = _dataset([cine_file], masking=evaluation_masks(settings))
    names = [dataset[i].mask_name for i in range(len(dataset))]
    assert set(names) <= {"Uniform8", "ktGaussian16", "ktRadial24"}
    assert len(set(names)) > 1
    assert names == [dataset[i].mask_name for i in range(len(dataset))]


def test_eval_uses_the_official_mask_file_when_present(tmp_path):
    data = write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=SHAPE)
    official = np.zeros((24, 32))
    official[::3] = 1
    mask_folder = tmp_path / "MultiCoil/Cine/TrainingSet/Mask_TaskAll/Center001" / SCANNER / "P001"
    write_mat_v73(mask_folder / "cine_sax_mask_Uniform8.mat", {"mask": official})
    sample = _dataset([data], masking=evaluation_masks(("Uniform", 8)))[0]
    np.testing.assert_array_equal(sample.mask.numpy(), official)


def test_removing_oversampling_halves_the_readout(cine_file):
    sample = _dataset([cine_file], remove_oversampling=True)[0]
    assert sample.kspace.shape == (4, 24, 16)
    assert sample.mask.shape == sample.target.shape == (24, 16)


def test_data_loader_batches_items_of_one_matrix_size(cine_file):
    loader = DataLoader(
        _dataset([cine_file], masking=evaluation_masks(("Uniform", 8))), batch_size=3
    )
    batch = next(iter(loader))
    assert batch.masked_kspace.shape == (3, 4, 24, 32)
    assert len(batch.metadata_text) == 3


def test_index_is_cached_and_reused_without_opening_files(cine_file, tmp_path, monkeypatch):
    cache = tmp_path / "index.json"
    SliceIndex.build([cine_file], cache_path=cache, show_progress=False)
    assert cache.is_file()

    def refuse(path, **_):
        raise AssertionError(f"{path} was opened although the cache is valid")

    monkeypatch.setattr("cardiomm.data.index.open_series", refuse)
    assert len(SliceIndex.build([cine_file], cache_path=cache, show_progress=False)) == 6


def test_index_cache_is_refreshed_when_a_file_changes(cine_file, tmp_path):
    cache = tmp_path / "index.json"
    SliceIndex.build([cine_file], cache_path=cache, show_progress=False)
    write_mat_v73(cine_file, {"kspace_full": phantom_kspace(1, 1, 4, 24, 32)})
    assert len(SliceIndex.build([cine_file], cache_path=cache, show_progress=False)) == 1


def _bad_files(root):
    folder = root / "bad"
    folder.mkdir()
    truncated = write_site_file(root, "Center001", SCANNER, "P009", stem="truncated")
    truncated.write_bytes(truncated.read_bytes()[:2000])
    wrong_key = write_mat_v73(folder / "wrong_key.mat", {"image": np.zeros((2, 4, 8, 8))})
    wrong_rank = write_mat_v73(
        folder / "wrong_rank.mat", {"kspace_full": np.zeros((8, 8), np.complex64)}
    )
    return [truncated, wrong_key, wrong_rank]


def test_unreadable_files_are_skipped_with_their_reason_and_the_rest_kept(cine_file, tmp_path):
    bad = _bad_files(tmp_path)
    dataset = _dataset([cine_file, *bad])
    assert len(dataset) == 6
    assert {entry.path for entry in dataset.bad_files} == set(bad)
    assert all(entry.reason for entry in dataset.bad_files)
    assert dataset[5].kspace.shape == (4, 24, 32)


def test_skipped_files_are_logged_with_their_path(cine_file, tmp_path, caplog):
    bad = _bad_files(tmp_path)
    _dataset([cine_file, *bad])
    for path in bad:
        assert str(path) in caplog.text


def test_a_file_with_nan_kspace_is_skipped_when_read_and_reported(cine_file, tmp_path):
    nan_file = write_site_file(tmp_path, "Center001", SCANNER, "P002", shape=SHAPE)
    with h5py.File(nan_file, "r+") as handle:
        values = handle["kspace_full"][...]
        values["real"][0, 0, 0, 0, 0] = np.nan
        handle["kspace_full"][...] = values
    report = tmp_path / "bad_files.jsonl"
    dataset = _dataset([nan_file, cine_file], bad_file_report=report)
    sample = dataset[0]  # the NaN file's first image: replaced by the next readable one
    assert sample.file != str(nan_file)
    reported = [json.loads(line) for line in report.read_text().splitlines()]
    assert reported[0]["file"] == str(nan_file)
    assert "non-finite" in reported[0]["reason"]


def test_undersampled_files_are_left_out_with_the_reason(cine_file, tmp_path):
    undersampled = write_site_file(tmp_path, "Center001", SCANNER, "P003", variable="kus")
    dataset = _dataset([cine_file, undersampled])
    assert len(dataset) == 6
    assert [entry.path for entry in dataset.bad_files] == [undersampled]
    assert "fully sampled reference" in dataset.bad_files[0].reason


def test_unknown_metadata_mode_says_unknown_in_the_text_and_keeps_the_truth_for_grouping(
    cine_file,
):
    sample = _dataset([cine_file], masking=EvaluationMasks(), metadata="unknown")[0]
    assert sample.metadata_text == (
        "Unknown cardiac MRI reconstruction. Vendor: unknown, unknown, unknown. "
        "Modality: unknown, unknown."
    )
    assert (sample.centre, sample.vendor, sample.modality) == ("Center001", "Siemens", "cine")


def test_a_variant_shares_the_index_and_changes_only_mask_and_metadata(cine_file):
    dataset = _dataset([cine_file], masking=evaluation_masks(("Uniform", 4)))
    variant = dataset.with_options(
        masking=dataset.masking.with_settings(("ktRadial", 8)), metadata="unknown"
    )
    assert variant.index is dataset.index
    assert (variant[0].mask_name, dataset[0].mask_name) == ("ktRadial8", "Uniform4")
    assert "unknown" in variant[0].metadata_text and "Siemens" in dataset[0].metadata_text


def test_the_bad_file_report_names_the_stage_that_skipped_each_file(cine_file, tmp_path):
    report = tmp_path / "bad_files.jsonl"
    zero_file = write_site_file(tmp_path, "Center001", SCANNER, "P004", shape=SHAPE)
    with h5py.File(zero_file, "r+") as handle:
        values = handle["kspace_full"][...]
        values["real"][...] = 0
        values["imag"][...] = 0
        handle["kspace_full"][...] = values
    dataset = _dataset([*_bad_files(tmp_path), zero_file, cine_file], bad_file_report=report)
    for item in range(len(dataset)):
        dataset[item]
    stages = {}
    for line in report.read_text().splitlines():
        entry = json.loads(line)
        stages.setdefault(entry["stage"], []).append(entry)
    assert len(stages["index"]) == 3
    assert [entry["file"] for entry in stages["read"]] == [str(zero_file)]
    assert "all-zero k-space" in stages["read"][0]["reason"]
