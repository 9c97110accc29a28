"""The global network on the server: initial weights, and the final CardioMM checkpoint.

The server builds the same network as the sites (model and text config) so that it can
start from seeded fresh weights or a given checkpoint, evaluate the global model, and write
a model checkpoint that ``cardiomm reconstruct`` / ``cardiomm evaluate`` load.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from cardiomm.config import config_section
from cardiomm.model.checkpoint import read_checkpoint, save_checkpoint
from cardiomm.model.factory import encoder_settings, network_from_config
from cardiomm.model.network import CardioMMNet
from cardiomm.text import TextEncoder

logger = logging.getLogger(__name__)


class GlobalModel:
    """The network the federation trains, with the text encoder it is sized for.

    Args:
        config: the composed config (``model``, ``text``, ``seed``).
        initial_checkpoint: a CardioMM model checkpoint whose weights to start from.
    """

    def __init__(self, config: DictConfig, initial_checkpoint: str | None = None) -> None:
        self.config = config
        self.text_config = config_section(config, "text")
        # The same seed gives the same initial weights; the server's RNG streams stay as
        # they were.
        self.network: CardioMMNet
        self.encoder: TextEncoder | None
        self.network, self.encoder = network_from_config(config, seed=int(config.seed))
        if initial_checkpoint:
            self._load_initial(Path(initial_checkpoint))

    def _load_initial(self, path: Path) -> None:
        content = read_checkpoint(path)
        try:
            self.network.load_state_dict(content["state_dict"], strict=True)
        except RuntimeError as error:
            raise ValueError(
                f"{path}: its weights do not fit the configured model "
                f"(model={self.config.model.name}, text={self.config.text.name}): {error}"
            ) from error
        logger.info("initial weights from %s", path)

    def state_dict(self) -> OrderedDict[str, torch.Tensor]:
        """The current weights (detached CPU tensors)."""
        return OrderedDict(
            (key, value.detach().cpu().clone()) for key, value in self.network.state_dict().items()
        )

    def load(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Set the weights (strictly: every key must match)."""
        self.network.load_state_dict(state_dict, strict=True)

    def save_final(self, path: Path, extra: dict[str, Any]) -> Path:
        """A CardioMM model checkpoint of the current weights (``read_checkpoint`` loads it)."""
        return save_checkpoint(
            path,
            self.network,
            encoder_settings(self.text_config) if self.encoder is not None else None,
            self.encoder.dim if self.encoder is not None else 0,
            extra=extra,
        )
