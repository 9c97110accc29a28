"""Build the frozen text encoder a run names (kept out of the base class's module, which the
encoders themselves import)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cardiomm.text.encoder import TextEncoder

TEXT_ENCODER_NAMES = ("minilm", "clip", "none")


def build_text_encoder(
    name: str, clip_path: str | Path | None = None, cache_dir: str | Path | None = None
) -> TextEncoder:
    """The frozen text encoder called ``name``.

    Args:
        name: ``minilm`` (all-MiniLM-L6-v2 shipped as a package, 384-d), ``clip`` (the CLIP
            text tower from the local folder ``clip_path``) or ``none`` (no metadata
            conditioning; undersampling texts become a 6-d feature vector).
        clip_path: local folder of a Hugging Face CLIP checkpoint; only for ``clip``.
        cache_dir: folder for the on-disk embedding cache; None keeps it in memory. The
            ``none`` encoder computes its features in microseconds and keeps no file.
    """
    if name not in TEXT_ENCODER_NAMES:
        raise ValueError(f"unknown text encoder {name!r}; choose one of {TEXT_ENCODER_NAMES}")
    if name != "clip" and clip_path is not None:
        raise ValueError(f"clip_path {str(clip_path)!r} is only used by the clip text encoder")
    if name == "minilm":
        from cardiomm.text.minilm import MiniLMEncoder

        return MiniLMEncoder(cache_dir=cache_dir)
    if name == "clip":
        if clip_path is None:
            raise ValueError(
                "the clip text encoder needs the local folder of a CLIP checkpoint "
                "(text.path=/path/to/clip-vit-base-patch16)"
            )
        from cardiomm.text.clip import CLIPEncoder

        return CLIPEncoder(clip_path, cache_dir=cache_dir)
    from cardiomm.text.structured import StructuredEncoder

    return StructuredEncoder()


def build_text_encoder_from_config(config: Mapping[str, Any] | Any) -> TextEncoder:
    """Build from a config node with ``name`` and optional ``path`` and ``cache_dir``
    (e.g. the Hydra node ``text`` composed from configs/text/*.yaml)."""
    get = config.get
    path, cache_dir = get("path"), get("cache_dir")
    return build_text_encoder(
        str(get("name")),
        clip_path=None if path is None else str(path),
        cache_dir=None if cache_dir is None else str(cache_dir),
    )
