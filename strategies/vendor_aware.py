"""FedAvg with vendor-aware weights and a choice of reducer, composable with server optimisers.

:class:`VendorAwareFedAvg` replaces FedAvg's example-weighted mean by
``reduce(site arrays, vendor-balanced weights)``. Flower's FedAdam / FedYogi / FedProx call
FedAvg's ``aggregate_train`` through ``super()`` and then work on its result, so putting this
class after them in the bases (``class VendorAwareFedAdam(FedAdam, VendorAwareFedAvg)``) runs
Adam on the pseudo-gradient of the vendor-balanced (or robust) aggregate.

The builders at the end register these as ``strategy.server_optimizer`` ``none`` (FedAvg, or
FedProx when ``strategy.proximal_mu`` > 0), ``fedadam`` and ``fedyogi``
(strategies/registry.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np
from flwr.app import Array, ArrayRecord, Message, MetricRecord
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, FedYogi

from federation.protocol import ARRAYS, SiteRecord, vendor_of
from strategies.reducers import REDUCERS, reduce_arrays
from strategies.registry import register_strategy
from strategies.vendor_weights import VENDOR_WEIGHTINGS, vendor_balanced_weights

if TYPE_CHECKING:
    from strategies.settings import StrategySettings


class VendorAwareFedAvg(FedAvg):
    """FedAvg whose aggregate is ``reducer`` over the sites with vendor-balanced weights.

    The vendor of a reply comes from its ``site`` ConfigRecord (docs/federation-protocol.md);
    a reply without one counts as vendor ``unknown``. Call :meth:`set_aggregation` after
    construction (the optimiser subclasses' constructors do not pass these arguments on).

    Attributes:
        vendor_weighting: ``equal``, ``sqrt`` or ``examples`` (plain FedAvg weights).
        reducer: ``mean``, ``median`` or ``trimmed_mean``.
        trim_fraction: share of the weight cut from each tail by ``trimmed_mean``.
        last_weights: per site id, its weight in the last aggregation.
    """

    vendor_weighting: str = "examples"
    reducer: str = "mean"
    trim_fraction: float = 0.2

    def set_aggregation(
        self, vendor_weighting: str = "examples", reducer: str = "mean", trim_fraction: float = 0.2
    ) -> VendorAwareFedAvg:
        """Choose the weights and the reducer; returns self."""
        if vendor_weighting not in VENDOR_WEIGHTINGS:
            raise ValueError(
                f"strategy.vendor_weighting must be one of {', '.join(VENDOR_WEIGHTINGS)}, "
                f"got {vendor_weighting!r}"
            )
        if reducer not in REDUCERS:
            raise ValueError(
                f"strategy.reducer must be one of {', '.join(REDUCERS)}, got {reducer!r}"
            )
        if not 0.0 <= trim_fraction < 0.5:
            raise ValueError(f"strategy.trim_fraction must be in [0, 0.5), got {trim_fraction}")
        self.vendor_weighting = vendor_weighting
        self.reducer = reducer
        self.trim_fraction = trim_fraction
        return self

    @property
    def last_weights(self) -> dict[str, float]:
        return dict(getattr(self, "_last_weights", {}))

    def aggregate_train(
        self, server_round: int, replies: Iterable[Message]
    ) -> tuple[ArrayRecord | None, MetricRecord | None]:
        valid, _ = self._check_and_log_replies(replies, is_train=True)
        if not valid:
            return None, None
        contents = [reply.content for reply in valid]
        weights = site_weights(contents, self.weighted_by_key, self.vendor_weighting)
        # Kept for the round's record: which site weighed how much.
        self._last_weights = {
            SiteRecord.of(reply.content, int(reply.metadata.src_node_id)).site_id: weight
            for reply, weight in zip(valid, weights, strict=True)
        }
        arrays = _reduce_records(
            [content[ARRAYS] for content in contents],
            weights,
            self.reducer,
            self.trim_fraction,
        )
        metrics = self.train_metrics_aggr_fn(contents, self.weighted_by_key)
        return arrays, metrics


class VendorAwareFedProx(FedProx, VendorAwareFedAvg):
    """FedProx (sites add the proximal term) over the vendor-aware aggregate."""


class VendorAwareFedAdam(FedAdam, VendorAwareFedAvg):
    """Server-side Adam on the pseudo-gradient of the vendor-aware aggregate."""


class VendorAwareFedYogi(FedYogi, VendorAwareFedAvg):
    """Server-side Yogi on the pseudo-gradient of the vendor-aware aggregate."""


def site_weights(contents: list, weighted_by_key: str, vendor_weighting: str) -> list[float]:
    """Each reply's aggregation weight (summing to 1) from its examples and vendor."""
    vendors = [vendor_of(content) for content in contents]
    examples = [float(content["metrics"][weighted_by_key]) for content in contents]
    return vendor_balanced_weights(vendors, examples, vendor_weighting)


def _reduce_records(
    records: list[ArrayRecord], weights: list[float], reducer: str, trim: float
) -> ArrayRecord:
    """Per array, the reducer over the sites in float64, cast back to the array's dtype."""
    reduced = {}
    for key in records[0]:
        stacked = np.stack([record[key].numpy().astype(np.float64) for record in records])
        values = reduce_arrays(stacked, weights, reducer, trim)
        reduced[key] = Array(np.asarray(values, dtype=records[0][key].numpy().dtype))
    return ArrayRecord(reduced)


# Registered in this order: the order strategy.server_optimizer's error lists them.
@register_strategy("none")
def build_fedavg(settings: StrategySettings, common: dict[str, Any]) -> FedAvg:
    """FedAvg, or FedProx when ``strategy.proximal_mu`` > 0 (vendor-aware when configured)."""
    if settings.proximal_mu > 0:
        # FedProx only writes proximal-mu into the train config; the sites add the term.
        kind = VendorAwareFedProx if settings.vendor_aware else FedProx
        return kind(**common, proximal_mu=settings.proximal_mu)
    return (VendorAwareFedAvg if settings.vendor_aware else FedAvg)(**common)


@register_strategy("fedadam")
def build_fedadam(settings: StrategySettings, common: dict[str, Any]) -> FedAdam:
    """Server-side Adam (vendor-aware when configured)."""
    kind = VendorAwareFedAdam if settings.vendor_aware else FedAdam
    return kind(**common, **_server_optimiser(settings))


@register_strategy("fedyogi")
def build_fedyogi(settings: StrategySettings, common: dict[str, Any]) -> FedYogi:
    """Server-side Yogi (vendor-aware when configured)."""
    kind = VendorAwareFedYogi if settings.vendor_aware else FedYogi
    return kind(**common, **_server_optimiser(settings))


def _server_optimiser(settings: StrategySettings) -> dict[str, float]:
    return {
        "eta": settings.server_learning_rate,
        "eta_l": settings.site_learning_rate,
        "beta_1": settings.beta_1,
        "beta_2": settings.beta_2,
        "tau": settings.tau,
    }
