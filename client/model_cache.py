"""A warm site worker's networks: built once per model setting, handed out as fresh copies.

Building the network draws its initial weights (a second for the small model, several for
the paper-size one) and the first build loads the text encoder; a round then overwrites
every weight with the global model's. The cache keeps one untouched network per setting
(the ``model`` and ``text`` sections and the coil batching) and gives each task a deep copy,
so nothing one round does to its network (Opacus's hooks, gradients, a device move) reaches
the next, and a task's result is the same bits as with a network built afresh. The frozen
text encoder (and its embedding cache) is shared, as ``network_from_config`` already does
within a process.
"""

from __future__ import annotations

import copy
import json
import threading
from collections import OrderedDict
from typing import Any

import torch

from cardiomm.config import config_section
from cardiomm.model.factory import network_from_config


class ModelCache:
    """Networks per setting, at most ``capacity`` of them (the least recently used goes)."""

    def __init__(self, capacity: int = 2) -> None:
        if capacity < 1:
            raise ValueError(f"a model cache holds at least one network, not {capacity}")
        self.capacity = capacity
        self.builds = 0  # networks built (not copied): what a test or a log can check
        self._networks: OrderedDict[str, tuple[torch.nn.Module, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(
        self, config: Any, coil_batching: bool | None = None
    ) -> tuple[torch.nn.Module, Any]:
        """(a fresh copy of the network ``config`` describes, its shared text encoder);
        the signature of :func:`~cardiomm.model.factory.network_from_config`."""
        key = json.dumps(
            [config_section(config, "model"), config_section(config, "text"), coil_batching],
            sort_keys=True,
            default=str,
        )
        with self._lock:
            if key in self._networks:
                self._networks.move_to_end(key)
            else:
                self._networks[key] = network_from_config(config, coil_batching=coil_batching)
                self.builds += 1
                while len(self._networks) > self.capacity:
                    self._networks.popitem(last=False)
            network, encoder = self._networks[key]
            return copy.deepcopy(network), encoder
