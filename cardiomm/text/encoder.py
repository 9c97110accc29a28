"""The frozen text encoder interface (cardiomm/text/factory.py builds one by name).

CardioMM reads two texts per scan, a metadata text and an undersampling text, through one
frozen encoder; the model's trainable projection heads sit on top of the embeddings.

The encoder is deliberately a plain object, not a ``torch.nn.Module``: a model that stores it
as an attribute therefore never registers it as a submodule, so the frozen weights never
appear in the model's ``state_dict``, never travel in a federated reply, and are not moved by
``model.to(device)``. The model moves the (small) embeddings to its device instead.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from cardiomm.text.cache import EmbeddingCache, cache_file


class TextEncoder(abc.ABC):
    """A frozen map from texts to fixed-size embeddings, with every distinct text cached.

    Attributes:
        name: ``minilm``, ``clip`` or ``none``.
        dim: embedding size.
        conditions_on_metadata: False when metadata texts carry no information (the ``none``
            encoder, as in the paper's CardioSM ablation), so the model can skip its adapters.
        identity: a string that changes whenever the embeddings could; it names the cache file.
        backbone: the frozen torch module behind the encoder, or None.
    """

    name: str
    conditions_on_metadata: bool = True

    def __init__(
        self,
        dim: int,
        identity: str,
        cache_dir: str | Path | None = None,
        backbone: torch.nn.Module | None = None,
    ) -> None:
        self.dim = int(dim)
        self.identity = identity
        self.backbone = None if backbone is None else freeze(backbone)
        path = None if cache_dir is None else cache_file(cache_dir, self.name, identity)
        self.cache = EmbeddingCache(self.dim, identity, path)

    def encode(self, texts: Sequence[str]) -> torch.Tensor:
        """Embed ``texts``.

        The distinct texts not cached yet go through the frozen model in one batch; every
        later call answers from the cache, so a text's embedding is bitwise the same at every
        call. (Re-encoding the text in another batch could change its last bits through
        padding, about 1e-7; the cache and its file are the reference.)

        Args:
            texts: N strings.

        Returns:
            float32 (N, dim) on the CPU, a fresh tensor with no grad history
            (``requires_grad`` False even under ``torch.enable_grad()``).
        """
        if isinstance(texts, str):
            raise TypeError("encode takes a sequence of texts, not a single string")
        texts = list(texts)
        missing = self.cache.missing(texts)
        if missing:
            with torch.no_grad():
                embeddings = self._embed(missing)
            if embeddings.shape != (len(missing), self.dim):
                raise RuntimeError(
                    f"{self.name} encoder gave shape {tuple(embeddings.shape)} for "
                    f"{len(missing)} texts, expected ({len(missing)}, {self.dim})"
                )
            self.cache.add(dict(zip(missing, embeddings, strict=True)))
        if not texts:
            return torch.zeros(0, self.dim)
        return torch.stack([self.cache.get(text) for text in texts])

    @abc.abstractmethod
    def _embed(self, texts: list[str]) -> torch.Tensor:
        """float32 (len(texts), dim) embeddings of distinct texts; called under
        ``torch.no_grad``."""

    def __deepcopy__(self, memo: dict[int, Any]) -> TextEncoder:
        # Frozen and shared: copying a model (e.g. for a proximal term or an EMA) must not
        # duplicate the text tower.
        return self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dim={self.dim}, cached={len(self.cache)})"
        )


def freeze(module: torch.nn.Module) -> torch.nn.Module:
    """Put ``module`` in eval mode with every parameter's ``requires_grad`` False."""
    module.eval()
    module.requires_grad_(False)
    return module
