"""Errors for unreadable data files.

A site skips a bad file and reports it instead of stopping the federation, so every error
raised for a file carries the file's path as data (``.path``) as well as in its message.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


class DataFileError(ValueError):
    """A data file that cannot be used: not HDF5, truncated, wrong key, rank, dtype or values.

    Attributes:
        path: the offending file.
        reason: what is wrong with it, without the path.
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")

    def __reduce__(self) -> tuple[type[DataFileError], tuple[Path, str]]:
        # Keeps the error intact when a worker process sends it back to the trainer.
        return type(self), (self.path, self.reason)


class MaskFileNotFoundError(FileNotFoundError):
    """No official mask file was found for a data file.

    Attributes:
        data_path: the k-space file whose mask was looked for.
        tried: every mask path (or glob pattern) that was looked at, in order.
    """

    def __init__(self, data_path: str | Path, tried: Sequence[str | Path]) -> None:
        self.data_path = Path(data_path)
        self.tried = tuple(Path(path) for path in tried)
        listing = "\n  ".join(str(path) for path in self.tried) or "(no candidate paths)"
        super().__init__(f"{self.data_path}: no mask file found; tried:\n  {listing}")

    def __reduce__(self) -> tuple[type[MaskFileNotFoundError], tuple[Path, tuple[Path, ...]]]:
        return type(self), (self.data_path, self.tried)
