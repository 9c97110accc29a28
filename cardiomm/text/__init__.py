"""Frozen text conditioning for CardioMM: metadata and undersampling texts -> embeddings.

``build_text_encoder("minilm" | "clip" | "none", clip_path=..., cache_dir=...)`` gives a
``TextEncoder`` whose ``encode(texts)`` returns float32 (N, dim) CPU tensors with no grad
history. Encoders are plain objects, never ``torch.nn.Module``s, so a model that keeps one
as an attribute does not put the frozen weights in its ``state_dict``. Importing this package
is cheap: sentence-transformers and transformers load when an encoder is built.
"""

from cardiomm.text.cache import EmbeddingCache, cache_file
from cardiomm.text.encoder import TextEncoder
from cardiomm.text.factory import (
    TEXT_ENCODER_NAMES,
    build_text_encoder,
    build_text_encoder_from_config,
)
from cardiomm.text.structured import (
    StructuredEncoder,
    is_undersampling_text,
    parse_undersampling_text,
    undersampling_features,
)

__all__ = [
    "TEXT_ENCODER_NAMES",
    "EmbeddingCache",
    "StructuredEncoder",
    "TextEncoder",
    "build_text_encoder",
    "build_text_encoder_from_config",
    "cache_file",
    "is_undersampling_text",
    "parse_undersampling_text",
    "undersampling_features",
]
