"""The paper's text encoder: the CLIP text tower (ViT-B/16 in CardioMM, 512-d), read only from
a local Hugging Face checkpoint folder that the user gives; nothing is ever downloaded."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from cardiomm.text.cache import short_digest
from cardiomm.text.encoder import TextEncoder

_CLIP_MODEL_TYPES = ("clip", "clip_text_model")
_PROJECTION_KEY = "text_projection.weight"
_EXPECTED = (
    "expected a Hugging Face CLIP checkpoint folder (e.g. a local copy of "
    "openai/clip-vit-base-patch16) with config.json, the weights and the tokenizer files "
    "(tokenizer.json, or vocab.json and merges.txt)"
)


class CLIPEncoder(TextEncoder):
    """CLIP text embeddings from a local checkpoint.

    The embedding is the projected text embedding (``text_embeds``, size ``projection_dim``)
    when the checkpoint has a text projection, else the pooled output at the end-of-text token
    (size ``hidden_size``). Neither is normalised, as in CLIP. ``encode`` returns float32
    (N, dim). Texts longer than the model's context (77 tokens for CLIP) are truncated.

    A full CLIP checkpoint (text and vision towers) and a text-only one both load; the vision
    weights are skipped.

    Args:
        path: local checkpoint folder.
        cache_dir: folder for the on-disk embedding cache, or None.

    Raises:
        FileNotFoundError: ``path`` is not a folder.
        ValueError: the folder does not hold a CLIP text tower and tokenizer.
    """

    name = "clip"

    def __init__(self, path: str | Path, cache_dir: str | Path | None = None) -> None:
        self.path = Path(path).expanduser().resolve()
        config_text = _read_config_text(self.path)
        self.tokenizer = _load_tokenizer(self.path)
        model, self.has_projection = _load_text_tower(self.path)
        config = model.config
        dim = config.projection_dim if self.has_projection else config.hidden_size
        self.max_length = int(config.max_position_embeddings)
        identity = (
            f"clip|{self.path}|config={short_digest(config_text)}"
            f"|projection={self.has_projection}|dim={dim}"
        )
        super().__init__(dim=dim, identity=identity, cache_dir=cache_dir, backbone=model)

    def _embed(self, texts: list[str]) -> torch.Tensor:
        # Padding is the end-of-text token and the attention is causal, so the pooled token
        # (the first end-of-text) never sees the padding.
        tokens = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        inputs = {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}
        model: Any = self.backbone
        if self.has_projection:
            return model(**inputs).text_embeds.float()
        return model.text_model(**inputs).pooler_output.float()


def _read_config_text(path: Path) -> str:
    """The checkpoint's config.json, after checking that it describes a CLIP model."""
    if not path.is_dir():
        raise FileNotFoundError(f"CLIP checkpoint folder {path} does not exist; {_EXPECTED}")
    config_file = path / "config.json"
    if not config_file.is_file():
        raise ValueError(f"{path} does not hold a CLIP model: no config.json; {_EXPECTED}")
    text = config_file.read_text()
    try:
        model_type = json.loads(text).get("model_type")
    except (json.JSONDecodeError, AttributeError) as error:
        raise ValueError(f"{config_file} is not a readable model config: {error}") from error
    if model_type not in _CLIP_MODEL_TYPES:
        raise ValueError(
            f"{path} does not hold a CLIP model: config.json has model_type {model_type!r}, "
            f"expected one of {_CLIP_MODEL_TYPES}"
        )
    return text


def _load_tokenizer(path: Path) -> Any:
    # Without these files transformers silently builds a two-token tokenizer.
    has_fast = (path / "tokenizer.json").is_file()
    has_bpe = (path / "vocab.json").is_file() and (path / "merges.txt").is_file()
    if not (has_fast or has_bpe):
        raise ValueError(f"{path} has no CLIP tokenizer files; {_EXPECTED}")
    from transformers import CLIPTokenizer

    try:
        return CLIPTokenizer.from_pretrained(str(path), local_files_only=True)
    except (OSError, ValueError) as error:
        raise ValueError(f"cannot read the CLIP tokenizer in {path}: {error}") from error


def _load_text_tower(path: Path) -> tuple[torch.nn.Module, bool]:
    """The text tower (with projection head) and whether the checkpoint holds the projection."""
    from transformers import CLIPConfig, CLIPTextConfig, CLIPTextModelWithProjection

    try:
        if json.loads((path / "config.json").read_text())["model_type"] == "clip":
            full = CLIPConfig.from_pretrained(str(path), local_files_only=True)
            text_config = full.text_config
            # The full config keeps the projection size at its top level only.
            text_config.projection_dim = full.projection_dim
        else:
            text_config = CLIPTextConfig.from_pretrained(str(path), local_files_only=True)
        with _quiet_transformers():
            model, info = CLIPTextModelWithProjection.from_pretrained(
                str(path),
                config=text_config,
                dtype=torch.float32,
                local_files_only=True,
                output_loading_info=True,
            )
    except OSError as error:
        raise ValueError(f"cannot read CLIP weights from {path}: {error}; {_EXPECTED}") from error
    missing = set(info["missing_keys"])
    absent_tower = sorted(missing - {_PROJECTION_KEY})
    if absent_tower:
        raise ValueError(
            f"{path} does not hold CLIP text-tower weights (missing {absent_tower[:5]}); "
            f"{_EXPECTED}"
        )
    return model, _PROJECTION_KEY not in missing


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load report: skipped vision weights and an absent projection are
    expected here, and missing text weights are checked and reported by this module."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(previous)
