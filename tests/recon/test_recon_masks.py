"""Which mask a file is reconstructed with."""

import numpy as np
import pytest

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.errors import DataFileError
from cardiomm.data.masking import MaskSetting, evaluation_masks
from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.readers import open_series
from cardiomm.masks import MaskPattern
from cardiomm.recon.mask_choice import (
    GeneratedMasks,
    MissingMaskError,
    OfficialMasks,
    SampledMasks,
    choose_masks,
    parse_mask_spec,
    pattern_from_name,
)
from tests.builders import phantom_kspace, write_site_file

SHAPE = (2, 2, 2, 24, 32)


def test_mask_specs_parse_official_and_text_names():
    assert parse_mask_spec("ktGaussian16") == MaskSetting("ktGaussian", 16)
    assert parse_mask_spec("radial24") == MaskSetting("ktRadial", 24)
    assert parse_mask_spec("uniform8") == MaskSetting("Uniform", 8)
    with pytest.raises(ValueError, match="not <pattern><acceleration>"):
        parse_mask_spec("ktGaussian")
    with pytest.raises(ValueError, match="unknown mask pattern"):
        parse_mask_spec("spiral8")


def test_file_name_patterns_include_the_2024_kt_uniform():
    assert pattern_from_name("ktUniform") is MaskPattern.UNIFORM
    assert pattern_from_name("ktRadial") is MaskPattern.KT_RADIAL
    assert pattern_from_name("Gaussian") is MaskPattern.KT_GAUSSIAN
    assert pattern_from_name(None) is None
    assert pattern_from_name("spiral") is None


def test_generated_masks_are_the_masks_of_the_evaluation_data_set(tmp_path):
    path = write_site_file(tmp_path, "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    setting = MaskSetting("ktGaussian", 4)
    dataset = SliceDataset(
        [path], evaluation_masks(setting, acs_width=4, seed=3), show_progress=False
    )
    with open_series(path) as series:
        masks = choose_masks(series, setting, acs_width=4, seed=3)
        assert isinstance(masks, GeneratedMasks)
        for item in range(len(dataset)):
            sample = dataset[item]
            kspace = series.read_kspace(sample.frame, sample.slice_index)
            ours = masks.mask(sample.frame, sample.slice_index, kspace)
            np.testing.assert_array_equal(ours.frame(0), sample.mask.numpy() > 0)
            assert ours.text == sample.undersampling_text == "Undersampling: 4x random."


def test_sampled_lines_count_whole_lines_and_radial_masks_count_samples(tmp_path):
    kspace = np.zeros((2, 6, 8), dtype=np.complex64)
    kspace[0, 1, 3] = 1.0  # one nonzero sample makes line 1 sampled, in one coil only
    kspace[1, 4, :] = 2.0
    lines = SampledMasks(MaskPattern.UNIFORM, 4, tmp_path / "a.mat").mask(0, 0, kspace)
    assert lines.frame(0).all(axis=1).tolist() == [False, True, False, False, True, False]
    assert lines.text == "Undersampling: 4x uniform."
    radial = SampledMasks(MaskPattern.KT_RADIAL, 16, tmp_path / "a.mat").mask(0, 0, kspace)
    assert radial.frame(0).sum() == 1 + 8
    assert radial.text == "Undersampling: 16x radial."


def test_an_image_without_samples_is_a_data_file_error_naming_the_file(tmp_path):
    masks = SampledMasks(MaskPattern.UNIFORM, 4, tmp_path / "empty.mat")
    with pytest.raises(DataFileError, match=r"empty\.mat: frame 1, slice 0"):
        masks.mask(1, 0, np.zeros((2, 6, 8), dtype=np.complex64))


def test_a_fully_sampled_file_without_a_spec_is_an_error_naming_it(tmp_path):
    path = write_site_file(tmp_path, "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE)
    with open_series(path) as series, pytest.raises(MissingMaskError, match="--mask") as error:
        choose_masks(series, None)
    assert error.value.path == path


def test_undersampled_names_win_and_the_spec_fills_in_what_a_name_lacks(tmp_path):
    kus = tmp_path / "P001" / "cine_sax_kus_ktRadial16.mat"
    write_mat_v73(kus, {"kus": phantom_kspace(*SHAPE)})
    with open_series(kus) as series:
        masks = choose_masks(series, MaskSetting("Uniform", 8))
    assert isinstance(masks, SampledMasks)
    assert masks.name == "ktRadial16"

    # 2023: the variable names R, the masks are equispaced.
    sub = tmp_path / "AccFactor04" / "P001" / "cine_sax.mat"
    write_mat_v73(sub, {"kspace_sub04": phantom_kspace(*SHAPE)})
    with open_series(sub) as series:
        assert choose_masks(series).name == "Uniform4"
        assert choose_masks(series, MaskSetting("ktGaussian", 8)).name == "ktGaussian4"

    unnamed = tmp_path / "P002" / "scan.mat"
    write_mat_v73(unnamed, {"kus": phantom_kspace(*SHAPE)})
    with open_series(unnamed) as series:
        with pytest.raises(MissingMaskError, match="does not say its pattern"):
            choose_masks(series)
        assert choose_masks(series, MaskSetting("ktRadial", 24)).name == "ktRadial24"


def test_an_official_mask_file_beside_an_undersampled_file_is_used(tmp_path):
    kus = tmp_path / "P001" / "cine_sax_kus_ktUniform8.mat"
    write_mat_v73(kus, {"kus": phantom_kspace(*SHAPE)})
    values = np.zeros((SHAPE[0], SHAPE[3], SHAPE[4]))
    values[:, ::3] = 1
    write_mat_v73(kus.parent / "cine_sax_mask_ktUniform8.mat", {"mask": values})
    with open_series(kus) as series:
        masks = choose_masks(series)
        assert isinstance(masks, OfficialMasks)
        assert masks.name == "Uniform8"
        kspace = np.zeros(SHAPE[2:], dtype=np.complex64)  # (coils, ky, kx) of one image
        np.testing.assert_array_equal(masks.mask(1, 0, kspace).frame(0), values[1] > 0)
        assert isinstance(choose_masks(series, use_official_masks=False), SampledMasks)


def test_an_official_mask_that_does_not_fit_is_not_used(tmp_path, caplog):
    kus = tmp_path / "P001" / "cine_sax_kus_Uniform8.mat"
    write_mat_v73(kus, {"kus": phantom_kspace(*SHAPE)})
    write_mat_v73(kus.parent / "cine_sax_mask_Uniform8.mat", {"mask": np.ones((32, 24))})
    with open_series(kus) as series:
        assert isinstance(choose_masks(series), SampledMasks)
    assert "transposed" in caplog.text
