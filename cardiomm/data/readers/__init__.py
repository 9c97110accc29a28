"""Lazy k-space readers: CMRxRecon ``.mat`` (v7.3), ISMRMRD HDF5 (OCMR) and fastMRI HDF5.

``open_series(path)`` picks the reader from the file; every reader gives the same
``KSpaceSeries``: shape (frames, slices, coils, ky, kx), metadata, and
``read_kspace(frame, slice_index)`` -> complex64 (coils, ky, kx) centred k-space.
"""

from __future__ import annotations

from pathlib import Path

import h5py

from cardiomm.data.errors import DataFileError
from cardiomm.data.metadata import ScanMetadata
from cardiomm.data.readers.base import KSpaceSeries, SeriesShape, open_hdf5
from cardiomm.data.readers.cmrxrecon import CMRxReconSeries
from cardiomm.data.readers.fastmri import FastMRISeries
from cardiomm.data.readers.ismrmrd_format import IsmrmrdHeader, IsmrmrdSeries
from cardiomm.data.readers.mask_files import (
    MaskFile,
    find_mask_file,
    read_mask_file,
    read_official_mask,
)

__all__ = [
    "CMRxReconSeries",
    "FastMRISeries",
    "IsmrmrdHeader",
    "IsmrmrdSeries",
    "KSpaceSeries",
    "MaskFile",
    "SeriesShape",
    "detect_format",
    "find_mask_file",
    "open_series",
    "read_mask_file",
    "read_official_mask",
]

_MATLAB_SIGNATURE = b"MATLAB"


def detect_format(path: str | Path) -> type[KSpaceSeries]:
    """The reader class for a file, from its extension and content.

    ``.mat`` or an HDF5 file with a MATLAB header -> CMRxRecon; ``/dataset/xml`` ->
    ISMRMRD; ``kspace`` with ``ismrmrd_header`` -> fastMRI.

    Raises:
        FileNotFoundError: no such file.
        DataFileError: not HDF5, truncated, or none of the formats above.
    """
    path = Path(path)
    if path.suffix.lower() == ".mat":
        return CMRxReconSeries
    with open_hdf5(path) as handle:
        if _has_matlab_header(path, handle):
            return CMRxReconSeries
        dataset = handle.get("dataset")
        if isinstance(dataset, h5py.Group) and "xml" in dataset:
            return IsmrmrdSeries
        if "kspace" in handle and "ismrmrd_header" in handle:
            return FastMRISeries
        found = ", ".join(sorted(handle.keys())) or "none"
    raise DataFileError(
        path,
        "unknown k-space file format: expected a CMRxRecon .mat, ISMRMRD (/dataset/xml and "
        f"/dataset/data) or fastMRI (kspace and ismrmrd_header); keys found: {found}",
    )


def open_series(path: str | Path, *, metadata: ScanMetadata | None = None) -> KSpaceSeries:
    """Open a k-space file with the reader that fits it; only its header is read.

    Args:
        path: a CMRxRecon ``.mat``, ISMRMRD ``.h5`` or fastMRI ``.h5`` file.
        metadata: overrides the metadata the reader would take from the path or header.

    Raises:
        FileNotFoundError: no such file.
        DataFileError: the file cannot be read as k-space (the message names the file).
    """
    path = Path(path)
    return detect_format(path)(path, metadata=metadata)  # type: ignore[call-arg]


def _has_matlab_header(path: Path, handle: h5py.File) -> bool:
    if handle.userblock_size == 0:
        return False
    with open(path, "rb") as raw:
        return raw.read(len(_MATLAB_SIGNATURE)) == _MATLAB_SIGNATURE
