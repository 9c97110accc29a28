"""CMRxRecon .mat (v7.3) reader: shapes, exact values, orientation, metadata, undersampling."""

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.readers import CMRxReconSeries, SeriesShape, open_series
from cardiomm.physics import fft2c, ifft2c

CINE_2025 = Path(
    "MultiCoil/Cine/TrainingSet/FullSample/Center001/Siemens_30T_Vida/P007/cine_sax.mat"
)
T1W_2025 = Path("MultiCoil/T1w/TrainingSet/FullSample/Center002/UIH_30T_umr780/P003/T1w.mat")


def random_kspace(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def write_cine(root: Path, shape: tuple[int, ...] = (3, 2, 4, 8, 12)) -> tuple[Path, np.ndarray]:
    kspace = random_kspace(shape)
    return write_mat_v73(root / CINE_2025, {"kspace_full": kspace}), kspace


def test_shape_is_frames_slices_coils_ky_kx(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path, (3, 2, 4, 8, 12))
    with CMRxReconSeries(path) as series:
        assert series.shape == SeriesShape(frames=3, slices=2, coils=4, ky=8, kx=12)


def test_read_returns_the_stored_image_of_that_frame_and_slice(tmp_path: Path) -> None:
    path, kspace = write_cine(tmp_path)
    with CMRxReconSeries(path) as series:
        for frame, slice_index in [(0, 0), (2, 1), (1, 0)]:
            image = series.read_kspace(frame, slice_index)
            np.testing.assert_array_equal(image, kspace[frame, slice_index])


def test_read_gives_contiguous_complex64_coils_ky_kx(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path, (3, 2, 4, 8, 12))
    with CMRxReconSeries(path) as series:
        image = series.read_kspace(1, 1)
    assert image.dtype == np.complex64
    assert image.shape == (4, 8, 12)
    assert image.flags.c_contiguous


def test_double_precision_file_is_read_as_complex64(tmp_path: Path) -> None:
    kspace = random_kspace((2, 1, 2, 4, 6)).astype(np.complex128)
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace})
    with CMRxReconSeries(path) as series:
        image = series.read_kspace(1, 0)
    assert image.dtype == np.complex64
    np.testing.assert_allclose(image, kspace[1, 0], rtol=1e-6)


def test_four_dimensional_file_has_one_frame(tmp_path: Path) -> None:
    kspace = random_kspace((3, 2, 6, 10))
    path = write_mat_v73(tmp_path / T1W_2025, {"kspace_full": kspace})
    with CMRxReconSeries(path) as series:
        assert series.shape == SeriesShape(frames=1, slices=3, coils=2, ky=6, kx=10)
        np.testing.assert_array_equal(series.read_kspace(0, 2), kspace[2])


def test_image_with_feature_at_top_left_comes_back_at_top_left(tmp_path: Path) -> None:
    # A bright block at small ky (rows) and small kx (columns) of a non-square image: a
    # swapped or flipped axis would move it or change the shape.
    image = np.zeros((2, 16, 24), dtype=np.complex64)
    image[:, 2:5, 3:6] = 1.0
    kspace = fft2c(torch.from_numpy(image)).numpy()
    path = write_mat_v73(tmp_path / "cine_sax.mat", {"kspace_full": kspace[None, None]})
    with CMRxReconSeries(path) as series:
        recovered = ifft2c(torch.from_numpy(series.read_kspace(0, 0))).abs().numpy()
    assert recovered.shape == (2, 16, 24)
    bright = np.argwhere(recovered[0] > 0.5)
    assert bright.min(axis=0).tolist() == [2, 3]
    assert bright.max(axis=0).tolist() == [4, 5]


def test_metadata_comes_from_the_2025_folder_layout(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path)
    with CMRxReconSeries(path) as series:
        metadata = series.metadata
    assert metadata.centre == "Center001"
    assert (metadata.vendor, metadata.field_strength, metadata.scanner_model) == (
        "Siemens",
        3.0,
        "Vida",
    )
    assert (metadata.modality, metadata.view) == ("cine", "short-axis")


def test_fully_sampled_file_is_not_undersampled(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path)
    with CMRxReconSeries(path) as series:
        assert not series.is_undersampled
        assert series.acceleration is None
        assert series.variable == "kspace_full"


def test_2025_kspace_variable_name_is_read(tmp_path: Path) -> None:
    kspace = random_kspace((2, 1, 2, 4, 6))
    path = write_mat_v73(tmp_path / "cine_lax.mat", {"kspace": kspace})
    with CMRxReconSeries(path) as series:
        assert series.variable == "kspace"
        np.testing.assert_array_equal(series.read_kspace(1, 0), kspace[1, 0])


def test_2023_kspace_sub04_is_undersampled_at_four(tmp_path: Path) -> None:
    kspace = random_kspace((2, 3, 2, 8, 6))
    folder = tmp_path / "MultiCoil/Cine/TrainingSet/AccFactor04/P001"
    path = write_mat_v73(folder / "cine_sax.mat", {"kspace_sub04": kspace})
    with CMRxReconSeries(path) as series:
        assert series.is_undersampled
        assert series.acceleration == 4
        np.testing.assert_array_equal(series.read_kspace(1, 2), kspace[1, 2])


def test_kus_file_reports_pattern_and_acceleration_from_its_name(tmp_path: Path) -> None:
    folder = tmp_path / "ValidationSet/UnderSample_TaskR1/Center001/UIH_30T_umr780/P007"
    path = write_mat_v73(
        folder / "cine_lax_3ch_kus_ktRadial16.mat", {"kus": random_kspace((2, 1, 2, 4, 6))}
    )
    with CMRxReconSeries(path) as series:
        assert series.is_undersampled
        assert (series.pattern_name, series.acceleration) == ("ktRadial", 16)
        assert series.metadata.view == "three-chamber"


def test_open_series_picks_the_cmrxrecon_reader_for_mat_files(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path)
    with open_series(path) as series:
        assert isinstance(series, CMRxReconSeries)


def test_metadata_argument_overrides_the_path(tmp_path: Path) -> None:
    from cardiomm.data.metadata import ScanMetadata

    path, _ = write_cine(tmp_path)
    with open_series(path, metadata=ScanMetadata(vendor="GE")) as series:
        assert series.metadata == ScanMetadata(vendor="GE")


def test_image_indices_cover_every_frame_and_slice(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path, (3, 2, 1, 2, 2))
    with CMRxReconSeries(path) as series:
        indices = list(series.image_indices())
    assert sorted(indices) == [(f, s) for f in range(3) for s in range(2)]


def test_out_of_range_index_raises_index_error_naming_the_file(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path, (3, 2, 1, 2, 2))
    with CMRxReconSeries(path) as series, pytest.raises(IndexError, match=r"cine_sax\.mat"):
        series.read_kspace(3, 0)


def test_pickled_series_reopens_the_file(tmp_path: Path) -> None:
    path, kspace = write_cine(tmp_path)
    with CMRxReconSeries(path) as series:
        copy = pickle.loads(pickle.dumps(series))
    with copy:
        np.testing.assert_array_equal(copy.read_kspace(2, 0), kspace[2, 0])


def test_reading_after_close_is_refused(tmp_path: Path) -> None:
    path, _ = write_cine(tmp_path)
    with CMRxReconSeries(path) as series:
        pass
    assert series.closed
    with pytest.raises(ValueError, match="closed"):
        series.read_kspace(0, 0)
