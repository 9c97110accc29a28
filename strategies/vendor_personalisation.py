"""Vendor-personalised parameters (FedBN / clustered style, with vendors as the clusters).

Parameters whose names match the configured patterns (for example the metadata adapters or
the data-consistency weights) are averaged per vendor instead of across the federation: the
server keeps one copy per vendor and sends each site the shared weights plus its vendor's
copy. A vendor the server has not heard from gets the fallback: the across-vendor average of
the vendor copies (weighted like the shared parameters), which is also what the global model
holds for those parameters.

Personalising from a later round (``personalise_from_round``) makes FedAvg followed by
per-vendor fine-tuning: every parameter the patterns name is shared until that round, and
from it on each vendor's sites continue from the shared model on a copy of their own.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, Message

from federation.protocol import NUM_EXAMPLES, vendor_of, with_records
from strategies.reducers import reduce_arrays
from strategies.vendor_weights import vendor_balanced_weights

ARRAYS_KEY = "arrays"


def personalised_keys(keys: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """The state-dict keys matching any pattern (fnmatch, e.g. ``*.adapters.*``).

    Raises:
        ValueError: a pattern matches no key (a typo would otherwise silently share it).
    """
    keys = list(keys)
    selected = set()
    for pattern in patterns:
        matched = fnmatch.filter(keys, pattern)
        if not matched:
            raise ValueError(
                f"strategy.personalised pattern {pattern!r} matches no parameter of the model"
            )
        selected.update(matched)
    return [key for key in keys if key in selected]


class VendorPersonalisation:
    """The per-vendor copies of the personalised parameters, and who is which vendor.

    Args:
        patterns: parameter name patterns to personalise.
        vendor_weighting: how the fallback weighs the vendors (``equal``, ``sqrt``,
            ``examples``).
        from_round: the first round whose replies make vendor copies; before it the
            parameters are shared like all others.
    """

    def __init__(
        self, patterns: Sequence[str], vendor_weighting: str = "equal", from_round: int = 1
    ) -> None:
        if not patterns:
            raise ValueError("vendor personalisation needs at least one parameter pattern")
        if isinstance(from_round, bool) or not isinstance(from_round, int) or from_round < 1:
            raise ValueError(
                f"strategy.personalise_from_round must be a round >= 1, got {from_round!r}"
            )
        self.patterns = list(patterns)
        self.vendor_weighting = vendor_weighting
        self.from_round = from_round
        self.parts: dict[str, dict[str, np.ndarray]] = {}
        self.vendor_examples: dict[str, float] = {}
        self.node_vendors: dict[int, str] = {}

    def keys(self, arrays: Iterable[str]) -> list[str]:
        return personalised_keys(arrays, self.patterns)

    def arrays_for(self, vendor: str | None, global_arrays: ArrayRecord) -> ArrayRecord:
        """The global arrays with the vendor's copy in place (the fallback for None or an
        unseen vendor: the global arrays themselves)."""
        part = self.parts.get(vendor) if vendor is not None else None
        if part is None:
            return global_arrays
        return ArrayRecord(
            {
                key: Array(part[key]) if key in part else array
                for key, array in global_arrays.items()
            }
        )

    def personalise(self, messages: Iterable[Message]) -> None:
        """Put each message's destination vendor's copy into its arrays (in place)."""
        for message in messages:
            vendor = self.node_vendors.get(int(message.metadata.dst_node_id))
            if vendor is not None and vendor in self.parts:
                arrays = self.arrays_for(vendor, message.content[ARRAYS_KEY])
                message.content = with_records(message.content, {ARRAYS_KEY: arrays})

    def learn_vendors(self, replies: Iterable[Message]) -> None:
        """Remember each replying node's vendor (from its ``site`` record)."""
        for reply in replies:
            self.node_vendors[int(reply.metadata.src_node_id)] = vendor_of(reply.content)

    def update(
        self, replies: Sequence[Message], aggregated: ArrayRecord, server_round: int
    ) -> ArrayRecord:
        """New vendor copies from the accepted replies; returns ``aggregated`` with the
        fallback in the personalised parameters.

        Each vendor's copy is the example-weighted mean of its sites' replies; a vendor
        without replies (or examples) this round keeps its copy. Before ``from_round``
        nothing is personalised and ``aggregated`` comes back as it was.
        """
        if server_round < self.from_round:
            return aggregated
        keys = self.keys(aggregated.keys())
        by_vendor: dict[str, list[Message]] = {}
        for reply in replies:
            by_vendor.setdefault(vendor_of(reply.content), []).append(reply)
        for vendor, members in sorted(by_vendor.items()):
            examples = [float(reply.content["metrics"][NUM_EXAMPLES]) for reply in members]
            total = sum(examples)
            if total <= 0:
                continue
            self.parts[vendor] = {
                key: _weighted_mean(
                    [reply.content[ARRAYS_KEY][key].numpy() for reply in members],
                    [count / total for count in examples],
                )
                for key in keys
            }
            self.vendor_examples[vendor] = total
        fallback = self.fallback(keys)
        if not fallback:
            return aggregated
        return ArrayRecord(
            {
                key: Array(fallback[key]) if key in fallback else array
                for key, array in aggregated.items()
            }
        )

    def fallback(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        """The across-vendor average of the vendor copies (empty before any copy exists)."""
        vendors = sorted(self.parts)
        if not vendors:
            return {}
        weights = vendor_balanced_weights(
            vendors,
            [self.vendor_examples.get(vendor, 0.0) for vendor in vendors],
            self.vendor_weighting,
        )
        return {
            key: _weighted_mean([self.parts[vendor][key] for vendor in vendors], weights)
            for key in keys
        }

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs, as torch tensors and plain values."""
        return {
            "patterns": list(self.patterns),
            "from_round": self.from_round,
            "parts": self.vendor_state_dicts(),
            "vendor_examples": dict(self.vendor_examples),
            "node_vendors": {str(node): vendor for node, vendor in self.node_vendors.items()},
        }

    def restore(self, state: Mapping[str, Any]) -> None:
        if list(state.get("patterns", [])) != self.patterns:
            raise ValueError(
                f"the checkpoint personalised {state.get('patterns')}, this run "
                f"{self.patterns}; resume with the same strategy.personalised"
            )
        if int(state.get("from_round", 1)) != self.from_round:
            raise ValueError(
                f"the checkpoint personalised from round {state.get('from_round', 1)}, this "
                f"run from {self.from_round}; resume with the same "
                "strategy.personalise_from_round"
            )
        self.parts = {
            vendor: {key: value.numpy().copy() for key, value in part.items()}
            for vendor, part in state["parts"].items()
        }
        self.vendor_examples = {
            key: float(value) for key, value in state["vendor_examples"].items()
        }
        self.node_vendors = {int(node): vendor for node, vendor in state["node_vendors"].items()}

    def vendor_state_dicts(self) -> dict[str, dict[str, torch.Tensor]]:
        """Per vendor, its copy of the personalised parameters as tensors (for export)."""
        return {
            vendor: {
                key: torch.from_numpy(np.array(value, copy=True)) for key, value in part.items()
            }
            for vendor, part in self.parts.items()
        }


def _weighted_mean(arrays: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """sum_i w_i a_i in float64, in the arrays' own dtype."""
    stacked = np.stack([array.astype(np.float64) for array in arrays])
    return np.asarray(reduce_arrays(stacked, weights, "mean"), dtype=arrays[0].dtype)
