"""Bad files give DataFileError (or FileNotFoundError) naming the file: at open for header
problems, at read for non-finite values."""

import pickle
import re
from pathlib import Path

import h5py
import numpy as np
import pytest

from cardiomm.data.errors import DataFileError, MaskFileNotFoundError
from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.readers import (
    FastMRISeries,
    IsmrmrdSeries,
    find_mask_file,
    open_series,
    read_mask_file,
)
from cardiomm.data.readers.base import SeriesShape


def kspace(shape: tuple[int, ...] = (2, 2, 2, 4, 6)) -> np.ndarray:
    return np.ones(shape, dtype=np.complex64)


def test_truncated_mat_file_raises_data_file_error(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace((4, 4, 4, 16, 16))})
    size = path.stat().st_size
    with open(path, "r+b") as handle:
        handle.truncate(size // 2)
    with pytest.raises(DataFileError, match="truncated") as caught:
        open_series(path)
    assert str(path) in str(caught.value)
    assert caught.value.path == path


def test_truncated_h5_file_raises_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "file1.h5"
    with h5py.File(path, "w") as handle:
        handle["kspace"] = kspace((4, 4, 16, 16))
        handle["ismrmrd_header"] = b"<ismrmrdHeader/>"
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 4096)
    with pytest.raises(DataFileError, match=re.escape(str(path))):
        open_series(path)


def test_file_that_is_not_hdf5_raises_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "cine_sax.mat"
    path.write_text("not k-space at all")
    with pytest.raises(DataFileError, match="not an HDF5 file") as caught:
        open_series(path)
    assert str(path) in str(caught.value)


def test_matlab_v5_file_is_named_as_such(tmp_path: Path) -> None:
    path = tmp_path / "cine_sax.mat"
    path.write_bytes(b"MATLAB 5.0 MAT-file, Platform: GLNXA64".ljust(256, b" "))
    with pytest.raises(DataFileError, match=r"v7\.3"):
        open_series(path)


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    path = tmp_path / "absent.mat"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        open_series(path)


def test_mat_file_without_kspace_variable_lists_the_keys_found(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"image": kspace()})
    with pytest.raises(DataFileError, match="keys found: image") as caught:
        open_series(path)
    assert str(path) in str(caught.value)


def test_mat_file_with_two_kspace_variables_is_ambiguous(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace(), "kus": kspace()})
    with pytest.raises(DataFileError, match="several k-space variables"):
        open_series(path)


def test_wrong_rank_raises_data_file_error(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace((4, 6))})
    with pytest.raises(DataFileError, match="rank 2") as caught:
        open_series(path)
    assert str(path) in str(caught.value)


