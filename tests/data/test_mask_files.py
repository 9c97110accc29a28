"""Official mask files: discovery in the 2023 / 2024 / 2025 layouts, contents, orientation."""

from pathlib import Path

import numpy as np
import pytest

from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.readers import (
    find_mask_file,
    open_series,
    read_mask_file,
    read_official_mask,
)
from cardiomm.data.readers.mask_files import parse_mask_name
from cardiomm.masks import MaskPattern, make_mask

CINE = Path("MultiCoil/Cine")
SCANNER_2025 = Path("Center001/UIH_30T_umr780/P007")


def touch_mat(path: Path, name: str = "mask", values: np.ndarray | None = None) -> Path:
    """A small MAT-file holding ``name``: a 4 x 6 mask unless ``values`` is given."""
    values = np.ones((4, 6)) if values is None else values
    return write_mat_v73(path, {name: values})


def data_file(path: Path) -> Path:
    return write_mat_v73(path, {"kspace_full": np.ones((1, 1, 1, 4, 6), np.complex64)})


@pytest.fixture
def layout_2025(tmp_path: Path) -> Path:
    """A 2025 training case with three official masks; returns its data file."""
    training = tmp_path / CINE / "TrainingSet"
    masks = training / "Mask_TaskAll" / SCANNER_2025
    for name in ("Uniform8", "ktGaussian16", "ktRadial24"):
        touch_mat(masks / f"cine_sax_mask_{name}.mat")
    return data_file(training / "FullSample" / SCANNER_2025 / "cine_sax.mat")


def test_2025_mask_is_found_in_mask_task_all(layout_2025: Path) -> None:
    found = find_mask_file(layout_2025, "ktGaussian", 16)
    expected = layout_2025.parents[4] / "Mask_TaskAll" / SCANNER_2025
    assert found == expected / "cine_sax_mask_ktGaussian16.mat"


def test_2025_pattern_may_be_given_by_its_library_name(layout_2025: Path) -> None:
    assert find_mask_file(layout_2025, MaskPattern.KT_RADIAL, 24).name == (
        "cine_sax_mask_ktRadial24.mat"
    )
    assert find_mask_file(layout_2025, "radial", 24).name == "cine_sax_mask_ktRadial24.mat"


def test_2025_mask_without_pattern_is_ambiguous(layout_2025: Path) -> None:
    with pytest.raises(ValueError, match="3 mask files fit"):
        find_mask_file(layout_2025)


def test_2025_mask_of_an_unlisted_acceleration_is_not_found(layout_2025: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"cine_sax_mask_Uniform16\.mat"):
        find_mask_file(layout_2025, "Uniform", 16)


def test_2025_undersampled_file_finds_the_mask_beside_it(tmp_path: Path) -> None:
    folder = tmp_path / CINE / "ValidationSet/UnderSample_TaskR1" / SCANNER_2025
    data = data_file(folder / "cine_lax_3ch_kus_Uniform8.mat")
    mask = touch_mat(folder / "cine_lax_3ch_mask_Uniform8.mat")
    assert find_mask_file(data) == mask


def test_2024_uniform_mask_is_found_in_mask_task1(tmp_path: Path) -> None:
    training = tmp_path / CINE / "TrainingSet"
    mask = touch_mat(training / "Mask_Task1/P001/cine_sax_mask_Uniform8.mat")
    data = data_file(training / "FullSample/P001/cine_sax.mat")
    assert find_mask_file(data, "Uniform", 8) == mask


def test_2024_kt_mask_is_found_in_mask_task2(tmp_path: Path) -> None:
    training = tmp_path / CINE / "TrainingSet"
    touch_mat(training / "Mask_Task1/P001/cine_sax_mask_Uniform8.mat")
    mask = touch_mat(training / "Mask_Task2/P001/cine_sax_mask_ktRadial16.mat")
    data = data_file(training / "FullSample/P001/cine_sax.mat")
    assert find_mask_file(data, "ktRadial", 16) == mask


def test_2024_undersampled_file_finds_the_mask_task_folder_beside_its_own(tmp_path: Path) -> None:
    validation = tmp_path / CINE / "ValidationSet"
    mask = touch_mat(validation / "Mask_Task2/P001/cine_sax_mask_ktRadial16.mat")
    data = data_file(validation / "UnderSample_Task2/P001/cine_sax_kus_ktRadial16.mat")
    assert find_mask_file(data) == mask


def test_2023_mask_is_found_beside_the_data(tmp_path: Path) -> None:
    folder = tmp_path / CINE / "TrainingSet/AccFactor08/P001"
    data = write_mat_v73(
        folder / "cine_sax.mat", {"kspace_sub08": np.ones((1, 1, 1, 4, 6), np.complex64)}
    )
    mask = touch_mat(folder / "cine_sax_mask.mat", "mask08")
    assert find_mask_file(data) == mask


