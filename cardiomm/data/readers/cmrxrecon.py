"""CMRxRecon 2023 / 2024 / 2025 k-space files: MATLAB v7.3 (HDF5) with one k-space variable.

MATLAB stores ``(kx, ky, coils, slices, frames)``; h5py sees the reverse,
``(frames, slices, coils, ky, kx)``, which is already the library's order, so an image is read
as ``[frame, slice]`` with no transpose. Series without a frame axis (BlackBlood, T1w, T2w)
are 4-D ``(slices, coils, ky, kx)`` and get frames = 1. Complex values are MATLAB's
``(real, imag)`` compound. k-space is stored centred.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from cardiomm.data.errors import DataFileError
from cardiomm.data.metadata import ScanMetadata, metadata_from_path
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

FULLY_SAMPLED_VARIABLES = ("kspace_full", "kspace")
UNDERSAMPLED_VARIABLE = "kus"
# 2023 undersampled files: kspace_sub04, kspace_sub08, kspace_sub10.
_SUBSAMPLED_VARIABLE = re.compile(r"^kspace_sub(?P<acceleration>\d+)$")
# 2024 / 2025 undersampled file names: cine_sax_kus_ktRadial16.mat.
_KUS_FILE_NAME = re.compile(r"_kus_(?P<pattern>[A-Za-z]+?)(?P<acceleration>\d+)$")


def is_kspace_variable(name: str) -> bool:
    """Whether ``name`` is one of the CMRxRecon k-space variable names."""
    return (
        name in FULLY_SAMPLED_VARIABLES
        or name == UNDERSAMPLED_VARIABLE
        or _SUBSAMPLED_VARIABLE.match(name) is not None
    )


class CMRxReconSeries(KSpaceSeries):
    """A CMRxRecon ``.mat`` file.

    Args:
        path: the ``.mat`` file.
        metadata: overrides the metadata parsed from the folder layout.
        variable: the k-space variable to read; by default the single one present among
            ``kspace_full``, ``kspace``, ``kus``, ``kspace_subNN``.

    Raises:
        DataFileError: not HDF5, truncated, no / several k-space variables, rank other than 4
            or 5, or a dtype that is not complex.
    """

    format_name = "CMRxRecon"

    def __init__(
        self,
        path: str | Path,
        *,
        metadata: ScanMetadata | None = None,
        variable: str | None = None,
    ) -> None:
        path = Path(path)
        self._file = open_hdf5(path)
        try:
            self._variable = variable or _find_kspace_variable(path, self._file)
            self._dataset = require_dataset(path, self._file, self._variable)
            check_complex_dataset(path, self._dataset)
            shape = _series_shape(path, self._dataset)
        except BaseException:
            self._file.close()
            raise
        super().__init__(path, shape, metadata or metadata_from_path(path))

    @property
    def variable(self) -> str:
        """The MATLAB variable read, e.g. ``kspace_full`` or ``kspace_sub04``."""
        return self._variable

    @property
    def is_undersampled(self) -> bool:
        return self._variable == UNDERSAMPLED_VARIABLE or bool(
            _SUBSAMPLED_VARIABLE.match(self._variable)
        )

    @property
    def acceleration(self) -> int | None:
        """Nominal acceleration of undersampled data, from the variable or file name."""
        if (match := _SUBSAMPLED_VARIABLE.match(self._variable)) is not None:
            return int(match["acceleration"])
        if (match := _KUS_FILE_NAME.search(self.path.stem)) is not None:
            return int(match["acceleration"])
        return None

    @property
    def pattern_name(self) -> str | None:
        """Official pattern name of an undersampled file, e.g. ``ktRadial`` (2024 / 2025 only)."""
        match = _KUS_FILE_NAME.search(self.path.stem)
        return match["pattern"] if match is not None else None

    def _read_image(self, frame: int, slice_index: int) -> np.ndarray:
        if self._dataset.ndim == 5:
            return read_complex64(self._dataset, (frame, slice_index))
        return read_complex64(self._dataset, (slice_index,))

    def _close(self) -> None:
        self._file.close()

    def _reopen_kwargs(self) -> dict[str, Any]:
        return {"metadata": self.metadata, "variable": self._variable}


def _find_kspace_variable(path: Path, handle: h5py.File) -> str:
    # '#refs#' and '#subsystem#' are MATLAB's own bookkeeping groups, never user variables.
    keys = sorted(key for key in handle if not key.startswith("#"))
    found = [key for key in keys if is_kspace_variable(key)]
    if len(found) == 1:
        return found[0]
    expected = "one of kspace_full, kspace, kus, kspace_subNN"
    if not found:
        raise DataFileError(
            path, f"no k-space variable ({expected}); keys found: {', '.join(keys) or 'none'}"
        )
    raise DataFileError(
        path, f"several k-space variables ({', '.join(found)}); expected {expected}"
    )


def _series_shape(path: Path, dataset: h5py.Dataset) -> SeriesShape:
    if dataset.ndim == 5:
        frames, slices, coils, ky, kx = dataset.shape
    elif dataset.ndim == 4:
        frames = 1
        slices, coils, ky, kx = dataset.shape
    else:
        raise DataFileError(
            path,
            f"{dataset.name!r} has rank {dataset.ndim} {dataset.shape}; expected 5-D "
            "(frames, slices, coils, ky, kx) or 4-D (slices, coils, ky, kx) in h5py order",
        )
    shape = SeriesShape(frames, slices, coils, ky, kx)
    if min(shape) < 1:
        raise DataFileError(path, f"{dataset.name!r} is empty, shape {dataset.shape}")
    check_plausible_shape(path, shape)
    check_stored_bytes(path, dataset)
    return shape
