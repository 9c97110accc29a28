"""Model checkpoints: weights, the model config and the text encoder they need, and
whatever the trainer adds (training config, metrics); loadable for reconstruction."""

from __future__ import annotations

import datetime
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from cardiomm.model.config import ModelConfig
from cardiomm.model.network import CardioMMNet

CHECKPOINT_FORMAT = "cardiomm-fl model checkpoint"
# 2: cascades are gradient steps that add the image network's output to the k-space estimate
# (identity at initialisation). Version 1 weights belong to the averaging cascade and would
# load into the same parameter shapes but reconstruct something else, so they are refused.
CHECKPOINT_VERSION = 2
# What network_from_checkpoint reads.
_REQUIRED_KEYS = ("model_config", "use_metadata", "text_dim", "state_dict")
OLD_LAYOUT_HINT = (
    "it was written for the version 1 network (soft data consistency that replaced the "
    "k-space estimate), whose weights mean something else in this one; retrain the model"
)


def save_checkpoint(
    path: str | Path,
    network: CardioMMNet,
    text_encoder: Mapping[str, Any] | None,
    text_dim: int,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``network``'s weights with what is needed to rebuild it.

    Args:
        path: the file to write (written to a temporary name, then renamed: a crash never
            leaves a truncated checkpoint in place of a good one).
        network: the model.
        text_encoder: the encoder's settings, e.g. ``{"name": "minilm"}`` (None: no texts).
        text_dim: the encoder's embedding size the network was built for.
        extra: anything else to keep (training config, metrics, round number).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "model_config": network.config.to_dict(),
        "use_metadata": network.use_metadata,
        "text_encoder": dict(text_encoder) if text_encoder is not None else None,
        "text_dim": text_dim,
        "state_dict": {key: value.detach().cpu() for key, value in network.state_dict().items()},
        "extra": dict(extra or {}),
    }
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    torch.save(content, partial)
    partial.replace(path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's content, with a clear error for anything that is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such checkpoint")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for a corrupt or foreign file
        raise ValueError(f"{path}: not a readable checkpoint ({load_problem(error)})") from error
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a CardioMM-FL model checkpoint")
    version = content.get("version")
    if version != CHECKPOINT_VERSION:
        hint = f": {OLD_LAYOUT_HINT}" if version == 1 else ""
        raise ValueError(f"{path}: checkpoint version {version} is not {CHECKPOINT_VERSION}{hint}")
    missing = [key for key in _REQUIRED_KEYS if key not in content]
    if missing:
        raise ValueError(f"{path}: the checkpoint lacks {', '.join(missing)}")
    if not isinstance(content["state_dict"], Mapping) or not all(
        isinstance(tensor, torch.Tensor) for tensor in content["state_dict"].values()
    ):
        raise ValueError(f"{path}: the checkpoint's state_dict is not a mapping of tensors")
    return content


def load_problem(error: BaseException) -> str:
    """``torch.load``'s error in one line: its type and the line that says what is wrong
    (a weights-only refusal spends its first lines on advice that does not apply here)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    marker = next(
        (number for number, line in enumerate(lines) if line.endswith("WeightsUnpickler error:")),
        None,
    )
    if marker is not None and marker + 1 < len(lines):
        lines = lines[marker + 1 :]
    return f"{type(error).__name__}: {lines[0][:200] if lines else 'no message'}"


def network_from_checkpoint(content: Mapping[str, Any]) -> CardioMMNet:
    """Rebuild the network and load its weights (strictly: every key must match).

    Raises:
        ValueError: the weights do not fit the network the model config builds (missing or
            extra keys, other shapes), or hold NaN or Inf; one line, the first problems named.
    """
    config = ModelConfig.from_mapping(content["model_config"])
    network = CardioMMNet(
        config, text_dim=content["text_dim"], use_metadata=content["use_metadata"]
    )
    weights = content["state_dict"]
    misfits = weight_misfits(network.state_dict(), weights)
    if misfits:
        raise ValueError(f"its weights do not fit its model config: {_listing(misfits)}")
    non_finite = [key for key, tensor in weights.items() if not torch.isfinite(tensor).all()]
    if non_finite:
        raise ValueError(f"its weights hold NaN or Inf values: {_listing(non_finite)}")
    network.load_state_dict(weights, strict=True)
    return network


def weight_misfits(
    expected: Mapping[str, torch.Tensor], weights: Mapping[str, torch.Tensor]
) -> list[str]:
    """How ``weights`` differ from the ``expected`` state dict: missing and unexpected keys,
    tensors of another shape (each a short phrase; [] when they fit)."""
    misfits = [f"{key} missing" for key in expected if key not in weights]
    misfits += [f"{key} unexpected" for key in weights if key not in expected]
    misfits += [
        f"{key} is {tuple(weights[key].shape)}, the config builds {tuple(tensor.shape)}"
        for key, tensor in expected.items()
        if key in weights and weights[key].shape != tensor.shape
    ]
    return misfits


def _listing(items: list[str], shown: int = 2) -> str:
    more = f" (and {len(items) - shown} more)" if len(items) > shown else ""
    return "; ".join(items[:shown]) + more