def test_2023_fully_sampled_file_finds_the_mask_of_the_asked_acceleration(tmp_path: Path) -> None:
    training = tmp_path / CINE / "TrainingSet"
    touch_mat(training / "AccFactor04/P001/cine_sax_mask.mat", "mask04")
    mask = touch_mat(training / "AccFactor10/P001/cine_sax_mask.mat", "mask10")
    data = data_file(training / "FullSample/P001/cine_sax.mat")
    assert find_mask_file(data, acceleration=10) == mask


def test_2023_mask_variable_gives_the_acceleration(tmp_path: Path) -> None:
    path = touch_mat(tmp_path / "AccFactor04/P001/cine_sax_mask.mat", "mask04")
    mask = read_mask_file(path)
    assert (mask.pattern_name, mask.acceleration) == (None, 4)


def test_mask_name_gives_pattern_and_acceleration() -> None:
    assert parse_mask_name("cine_lax_3ch_mask_ktGaussian16.mat") == ("ktGaussian", 16)
    assert parse_mask_name("cine_sax_mask.mat") == (None, None)


def test_two_dimensional_mask_reads_as_one_bool_frame(tmp_path: Path) -> None:
    values = np.zeros((4, 6))
    values[::2] = 1.0
    mask = read_mask_file(touch_mat(tmp_path / "cine_sax_mask_Uniform2.mat", values=values))
    assert mask.values.dtype == np.bool_
    assert mask.values.shape == (1, 4, 6)
    np.testing.assert_array_equal(mask.values[0], values.astype(bool))
    np.testing.assert_array_equal(mask.frame(5), mask.values[0])


def test_per_frame_mask_reads_as_frames_ky_kx(tmp_path: Path) -> None:
    values = make_mask("ktGaussian", 4, (8, 6), num_frames=3).values
    path = touch_mat(tmp_path / "cine_sax_mask_ktGaussian4.mat", values=values.astype(float))
    mask = read_mask_file(path)
    np.testing.assert_array_equal(mask.values, values)
    assert mask.pattern is MaskPattern.KT_GAUSSIAN


def test_uniform_mask_samples_whole_ky_lines(tmp_path: Path) -> None:
    # h5py (ky, kx), as the trailing axes of the k-space: sampled rows are full kx lines.
    values = make_mask("Uniform", 4, (16, 10), acs_width=4).values[0]
    mask = read_mask_file(touch_mat(tmp_path / "x_mask_Uniform4.mat", values=values.astype(float)))
    rows = mask.frame(0).any(axis=1)
    assert mask.frame(0)[rows].all()
    assert rows[0] and rows[4] and not rows[1]


def test_undersampled_kspace_is_zero_where_its_mask_is_not_sampled(tmp_path: Path) -> None:
    folder = tmp_path / CINE / "ValidationSet/UnderSample_TaskR1" / SCANNER_2025
    mask_values = make_mask("ktRadial", 8, (12, 16), num_frames=3).values
    full = np.ones((3, 2, 2, 12, 16), np.complex64)
    write_mat_v73(folder / "cine_sax_kus_ktRadial8.mat", {"kus": full * mask_values[:, None, None]})
    touch_mat(folder / "cine_sax_mask_ktRadial8.mat", values=mask_values.astype(float))
    with open_series(folder / "cine_sax_kus_ktRadial8.mat") as series:
        mask = read_official_mask(series.path)
        mask.check_shape(series.shape)
        for frame in range(3):
            image = series.read_kspace(frame, 1)
            assert not image[:, ~mask.frame(frame)].any()
            assert image[:, mask.frame(frame)].all()


def test_mask_of_another_matrix_does_not_fit(tmp_path: Path) -> None:
    from cardiomm.data.errors import DataFileError
    from cardiomm.data.readers import SeriesShape

    mask = read_mask_file(touch_mat(tmp_path / "x_mask_Uniform4.mat", values=np.ones((4, 6))))
    with pytest.raises(DataFileError, match="4 x 6"):
        mask.check_shape(SeriesShape(frames=1, slices=1, coils=1, ky=8, kx=6))


def test_named_mask_converts_to_the_library_mask(tmp_path: Path) -> None:
    values = make_mask("ktRadial", 8, (12, 16), num_frames=2).values
    path = touch_mat(tmp_path / "x_mask_ktRadial8.mat", values=values.astype(float))
    converted = read_mask_file(path).to_undersampling_mask()
    assert (converted.pattern, converted.acceleration, converted.name) == (
        MaskPattern.KT_RADIAL,
        8,
        "ktRadial8",
    )


def test_2024_kt_uniform_mask_has_no_library_pattern(tmp_path: Path) -> None:
    mask = read_mask_file(touch_mat(tmp_path / "cine_sax_mask_ktUniform8.mat"))
    assert (mask.pattern_name, mask.pattern, mask.acceleration) == ("ktUniform", None, 8)
    with pytest.raises(ValueError, match="ktUniform"):
        mask.to_undersampling_mask()