def test_real_valued_kspace_raises_data_file_error(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": np.ones((2, 2, 2, 4, 6))})
    with pytest.raises(DataFileError, match="expected complex") as caught:
        open_series(path)
    assert str(path) in str(caught.value)


def test_nan_kspace_opens_but_fails_on_read_naming_frame_and_slice(tmp_path: Path) -> None:
    values = kspace()
    values[1, 0, 1, 2, 3] = np.nan
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": values})
    with open_series(path) as series:
        series.read_kspace(0, 0)
        with pytest.raises(DataFileError, match="frame 1, slice 0") as caught:
            series.read_kspace(1, 0)
    assert str(path) in str(caught.value)


def test_infinite_kspace_fails_on_read(tmp_path: Path) -> None:
    values = kspace()
    values[0, 1, 0, 0, 0] = complex(0, np.inf)
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": values})
    with open_series(path) as series, pytest.raises(DataFileError, match="non-finite"):
        series.read_kspace(0, 1)


def test_h5_file_of_unknown_layout_raises_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as handle:
        handle["images"] = np.zeros(3)
    with pytest.raises(DataFileError, match="unknown k-space file format") as caught:
        open_series(path)
    assert str(path) in str(caught.value)


def test_fastmri_file_of_wrong_rank_raises_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "file1.h5"
    with h5py.File(path, "w") as handle:
        handle["kspace"] = kspace((2, 2, 2, 4, 6))
        handle["ismrmrd_header"] = b"<ismrmrdHeader/>"
    with pytest.raises(DataFileError, match="rank 5"):
        FastMRISeries(path)


def test_ismrmrd_file_with_invalid_xml_raises_data_file_error(tmp_path: Path) -> None:
    import ismrmrd

    path = tmp_path / "bad_xml.h5"
    dataset = ismrmrd.Dataset(str(path), mode="w")
    dataset.write_xml_header("<ismrmrdHeader><encoding>")
    dataset.append_acquisition(ismrmrd.Acquisition.from_array(np.ones((1, 4), np.complex64)))
    dataset.close()
    with pytest.raises(DataFileError, match="not valid XML") as caught:
        open_series(path)
    assert str(path) in str(caught.value)


def test_ismrmrd_file_without_acquisitions_raises_data_file_error(tmp_path: Path) -> None:
    path = tmp_path / "no_data.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("dataset/xml", data=[b"<ismrmrdHeader/>"])
    with pytest.raises(DataFileError, match="'data' is missing"):
        IsmrmrdSeries(path)


def test_ismrmrd_image_without_readouts_fails_on_read(tmp_path: Path) -> None:
    import ismrmrd

    path = tmp_path / "gap.h5"
    dataset = ismrmrd.Dataset(str(path), mode="w")
    xml = "<ismrmrdHeader><encoding><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    dataset.write_xml_header(xml)
    # Slice 0 has phases 0 and 1, slice 1 only phase 0.
    for slice_index, phase in [(0, 0), (0, 1), (1, 0)]:
        acquisition = ismrmrd.Acquisition.from_array(np.ones((1, 4), np.complex64))
        acquisition.idx.slice, acquisition.idx.phase = slice_index, phase
        dataset.append_acquisition(acquisition)
    dataset.close()
    with open_series(path) as series:
        series.read_kspace(1, 0)
        with pytest.raises(DataFileError, match="no readouts for frame 1, slice 1"):
            series.read_kspace(1, 1)


def test_missing_mask_file_names_the_data_file_and_the_paths_tried(tmp_path: Path) -> None:
    data = tmp_path / "MultiCoil/Cine/TrainingSet/FullSample/Center001/UIH_30T_umr780/P007"
    path = write_mat_v73(data / "cine_sax.mat", {"kspace_full": kspace()})
    with pytest.raises(FileNotFoundError) as caught:
        find_mask_file(path, "ktRadial", 16)
    assert isinstance(caught.value, MaskFileNotFoundError)
    assert str(path) in str(caught.value)
    expected = path.parents[4] / "Mask_TaskAll/Center001/UIH_30T_umr780/P007"
    assert str(expected / "cine_sax_mask_ktRadial16.mat") in str(caught.value)


def test_mask_with_values_other_than_zero_and_one_raises_data_file_error(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax_mask_Uniform8.mat", {"mask": np.full((4, 6), 0.5)})
    with pytest.raises(DataFileError, match="other than 0/1") as caught:
        read_mask_file(path)
    assert str(path) in str(caught.value)


def test_transposed_mask_is_reported_as_transposed(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax_mask_Uniform8.mat", {"mask": np.ones((6, 4))})
    mask = read_mask_file(path)
    with pytest.raises(DataFileError, match="transposed"):
        mask.check_shape(SeriesShape(frames=1, slices=1, coils=2, ky=4, kx=6))


def test_data_file_error_survives_pickling(tmp_path: Path) -> None:
    error = DataFileError(tmp_path / "a.mat", "bad")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.path, copy.reason, str(copy)) == (error.path, error.reason, str(error))


def test_mask_not_found_error_survives_pickling(tmp_path: Path) -> None:
    error = MaskFileNotFoundError(tmp_path / "a.mat", [tmp_path / "a_mask.mat"])
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.data_path, copy.tried, str(copy)) == (error.data_path, error.tried, str(error))


def test_all_zero_kspace_opens_but_fails_on_read(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace() * 0})
    with open_series(path) as series, pytest.raises(DataFileError, match="all-zero k-space"):
        series.read_kspace(0, 0)


def test_overflowing_kspace_fails_on_read(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace() * 1e30})
    with (
        open_series(path) as series,
        pytest.raises(DataFileError, match="beyond any receive chain"),
    ):
        series.read_kspace(1, 1)


def test_a_huge_declared_shape_without_data_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "cine_sax.mat"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("kspace_full", shape=(1000, 1000, 10, 64, 64), dtype=np.complex64)
    assert path.stat().st_size < 10_000
    with pytest.raises(DataFileError, match=r"declares shape .* but holds no data"):
        open_series(path)


def test_a_partly_written_uncompressed_dataset_is_refused_at_open(tmp_path: Path) -> None:
    path = tmp_path / "cine_sax.mat"
    with h5py.File(path, "w") as handle:
        dataset = handle.create_dataset(
            "kspace_full", shape=(4, 2, 2, 8, 8), dtype=np.complex64, chunks=(1, 2, 2, 8, 8)
        )
        dataset[0] = np.ones((2, 2, 8, 8), np.complex64)
    with pytest.raises(DataFileError, match="holds 2048 of the 8192 bytes"):
        open_series(path)


def test_an_implausible_coil_count_is_refused_at_open(tmp_path: Path) -> None:
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace((1, 1, 200, 4, 4))})
    with pytest.raises(DataFileError, match="implausible size: 200 coils"):
        open_series(path)
