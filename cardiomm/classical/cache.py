"""A content-addressed store of classical reconstructions.

A classical reconstruction is a pure function of the undersampled data, the masks and the
method's settings, and the slowest of them take seconds per slice: studies that score the
same files at the same masks (the quick study, its privacy, transport and server-lr
variants, a rerun) compute each one once. The key is a hash of exactly those inputs (the
k-space and mask bytes, the settings, sigpy's version), so a stored result can never stand in
for another input; a damaged entry is ignored and recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CACHE_FORMAT = 1


def content_digest(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' shapes, dtypes and bytes."""
    digest = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def result_key(data_digest: str, description: dict[str, Any]) -> str:
    """The key of one result: the data's digest and what was done to it."""
    text = json.dumps({"format": CACHE_FORMAT, "data": data_digest, **description}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache:
    """Stored reconstructions under ``root`` (``<key[:2]>/<key>.npz``)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.npz"

    def load(self, key: str) -> dict[str, np.ndarray] | None:
        """The arrays stored under ``key``, or None (absent or unreadable)."""
        path = self._path(key)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError, EOFError) as error:
            logger.warning("ignoring the unreadable cached result %s (%s)", path, error)
            return None

    def store(self, key: str, arrays: dict[str, np.ndarray]) -> Path:
        """Write ``arrays`` under ``key`` atomically (a reader never sees half a file)."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as output:
                np.savez(output, **arrays)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path
