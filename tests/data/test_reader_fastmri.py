"""fastMRI HDF5 reader: (slices, coils, readout, phase-encode) on disk -> (coils, ky, kx)."""

from pathlib import Path

import h5py
import numpy as np
import torch

from cardiomm.data.readers import FastMRISeries, SeriesShape, open_series
from cardiomm.physics import fft2c, ifft2c

HEADER = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD">'
    "<acquisitionSystemInformation><systemVendor>SIEMENS</systemVendor>"
    "<systemModel>Skyra</systemModel><systemFieldStrength_T>2.89362</systemFieldStrength_T>"
    "<institutionName>NYU</institutionName></acquisitionSystemInformation>"
    "<encoding><encodedSpace><matrixSize><x>12</x><y>8</y><z>1</z></matrixSize></encodedSpace>"
    "<trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
)


def random_kspace(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


def write_fastmri(path: Path, kspace: np.ndarray, **attrs: object) -> Path:
    """A fastMRI file: ``kspace`` (slices, coils, readout, phase-encode) as fastMRI stores it."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("kspace", data=kspace)
        handle.create_dataset("ismrmrd_header", data=HEADER.encode())
        handle.attrs.update(attrs)
    return path


def test_shape_has_one_frame_and_ky_from_the_last_axis(tmp_path: Path) -> None:
    path = write_fastmri(tmp_path / "file1.h5", random_kspace((3, 4, 12, 8)))
    with FastMRISeries(path) as series:
        assert series.shape == SeriesShape(frames=1, slices=3, coils=4, ky=8, kx=12)


def test_image_is_the_stored_slice_with_its_last_two_axes_swapped(tmp_path: Path) -> None:
    kspace = random_kspace((3, 4, 12, 8))
    path = write_fastmri(tmp_path / "file1.h5", kspace)
    with FastMRISeries(path) as series:
        image = series.read_kspace(0, 2)
    np.testing.assert_array_equal(image, kspace[2].transpose(0, 2, 1))
    assert image.flags.c_contiguous and image.dtype == np.complex64


def test_feature_along_the_readout_ends_up_along_kx(tmp_path: Path) -> None:
    # fastMRI image (readout, phase-encode) with a block at readout 1..2, phase-encode 5..6.
    stored_image = np.zeros((1, 12, 8), dtype=np.complex64)
    stored_image[:, 1:3, 5:7] = 1.0
    kspace = fft2c(torch.from_numpy(stored_image)).numpy()
    path = write_fastmri(tmp_path / "file1.h5", kspace[None])
    with FastMRISeries(path) as series:
        image = ifft2c(torch.from_numpy(series.read_kspace(0, 0))).abs().numpy()
    bright = np.argwhere(image[0] > 0.5)
    assert bright.min(axis=0).tolist() == [5, 1]
    assert bright.max(axis=0).tolist() == [6, 2]


def test_metadata_comes_from_the_ismrmrd_header(tmp_path: Path) -> None:
    path = write_fastmri(tmp_path / "file1.h5", random_kspace((1, 1, 4, 4)))
    with FastMRISeries(path) as series:
        metadata = series.metadata
    assert (metadata.vendor, metadata.field_strength, metadata.scanner_model) == (
        "Siemens",
        3.0,
        "Skyra",
    )


def test_attributes_max_norm_and_acquisition_are_exposed(tmp_path: Path) -> None:
    path = write_fastmri(
        tmp_path / "file1.h5",
        random_kspace((1, 1, 4, 4)),
        max=0.5,
        norm=12.0,
        acquisition="CORPD_FBK",
    )
    with FastMRISeries(path) as series:
        assert (series.max_value, series.norm, series.acquisition) == (0.5, 12.0, "CORPD_FBK")
        assert not series.is_undersampled


def test_single_coil_file_has_one_coil(tmp_path: Path) -> None:
    kspace = random_kspace((2, 12, 8))
    path = write_fastmri(tmp_path / "singlecoil.h5", kspace)
    with FastMRISeries(path) as series:
        assert series.shape == SeriesShape(frames=1, slices=2, coils=1, ky=8, kx=12)
        np.testing.assert_array_equal(series.read_kspace(0, 1), kspace[1].T[None])


def test_open_series_picks_the_fastmri_reader(tmp_path: Path) -> None:
    path = write_fastmri(tmp_path / "file1.h5", random_kspace((1, 1, 4, 4)))
    with open_series(path) as series:
        assert isinstance(series, FastMRISeries)
