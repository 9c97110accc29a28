"""The common interface of the k-space readers, and the HDF5 helpers they share.

Every reader opens one file, reads its header and shape only, and hands out one 2D
multi-coil k-space image at a time as complex64 ``(coils, ky, kx)``, centred, in the
library's axis order; each format's own order is converted once, inside its reader.
"""

from __future__ import annotations

import abc
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import h5py
import numpy as np

from cardiomm.data.errors import DataFileError
from cardiomm.data.metadata import ScanMetadata
from cardiomm.data.path_checks import FILE, MISSING, path_problem

# MATLAB's complex compound, and the one h5py writes for numpy complex arrays.
_COMPLEX_FIELD_NAMES = (("real", "imag"), ("r", "i"))
# The largest k-space magnitude taken as data: past it the coil images' squares overflow
# float32 (3.4e38) in the root-sum-of-squares, and no receive chain produces it.
MAX_KSPACE_MAGNITUDE = 1e15


class SeriesShape(NamedTuple):
    """Size of a series in the library convention; frames or slices are 1 where a file has none."""

    frames: int
    slices: int
    coils: int
    ky: int
    kx: int

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(coils, ky, kx): the shape of one ``read_kspace`` result."""
        return self.coils, self.ky, self.kx

    @property
    def num_images(self) -> int:
        """Number of 2D multi-coil images, frames x slices."""
        return self.frames * self.slices


# What a cardiac MR k-space file can plausibly hold; past these a header is corrupt or hostile
# (and would yield tens of thousands of images from a few kilobytes).
PLAUSIBLE_SHAPE = SeriesShape(frames=1024, slices=1024, coils=128, ky=2048, kx=4096)


def check_plausible_shape(path: Path, shape: SeriesShape) -> SeriesShape:
    """``shape``, or a ``DataFileError`` when an axis is beyond what a scan can hold."""
    for name, size, limit in zip(shape._fields, shape, PLAUSIBLE_SHAPE, strict=True):
        if size > limit:
            raise DataFileError(
                path, f"implausible size: {size} {name} (at most {limit}); shape {tuple(shape)}"
            )
    return shape


def check_stored_bytes(path: Path, dataset: h5py.Dataset) -> None:
    """Raise ``DataFileError`` when ``dataset`` holds fewer bytes than its shape declares.

    A dataset with no data written reads as zeros of any declared size; an uncompressed one
    with fewer bytes than ``shape x itemsize`` is truncated or partly written. (Compressed
    datasets, as MATLAB writes v7.3 files, are legitimately smaller: only "nothing stored"
    is caught for them; an all-zero image is caught when it is read.)
    """
    stored = int(dataset.id.get_storage_size())
    declared = int(np.prod(dataset.shape, dtype=np.int64)) * dataset.dtype.itemsize
    if declared and stored == 0:
        raise DataFileError(
            path, f"{dataset.name!r} declares shape {dataset.shape} but holds no data"
        )
    compressed = dataset.compression is not None or bool(
        dataset.id.get_create_plist().get_nfilters()
    )
    if not compressed and stored < declared:
        raise DataFileError(
            path,
            f"{dataset.name!r} holds {stored} of the {declared} bytes its shape "
            f"{dataset.shape} declares (truncated or partly written)",
        )


class KSpaceSeries(abc.ABC):
    """One k-space file, opened lazily: the header at open, one 2D image per ``read_kspace``.

    A series holds an open file handle: close it (or use ``with``). Pickling does not copy the
    handle; the copy reopens the file by path, so a series can be sent to a worker process.
    """

    format_name: str = "unknown"

    def __init__(self, path: Path, shape: SeriesShape, metadata: ScanMetadata) -> None:
        self._path = path
        self._shape = shape
        self._metadata = metadata
        self._closed = False

    @property
    def path(self) -> Path:
        return self._path

    @property
    def shape(self) -> SeriesShape:
        """(frames, slices, coils, ky, kx)."""
        return self._shape

    @property
    def metadata(self) -> ScanMetadata:
        return self._metadata

    @property
    def is_undersampled(self) -> bool:
        """Whether the file holds undersampled k-space (zeros where not sampled)."""
        return False

    @property
    def closed(self) -> bool:
        return self._closed

    def read_kspace(self, frame: int, slice_index: int) -> np.ndarray:
        """One 2D multi-coil image of centred k-space, read from disk on its own.

        Args:
            frame: 0 <= frame < shape.frames.
            slice_index: 0 <= slice_index < shape.slices.

        Returns:
            complex64 (coils, ky, kx), C-contiguous.

        Raises:
            IndexError: frame or slice out of range.
            DataFileError: the image cannot be read, holds NaN / Inf, is all zero, or has
                magnitudes beyond ``MAX_KSPACE_MAGNITUDE``.
        """
        if self._closed:
            raise ValueError(f"{self._path}: series is closed")
        self._check_index("frame", frame, self._shape.frames)
        self._check_index("slice", slice_index, self._shape.slices)
        where = f"frame {frame}, slice {slice_index}"
        try:
            image = self._read_image(frame, slice_index)
        except (OSError, RuntimeError) as error:
            raise DataFileError(self._path, f"cannot read {where}: {error}") from error
        if image.shape != self._shape.image_shape or image.dtype != np.complex64:
            raise DataFileError(
                self._path,
                f"{where} read as {image.dtype} {image.shape}, "
                f"expected complex64 {self._shape.image_shape}",
            )
        if not np.isfinite(image).all():
            raise DataFileError(self._path, f"non-finite (NaN or Inf) k-space in {where}")
        largest = float(np.abs(image).max(initial=0.0))
        if largest == 0.0:
            raise DataFileError(self._path, f"all-zero k-space in {where}")
        if largest > MAX_KSPACE_MAGNITUDE:
            raise DataFileError(
                self._path,
                f"k-space magnitude {largest:.3g} in {where} is beyond any receive chain "
                f"(> {MAX_KSPACE_MAGNITUDE:.0e}; it would overflow float32 arithmetic)",
            )
        return image

    def image_indices(self) -> Iterator[tuple[int, int]]:
        """Every (frame, slice) pair, slice-major: all frames of slice 0 first."""
        for slice_index in range(self._shape.slices):
            for frame in range(self._shape.frames):
                yield frame, slice_index

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __reduce__(self) -> tuple[Any, ...]:
        return _reopen, (type(self), self._path, self._reopen_kwargs())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._path)!r}, shape={tuple(self._shape)})"

    def _reopen_kwargs(self) -> dict[str, Any]:
        """Constructor keywords that make an equal series when the file is reopened."""
        return {"metadata": self._metadata}

    def _check_index(self, name: str, index: int, size: int) -> None:
        if not 0 <= index < size:
            raise IndexError(f"{self._path}: {name} {index} out of range [0, {size})")

    @abc.abstractmethod
    def _read_image(self, frame: int, slice_index: int) -> np.ndarray:
        """complex64 (coils, ky, kx) of one image; indices are already checked."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release the file handle."""


