"""The slice index: every usable 2D image of a set of k-space files, built once and cached.

Building the index opens each file's header (never its k-space). A file that cannot be used
is skipped with a warning naming it and the reason, and listed in ``bad_files``; one bad file
never stops a run. The index can be cached in a JSON file, reused while each file's size and
modification time are unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from cardiomm.data.errors import DataFileError
from cardiomm.data.metadata import ScanMetadata, is_mapping_series, series_stem
from cardiomm.data.readers import open_series
from cardiomm.metrics.ranking import ranking_images
from cardiomm.progress import progress_bar

logger = logging.getLogger(__name__)

INDEX_FORMAT_VERSION = 1


@dataclasses.dataclass(frozen=True)
class IndexedFile:
    """What the index knows about one usable file.

    Attributes:
        path: the file.
        shape: (frames, slices, coils, ky, kx) in the library convention.
        metadata: the scan's metadata.
        is_undersampled: the file holds undersampled k-space (no fully sampled reference).
    """

    path: Path
    shape: tuple[int, int, int, int, int]
    metadata: ScanMetadata
    is_undersampled: bool

    @property
    def num_images(self) -> int:
        return self.shape[0] * self.shape[1]


@dataclasses.dataclass(frozen=True)
class BadFile:
    """A skipped file and why."""

    path: Path
    reason: str


@dataclasses.dataclass(frozen=True)
class ImageRef:
    """One 2D multi-coil image: file number in the index, frame and slice."""

    file_number: int
    frame: int
    slice_index: int


class SliceIndex:
    """Usable files, their images (slice-major, then frame) and the skipped files."""

    def __init__(self, files: Sequence[IndexedFile], bad_files: Sequence[BadFile] = ()) -> None:
        self.files = list(files)
        self.bad_files = list(bad_files)
        self.images = [
            ImageRef(number, frame, slice_index)
            for number, indexed in enumerate(self.files)
            for slice_index in range(indexed.shape[1])
            for frame in range(indexed.shape[0])
        ]

    def __len__(self) -> int:
        return len(self.images)

    def ranking_selection(self) -> SliceIndex:
        """The same files with only the images the CMRxRecon ranking scores."""
        selected = SliceIndex(self.files, self.bad_files)
        selected.images = [
            image
            for image in self.images
            if (image.frame, image.slice_index) in self._ranked(image.file_number)
        ]
        return selected

    def _ranked(self, file_number: int) -> set[tuple[int, int]]:
        indexed = self.files[file_number]
        frames, slices = indexed.shape[:2]
        is_mapping = is_mapping_series(series_stem(indexed.path.name))
        return set(ranking_images(frames, slices, is_mapping))

    @classmethod
    def build(
        cls,
        paths: Iterable[str | Path],
        cache_path: str | Path | None = None,
        show_progress: bool = True,
    ) -> SliceIndex:
        """Open the header of every file (or reuse a valid cache entry) and index its images.

        Args:
            paths: k-space files (.mat, ISMRMRD .h5, fastMRI .h5).
            cache_path: JSON cache of the index; read if present, rewritten when it changed.
            show_progress: show a progress bar while headers are read.
        """
        paths = [Path(path) for path in paths]
        cached = _read_cache(Path(cache_path)) if cache_path else {}
        files: list[IndexedFile] = []
        bad_files: list[BadFile] = []
        entries: dict[str, dict] = {}
        for path in progress_bar(paths, "indexing k-space files", enabled=show_progress):
            stamp = _file_stamp(path)
            entry = cached.get(str(path))
            if entry is None or entry.get("stamp") != stamp:
                entry = _index_entry(path, stamp)
            entries[str(path)] = entry
            if "error" in entry:
                logger.warning("skipping %s: %s", path, entry["error"])
                bad_files.append(BadFile(path, entry["error"]))
            else:
                files.append(_indexed_file(path, entry))
        if cache_path and entries != cached:
            _write_cache(Path(cache_path), entries)
        return cls(files, bad_files)


def _file_stamp(path: Path) -> list[int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return [status.st_size, status.st_mtime_ns]


def _index_entry(path: Path, stamp: list[int] | None) -> dict:
    try:
        with open_series(path) as series:
            return {
                "stamp": stamp,
                "shape": list(series.shape),
                "metadata": series.metadata.to_dict(),
                "is_undersampled": series.is_undersampled,
            }
    except (DataFileError, FileNotFoundError, OSError) as error:
        reason = error.reason if isinstance(error, DataFileError) else str(error)
        return {"stamp": stamp, "error": reason}


def _indexed_file(path: Path, entry: dict) -> IndexedFile:
    return IndexedFile(
        path=path,
        shape=tuple(entry["shape"]),  # type: ignore[arg-type]
        metadata=ScanMetadata.from_dict(entry["metadata"]),
        is_undersampled=bool(entry["is_undersampled"]),
    )


def _read_cache(cache_path: Path) -> dict[str, dict]:
    if not cache_path.is_file():
        return {}
    try:
        content = json.loads(cache_path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        logger.warning("ignoring unreadable index cache %s: %s", cache_path, error)
        return {}
    if content.get("version") != INDEX_FORMAT_VERSION:
        return {}
    return content.get("files", {})


def _write_cache(cache_path: Path, entries: dict[str, dict]) -> None:
    cache_path.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename, so a crash never leaves a half-written cache behind.
    partial = cache_path.with_name(f".{cache_path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps({"version": INDEX_FORMAT_VERSION, "files": entries}, indent=1))
    partial.replace(cache_path)
