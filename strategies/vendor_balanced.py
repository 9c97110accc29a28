"""FedAvg whose average is balanced across vendors (see :mod:`strategies.vendor_weights`)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAvg

from strategies.vendor_weights import vendor_balanced_weights

UNKNOWN_VENDOR = "unknown"


class VendorBalancedFedAvg(FedAvg):
    """FedAvg with two-level weights: examples within a vendor, ``vendor_weighting`` across.

    The vendor of a reply comes from its ``site`` ConfigRecord (docs/federation-protocol.md);
    a reply without one counts as vendor ``unknown``.

    Args:
        vendor_weighting: ``equal``, ``sqrt`` or ``examples`` (plain FedAvg).
        **kwargs: FedAvg's arguments.
    """

    def __init__(self, vendor_weighting: str = "equal", **kwargs) -> None:
        super().__init__(**kwargs)
        vendor_balanced_weights(["check"], [1.0], vendor_weighting)  # fail early on a bad name
        self.vendor_weighting = vendor_weighting
        self.last_weights: dict[str, float] = {}

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        contents = [reply.content for reply in valid]
        vendors = [_vendor(content) for content in contents]
        examples = [float(content["metrics"][self.weighted_by_key]) for content in contents]
        weights = vendor_balanced_weights(vendors, examples, self.vendor_weighting)
        # Kept for the round's record: which site weighed how much.
        self.last_weights = {
            _site(content): weight for content, weight in zip(contents, weights, strict=True)
        }
        arrays = _weighted_average([content["arrays"] for content in contents], weights)
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        return arrays, metrics


def _weighted_average(records: list[ArrayRecord], weights: list[float]) -> ArrayRecord:
    """sum_i w_i x_i per array, in each array's own dtype."""
    keys = list(records[0].keys())
    averaged = {}
    for key in keys:
        total = sum(
            weight * record[key].numpy().astype(np.float64)
            for record, weight in zip(records, weights, strict=True)
        )
        averaged[key] = np.asarray(total, dtype=records[0][key].numpy().dtype)
    return ArrayRecord({key: Array(values) for key, values in averaged.items()})


def _vendor(content) -> str:
    site = content.get("site")
    return str(site["vendor"]) if site is not None and "vendor" in site else UNKNOWN_VENDOR


def _site(content) -> str:
    site = content.get("site")
    return str(site["site-id"]) if site is not None and "site-id" in site else "unknown"
