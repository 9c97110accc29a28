"""Frame-window items: a slice dataset for a frame-window model gives each item its frame's
window of frames, each frame with its own mask."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cardiomm.config import load_config
from cardiomm.data.builders import evaluation_dataset, training_dataset
from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import TrainingMasks, evaluation_masks
from cardiomm.masks import MaskSampler
from tests.builders import phantom_kspace, write_site_file

SCANNER = "Siemens_30T_Vida"
SHAPE = (4, 2, 3, 24, 32)  # frames, slices, coils, ky, kx


@pytest.fixture
def cine_file(tmp_path):
    return write_site_file(tmp_path, "Center001", SCANNER, "P001", shape=SHAPE)


def _dataset(files, masking=None, radius=1):
    return SliceDataset(files, masking, show_progress=False, frame_window_radius=radius)


def _kt_training():
    sampler = MaskSampler(patterns=["ktGaussian"], accelerations=[4], acs_width=4)
    return TrainingMasks(sampler, seed=0)


def test_a_window_item_carries_its_frames_window_and_its_frames_target(cine_file):
    window = _dataset([cine_file])[4]  # slice 1, frame 0
    single = SliceDataset([cine_file], show_progress=False)[4]
    assert window.kspace.shape == window.masked_kspace.shape == (3, 3, 24, 32)
    assert window.mask.shape == (3, 24, 32)
    assert torch.equal(window.target, single.target)
    assert (window.frame, window.slice_index) == (0, 1)


def test_the_window_holds_the_cyclic_neighbours_in_order(cine_file):
    window = _dataset([cine_file])[4]  # frame 0: frames 3, 0, 1
    expected = phantom_kspace(*SHAPE)[[3, 0, 1], 1]
    np.testing.assert_array_equal(window.kspace.numpy(), expected)


def test_each_window_frame_is_masked_with_its_own_mask(cine_file):
    window = _dataset([cine_file], _kt_training())[5]
    torch.testing.assert_close(window.masked_kspace, window.kspace * window.mask[:, None])


def test_training_kt_masks_sample_other_lines_in_each_window_frame(cine_file):
    window = _dataset([cine_file], _kt_training())[5]
    assert not torch.equal(window.mask[0], window.mask[1])
    assert not torch.equal(window.mask[1], window.mask[2])
    assert window.undersampling_text == "Undersampling: 4x random."


def test_evaluation_window_masks_are_the_masks_each_frame_gets_alone(cine_file):
    masking = evaluation_masks(("ktRadial", 8), acs_width=4)
    window = _dataset([cine_file], masking)[5]  # slice 1, frame 1: frames 0, 1, 2
    single = SliceDataset([cine_file], masking, show_progress=False)
    for position, item in enumerate((4, 5, 6)):
        assert torch.equal(window.mask[position], single[item].mask)


def test_a_frameless_series_repeats_its_one_frame_with_its_one_mask(tmp_path):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", "lge", shape=(1, 2, 3, 24, 32))
    window = _dataset([path], _kt_training(), radius=2)[1]
    assert window.kspace.shape == (5, 3, 24, 32)
    assert all(torch.equal(window.kspace[0], frame) for frame in window.kspace)
    assert all(torch.equal(window.mask[0], frame) for frame in window.mask)


def test_a_mapping_series_windows_over_its_weighted_images(tmp_path):
    path = write_site_file(tmp_path, "Center001", SCANNER, "P001", "T1map", shape=(3, 1, 2, 24, 32))
    window = _dataset([path], radius=1)[2]  # the last weighted image: 1, 2, 0
    expected = phantom_kspace(3, 1, 2, 24, 32)[[1, 2, 0], 0]
    np.testing.assert_array_equal(window.kspace.numpy(), expected)


def test_window_items_batch_in_a_data_loader(cine_file):
    batch = next(iter(DataLoader(_dataset([cine_file], _kt_training()), batch_size=2)))
    assert batch.masked_kspace.shape == (2, 3, 3, 24, 32)
    assert batch.mask.shape == (2, 3, 24, 32)
    assert batch.target.shape == (2, 24, 32)


def test_a_negative_window_radius_is_refused(cine_file):
    with pytest.raises(ValueError, match="frame_window_radius must be >= 0, got -1"):
        _dataset([cine_file], radius=-1)


def test_the_configured_window_model_gets_window_items_from_the_builders(cine_file):
    config = load_config(["model=tiny_window"])
    assert evaluation_dataset([cine_file], config).frame_window_radius == 1
    assert training_dataset([cine_file], config, seed=0).frame_window_radius == 1


def test_the_configured_2d_model_gets_single_frame_items_from_the_builders(cine_file):
    config = load_config(["model=tiny"])
    dataset = training_dataset([cine_file], config, seed=0)
    assert dataset.frame_window_radius == 0
    assert dataset[0].kspace.dim() == 3  # (coils, ky, kx)


def test_a_slices_cine_carries_its_texts(cine_file):
    cine = SliceDataset([cine_file], evaluation_masks(("ktRadial", 8)), show_progress=False)
    loaded = cine.load_cine(0)
    assert loaded.undersampling_text == "Undersampling: 8x radial."
    assert loaded.metadata_text.startswith("Adult cardiac MRI reconstruction. Vendor: 3.0T")
