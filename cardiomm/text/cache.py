"""Embedding cache: every distinct text is encoded once per encoder, in memory and on disk.

A site sees only a few dozen distinct texts (metadata combinations times 12 undersampling
settings), so the cache turns the frozen text tower into a table lookup after the first epoch.
The optional file lets a restarted process, or a second site process on the same machine,
skip the text tower altogether.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from pathlib import Path

import torch

# Bumped when the file layout changes, so that old files are ignored rather than misread.
_FORMAT_VERSION = 1


def cache_file(cache_dir: str | Path, name: str, identity: str) -> Path:
    """The cache file of one encoder: ``<cache_dir>/<name>-<12 hex digits of identity>.pt``.

    ``identity`` must change whenever the embeddings could (model, checkpoint path, size), so
    that two encoders never share a file.
    """
    return Path(cache_dir) / f"{name}-{short_digest(identity)}.pt"


def short_digest(text: str) -> str:
    """12 hex digits of the SHA-256 of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


class EmbeddingCache:
    """Map from text to its float32 (dim,) embedding, optionally mirrored in a file.

    The file is read once at construction and rewritten atomically (temporary file, then
    rename) after each batch of new entries, merged with what other processes wrote in the
    meantime. A file that is unreadable or belongs to another encoder is ignored with a
    warning: a stale cache must never stop a site.

    Args:
        dim: embedding size; every stored tensor has shape (dim,).
        identity: the encoder identity the file must carry.
        path: the cache file, or None to keep the cache in memory only.
    """

    def __init__(self, dim: int, identity: str, path: str | Path | None = None) -> None:
        self.dim = int(dim)
        self.identity = identity
        self.path = None if path is None else Path(path)
        self._entries: dict[str, torch.Tensor] = {}
        if self.path is not None:
            # Fail now, with the folder's name, rather than at the first write.
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._entries.update(self._read())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, text: object) -> bool:
        return text in self._entries

    def get(self, text: str) -> torch.Tensor:
        """The stored float32 (dim,) embedding of ``text``; KeyError if absent."""
        return self._entries[text]

    def missing(self, texts: list[str]) -> list[str]:
        """Distinct texts not yet cached, in first-seen order."""
        return [text for text in dict.fromkeys(texts) if text not in self._entries]

    def add(self, embeddings: dict[str, torch.Tensor]) -> None:
        """Store float32 (dim,) embeddings and, with a file, persist them."""
        for text, embedding in embeddings.items():
            self._entries[text] = self._checked(text, embedding)
        if self.path is not None and embeddings:
            self._write()

    def _checked(self, text: str, embedding: torch.Tensor) -> torch.Tensor:
        if embedding.shape != (self.dim,):
            raise ValueError(
                f"embedding of {text!r} has shape {tuple(embedding.shape)}, expected ({self.dim},)"
            )
        # A private contiguous copy: callers may edit what they passed in, and saving a view
        # would write its whole base storage.
        return embedding.detach().to(device="cpu", dtype=torch.float32).clone()

    def _read(self) -> dict[str, torch.Tensor]:
        assert self.path is not None
        if not self.path.is_file():
            return {}
        try:
            content = torch.load(self.path, map_location="cpu", weights_only=True)
            if (
                content.get("version") != _FORMAT_VERSION
                or content.get("identity") != self.identity
                or content.get("dim") != self.dim
            ):
                raise ValueError("it was written by another encoder or format version")
            return {
                text: self._checked(text, embedding)
                for text, embedding in content["embeddings"].items()
            }
        except Exception as error:  # any unreadable cache is recomputed, never fatal
            warnings.warn(f"ignoring the text embedding cache {self.path}: {error}", stacklevel=3)
            return {}

    def _write(self) -> None:
        assert self.path is not None
        # Another process may have added texts since we read the file; keep theirs too.
        merged = {**self._read(), **self._entries}
        content = {
            "version": _FORMAT_VERSION,
            "identity": self.identity,
            "dim": self.dim,
            "embeddings": merged,
        }
        try:
            handle, temporary = tempfile.mkstemp(
                dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
            )
            try:
                with os.fdopen(handle, "wb") as stream:
                    torch.save(content, stream)
                    stream.flush()
                    os.fsync(stream.fileno())
                os.replace(temporary, self.path)
            finally:
                if os.path.exists(temporary):
                    os.unlink(temporary)
        except OSError as error:
            # The embeddings are still in memory; only the saving for next time is lost.
            warnings.warn(
                f"could not write the text embedding cache {self.path}: {error}", stacklevel=3
            )
            return
        self._entries = merged
