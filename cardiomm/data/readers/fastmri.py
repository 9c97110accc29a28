"""fastMRI multi-coil HDF5 files: ``kspace`` plus an ISMRMRD XML header.

fastMRI stores ``kspace`` as complex64 ``(slices, coils, readout, phase-encode)``: the last
axis is the phase-encode direction (fastMRI's masks select columns of the last axis). The
library wants ``(coils, ky, kx)`` with ky the phase-encode axis, so each image is transposed
over its last two axes on read, here and nowhere else. Single-coil files ``(slices, readout,
phase-encode)`` are read with one coil. There are no frames (frames = 1); k-space is centred.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from cardiomm.data.errors import DataFileError
from cardiomm.data.metadata import ScanMetadata
from cardiomm.data.readers.base import (
    KSpaceSeries,
    SeriesShape,
    check_complex_dataset,
    check_plausible_shape,
    check_stored_bytes,
    open_hdf5,
    read_complex64,
    require_dataset,
)
from cardiomm.data.readers.ismrmrd_format import IsmrmrdHeader

KSPACE_KEY = "kspace"
HEADER_KEY = "ismrmrd_header"
MASK_KEY = "mask"


class FastMRISeries(KSpaceSeries):
    """A fastMRI ``.h5`` file.

    Args:
        path: the ``.h5`` file.
        metadata: overrides the metadata read from the ``ismrmrd_header`` (vendor, field
            strength, model); without a header everything is unknown.

    Raises:
        DataFileError: not HDF5, truncated, no ``kspace``, rank other than 3 or 4, a dtype
            that is not complex, or a header that is not valid XML.
    """

    format_name = "fastMRI"

    def __init__(self, path: str | Path, *, metadata: ScanMetadata | None = None) -> None:
        path = Path(path)
        self._file = open_hdf5(path)
        try:
            self._kspace = require_dataset(path, self._file, KSPACE_KEY)
            check_complex_dataset(path, self._kspace)
            shape = _series_shape(path, self._kspace)
            header = _read_header(path, self._file)
        except BaseException:
            self._file.close()
            raise
        self._header = header
        # Attributes are tiny; reading them now keeps them available after close().
        attrs = self._file.attrs
        self._has_mask = MASK_KEY in self._file
        acquisition = attrs.get("acquisition")
        self._acquisition = _as_text(acquisition) if acquisition is not None else None
        self._max_value = _as_float(attrs.get("max"))
        self._norm = _as_float(attrs.get("norm"))
        if metadata is None:
            metadata = header.to_metadata() if header is not None else ScanMetadata()
        super().__init__(path, shape, metadata)

    @property
    def header(self) -> IsmrmrdHeader | None:
        return self._header

    @property
    def is_undersampled(self) -> bool:
        # fastMRI test and challenge files carry their sampling mask; training files do not.
        return self._has_mask

    @property
    def acquisition(self) -> str | None:
        """fastMRI's ``acquisition`` attribute, e.g. ``CORPD_FBK`` or ``AXT2``."""
        return self._acquisition

    @property
    def max_value(self) -> float | None:
        """fastMRI's ``max`` attribute: the largest value of the reference reconstruction."""
        return self._max_value

    @property
    def norm(self) -> float | None:
        """fastMRI's ``norm`` attribute: the Euclidean norm of the reference reconstruction."""
        return self._norm

    def _read_image(self, frame: int, slice_index: int) -> np.ndarray:
        stored = read_complex64(self._kspace, (slice_index,))
        if stored.ndim == 2:
            stored = stored[None]
        # (coils, readout, phase-encode) -> (coils, ky, kx).
        return np.ascontiguousarray(stored.transpose(0, 2, 1))

    def _close(self) -> None:
        self._file.close()


def _series_shape(path: Path, kspace: h5py.Dataset) -> SeriesShape:
    if kspace.ndim == 4:
        slices, coils, readout, phase = kspace.shape
    elif kspace.ndim == 3:
        coils = 1
        slices, readout, phase = kspace.shape
    else:
        raise DataFileError(
            path,
            f"'kspace' has rank {kspace.ndim} {kspace.shape}; expected 4-D "
            "(slices, coils, readout, phase-encode) or 3-D single-coil",
        )
    shape = SeriesShape(1, slices, coils, phase, readout)
    if min(shape) < 1:
        raise DataFileError(path, f"'kspace' is empty, shape {kspace.shape}")
    check_plausible_shape(path, shape)
    check_stored_bytes(path, kspace)
    return shape


def _read_header(path: Path, handle: h5py.File) -> IsmrmrdHeader | None:
    if HEADER_KEY in handle:
        text = require_dataset(path, handle, HEADER_KEY)[()]
    elif HEADER_KEY in handle.attrs:
        text = handle.attrs[HEADER_KEY]
    else:
        return None
    if isinstance(text, np.ndarray):
        text = text.reshape(-1)[0]
    return IsmrmrdHeader.from_xml(path, text)


def _as_text(value: object) -> str:
    if isinstance(value, bytes | np.bytes_):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _as_float(value: object) -> float | None:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