def _reopen(cls: type[KSpaceSeries], path: Path, kwargs: dict[str, Any]) -> KSpaceSeries:
    return cls(path, **kwargs)  # type: ignore[call-arg]


def open_hdf5(path: Path) -> h5py.File:
    """Open an HDF5 (or MATLAB v7.3) file read-only; any failure is a ``DataFileError``
    (a symlink loop, a dangling symlink, a folder, permission denied included), except a
    path that is not there at all: ``FileNotFoundError``."""
    problem = path_problem(path, FILE)
    if problem == MISSING:
        raise FileNotFoundError(f"{path}: no such file")
    if problem is not None:
        raise DataFileError(path, problem)
    if not h5py.is_hdf5(path):
        raise DataFileError(path, f"not an HDF5 file{_not_hdf5_hint(path)}")
    try:
        return h5py.File(path, "r")
    except OSError as error:
        # A truncated file still has its signature; HDF5 notices the short length here.
        raise DataFileError(path, f"truncated or corrupt HDF5 file ({error})") from error


def _not_hdf5_hint(path: Path) -> str:
    with open(path, "rb") as handle:
        start = handle.read(20)
    if start.startswith(b"MATLAB 5.0 MAT-file"):
        return " (a MATLAB v5 MAT-file; only v7.3, i.e. HDF5, MAT-files are supported)"
    return ""


def require_dataset(path: Path, group: h5py.Group, key: str) -> h5py.Dataset:
    """``group[key]`` as a dataset, or a ``DataFileError`` naming the keys that are there."""
    item = group.get(key)
    if not isinstance(item, h5py.Dataset):
        found = ", ".join(sorted(group.keys())) or "none"
        what = "is not a dataset" if item is not None else "is missing"
        raise DataFileError(path, f"{key!r} {what} (keys found: {found})")
    return item


def check_complex_dataset(path: Path, dataset: h5py.Dataset) -> None:
    """Raise ``DataFileError`` unless ``dataset`` holds complex values.

    Accepted: numpy complex (h5py's own compound ``(r, i)``) and MATLAB's compound
    ``(real, imag)`` of floats.
    """
    dtype = dataset.dtype
    if np.issubdtype(dtype, np.complexfloating):
        return
    names = dtype.names
    if (
        names is not None
        and tuple(names) in _COMPLEX_FIELD_NAMES
        and all(np.issubdtype(dtype.fields[name][0], np.floating) for name in names)
    ):
        return
    raise DataFileError(
        path,
        f"{dataset.name!r} has dtype {dtype}, expected complex k-space "
        "(a compound of float real/imag parts)",
    )


def read_complex64(dataset: h5py.Dataset, selection: tuple[int | slice, ...]) -> np.ndarray:
    """``dataset[selection]`` as complex64, read straight into its final buffer.

    MATLAB's ``(real, imag)`` compound is read into a view of the complex buffer with those
    field names, so HDF5 converts precision (e.g. MATLAB double pairs) while reading and no
    second copy of the image is made.
    """
    out = np.empty(_selection_shape(dataset.shape, selection), dtype=np.complex64)
    names = dataset.dtype.names
    if names is None:
        dataset.read_direct(out, source_sel=selection)
    else:
        fields = np.dtype([(names[0], np.float32), (names[1], np.float32)])
        dataset.read_direct(out.view(fields), source_sel=selection)
    return out


def _selection_shape(shape: tuple[int, ...], selection: tuple[int | slice, ...]) -> tuple[int, ...]:
    kept = [
        len(range(*index.indices(size)))
        for size, index in zip(shape, selection, strict=False)
        if isinstance(index, slice)
    ]
    return (*kept, *shape[len(selection) :])
