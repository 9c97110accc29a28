"""MATLAB v7.3 files: HDF5 with a 512-byte MATLAB header in the user block.

h5py sees the reverse of MATLAB's axis order, so an array written here with numpy shape
(frames, slices, coils, ky, kx) is (kx, ky, coils, slices, frames) in MATLAB, as in the
CMRxRecon distribution. Complex arrays are stored as MATLAB does: a compound dtype with
fields ``real`` and ``imag``.
"""

from __future__ import annotations

import datetime
from pathlib import Path

import h5py
import numpy as np

USER_BLOCK_BYTES = 512
_HEADER_TEXT_BYTES = 116

_MATLAB_CLASSES = {
    np.dtype(np.float64): "double",
    np.dtype(np.float32): "single",
    np.dtype(np.int8): "int8",
    np.dtype(np.int16): "int16",
    np.dtype(np.int32): "int32",
    np.dtype(np.int64): "int64",
    np.dtype(np.uint8): "uint8",
    np.dtype(np.uint16): "uint16",
    np.dtype(np.uint32): "uint32",
    np.dtype(np.uint64): "uint64",
    np.dtype(np.bool_): "logical",
}


def complex_dtype(real_dtype: np.dtype | type = np.float32) -> np.dtype:
    """MATLAB's on-disk complex type: compound (real, imag)."""
    return np.dtype([("real", real_dtype), ("imag", real_dtype)])


def matlab_header(created: datetime.datetime | None = None) -> bytes:
    """The 128-byte MAT-file header text + version + endian mark, as MATLAB writes it."""
    created = created or datetime.datetime.now(datetime.UTC)
    text = (
        "MATLAB 7.3 MAT-file, Platform: GLNXA64, "
        f"Created on: {created:%a %b %d %H:%M:%S %Y} HDF5 schema 1.00 ."
    ).encode("ascii")
    header = text.ljust(_HEADER_TEXT_BYTES, b" ")
    subsystem_offset = b"\x00" * 8
    version = (0x0200).to_bytes(2, "little")
    endian = b"IM"
    return header + subsystem_offset + version + endian


def write_mat_v73(
    path: str | Path,
    variables: dict[str, np.ndarray],
    compression: str | None = None,
) -> Path:
    """Write numpy arrays as MATLAB v7.3 variables, readable by MATLAB and by h5py.

    Args:
        path: the .mat file to create (parent folders are made).
        variables: name -> array in h5py axis order (MATLAB's reversed). Complex arrays are
            written as (real, imag) compounds of their real precision; bool as ``logical``.
        compression: optional HDF5 filter, e.g. ``"gzip"`` (MATLAB reads it).

    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w", userblock_size=USER_BLOCK_BYTES) as handle:
        for name, array in variables.items():
            array = np.asarray(array)
            if np.iscomplexobj(array):
                real_dtype = np.float64 if array.dtype == np.complex128 else np.float32
                stored = np.empty(array.shape, dtype=complex_dtype(real_dtype))
                stored["real"] = array.real
                stored["imag"] = array.imag
                matlab_class = _MATLAB_CLASSES[np.dtype(real_dtype)]
            else:
                stored = array.astype(np.uint8) if array.dtype == np.bool_ else array
                if array.dtype not in _MATLAB_CLASSES:
                    raise TypeError(f"cannot store dtype {array.dtype} of {name!r} in a MAT-file")
                matlab_class = _MATLAB_CLASSES[array.dtype]
            chunks = _frame_chunks(stored.shape) if stored.ndim >= 3 else None
            dataset = handle.create_dataset(
                name, data=stored, compression=compression, chunks=chunks
            )
            dataset.attrs["MATLAB_class"] = np.bytes_(matlab_class)
            if array.dtype == np.bool_:
                dataset.attrs["MATLAB_int_decode"] = np.int32(1)
    with open(path, "r+b") as handle:
        handle.write(matlab_header())
    return path


def _frame_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    # One chunk per 2D multi-coil image (coils, ky, kx) keeps single-slice reads cheap.
    leading = (1,) * (len(shape) - 3)
    return (*leading, *shape[-3:])
