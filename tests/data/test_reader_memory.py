"""Laziness: opening reads the header only, and one read touches about one image, not the file.

numpy registers its buffers with tracemalloc, so a reader that loaded the whole k-space array
would show a peak of the file's size; /proc/self/io counts the bytes the process read.
"""

import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import h5py
import ismrmrd
import numpy as np
import pytest

from cardiomm.data.matlab import write_mat_v73
from cardiomm.data.readers import KSpaceSeries, open_series

# (frames, slices, coils, ky, kx): 16 MiB of complex64 in 64 images of 256 KiB.
SHAPE = (16, 4, 4, 64, 128)
IMAGE_BYTES = 4 * 64 * 128 * 8
FILE_BYTES = int(np.prod(SHAPE)) * 8
PROC_IO = Path("/proc/self/io")


@contextmanager
def traced_peak() -> Iterator[list[int]]:
    """Peak bytes newly allocated (and tracked) inside the block, in a one-element list."""
    result = [0]
    tracemalloc.start()
    try:
        yield result
        result[0] = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def bytes_read_by(action: Callable[[], object]) -> int:
    """Bytes the process read through read()/pread() while ``action`` ran."""

    def read_chars() -> int:
        fields = dict(line.split(": ") for line in PROC_IO.read_text().splitlines())
        return int(fields["rchar"])

    before = read_chars()
    action()
    return read_chars() - before


@pytest.fixture(scope="module")
def cmrxrecon_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    values = np.ones(SHAPE, dtype=np.complex64)
    values *= np.arange(SHAPE[0], dtype=np.float32)[:, None, None, None, None]
    folder = tmp_path_factory.mktemp("memory")
    return write_mat_v73(folder / "cine_sax.mat", {"kspace_full": values})


@pytest.fixture(scope="module")
def fastmri_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("memory") / "file1.h5"
    slices = SHAPE[0] * SHAPE[1]
    with h5py.File(path, "w") as handle:
        handle.create_dataset("kspace", data=np.ones((slices, 4, 128, 64), np.complex64))
        handle.create_dataset("ismrmrd_header", data=b"<ismrmrdHeader/>")
    return path


@pytest.fixture(scope="module")
def ismrmrd_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 phases x 4 slices x 64 lines of 4 coils x 128 samples, in the ISMRMRD layout
    (written in one go; the ismrmrd package's append is one HDF5 write per readout)."""
    path = tmp_path_factory.mktemp("memory") / "ocmr.h5"
    frames, slices, coils, num_ky, num_kx = SHAPE
    table = np.zeros(frames * slices * num_ky, dtype=ismrmrd.hdf5.acquisition_dtype)
    head = table["head"]
    head["version"] = 1
    head["number_of_samples"] = num_kx
    head["active_channels"] = coils
    head["available_channels"] = coils
    head["center_sample"] = num_kx // 2
    grid = np.indices((slices, num_ky, frames)).reshape(3, -1)
    head["idx"]["slice"], head["idx"]["kspace_encode_step_1"], head["idx"]["phase"] = grid
    readout = np.ones(2 * coils * num_kx, dtype=np.float32)
    table["data"] = [readout] * table.size
    table["traj"] = [np.zeros(0, dtype=np.float32)] * table.size
    xml = (
        "<ismrmrdHeader><encoding><encodedSpace><matrixSize><x>128</x><y>64</y><z>1</z>"
        "</matrixSize></encodedSpace><encodingLimits><kspace_encoding_step_1><minimum>0"
        "</minimum><maximum>63</maximum><center>32</center></kspace_encoding_step_1>"
        "</encodingLimits><trajectory>cartesian</trajectory></encoding></ismrmrdHeader>"
    )
    with h5py.File(path, "w") as handle:
        handle.create_dataset("dataset/data", data=table)
        handle.create_dataset("dataset/xml", data=[xml.encode()], dtype=h5py.string_dtype())
    return path


def peak_of_one_read(path: Path, frame: int = 7, slice_index: int = 2) -> int:
    with open_series(path) as series, traced_peak() as peak:
        series.read_kspace(frame, slice_index)
    return peak[0]


def test_opening_a_file_allocates_less_than_one_image(cmrxrecon_file: Path) -> None:
    with traced_peak() as peak:
        series: KSpaceSeries = open_series(cmrxrecon_file)
    series.close()
    assert peak[0] < IMAGE_BYTES


def test_one_cmrxrecon_read_allocates_about_one_image(cmrxrecon_file: Path) -> None:
    assert cmrxrecon_file.stat().st_size > FILE_BYTES
    assert peak_of_one_read(cmrxrecon_file) < 2 * IMAGE_BYTES


def test_one_cmrxrecon_read_returns_that_frame(cmrxrecon_file: Path) -> None:
    with open_series(cmrxrecon_file) as series:
        assert np.all(series.read_kspace(7, 2) == 7)


@pytest.mark.skipif(not PROC_IO.exists(), reason="needs Linux /proc/self/io")
def test_one_cmrxrecon_read_reads_about_one_image_from_disk(cmrxrecon_file: Path) -> None:
    with open_series(cmrxrecon_file) as series:
        read = bytes_read_by(lambda: series.read_kspace(7, 2))
    assert IMAGE_BYTES <= read < 2 * IMAGE_BYTES


def test_one_fastmri_read_allocates_about_one_image(fastmri_file: Path) -> None:
    # The read buffer plus its transposed copy.
    assert peak_of_one_read(fastmri_file, 0, 30) < 3 * IMAGE_BYTES


def test_one_ismrmrd_read_allocates_about_one_image(ismrmrd_file: Path) -> None:
    assert ismrmrd_file.stat().st_size > FILE_BYTES
    # The readouts as read, and the grid they are placed on.
    assert peak_of_one_read(ismrmrd_file) < 3 * IMAGE_BYTES
