"""Build the aggregation strategy from a run's settings.

The strategy is the builder ``strategy.server_optimizer`` names (strategies/registry.py:
Flower's FedAvg / FedProx / FedAdam / FedYogi or their vendor-aware versions, or a strategy
module's own), with the vendor-aware weights and reducer set when they depart from FedAvg,
wrapped in vendor personalisation (strategies/personalised_strategy.py) or one of Flower's
central-DP wrappers as configured. Its server state is saved and restored by
strategies/server_state.py.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Any, Protocol

from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAvg,
    Strategy,
)
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)

from cardiomm.privacy import CentralDPSettings, PrivacySettings
from federation.protocol import SLICES_SEEN
from strategies.personalised_strategy import VendorPersonalisedStrategy
from strategies.registry import strategy_builder
from strategies.settings import StrategySettings
from strategies.vendor_aware import VendorAwareFedAvg
from strategies.vendor_personalisation import VendorPersonalisation

logger = logging.getLogger(__name__)


class RunSettings(Protocol):
    """What the factory reads of a run's settings (server.settings.FederationSettings)."""

    @property
    def aggregation(self) -> StrategySettings: ...

    @property
    def fraction_train(self) -> float: ...

    @property
    def fraction_evaluate(self) -> float: ...

    @property
    def min_sites(self) -> int: ...

    @property
    def privacy(self) -> PrivacySettings: ...


def build_strategy(settings: RunSettings, model_keys: Iterable[str] | None = None) -> Strategy:
    """The configured Flower strategy; sampling limits come from ``federation.min_sites``.

    Args:
        model_keys: the global model's state-dict keys; with them, a personalisation
            pattern that matches none of them is refused now rather than after a round.
    """
    aggregation = settings.aggregation
    central_dp = settings.privacy.central_dp
    common: dict[str, Any] = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": settings.fraction_evaluate,
        "min_train_nodes": settings.min_sites,
        "min_evaluate_nodes": settings.min_sites if settings.fraction_evaluate > 0 else 0,
        "min_available_nodes": settings.min_sites,
        "train_metrics_aggr_fn": nan_aware_mean,
        "evaluate_metrics_aggr_fn": nan_aware_mean,
    }
    if central_dp.enabled:
        # Central DP bounds each site's share of the aggregate by clipping_norm / sites, which
        # holds for equal weights: weigh by the slices each site saw this round (the same
        # local steps everywhere) instead of by its data size.
        common["weighted_by_key"] = SLICES_SEEN
    strategy = strategy_builder(aggregation.server_optimizer)(aggregation, common)
    if isinstance(strategy, VendorAwareFedAvg):
        strategy.set_aggregation(
            aggregation.vendor_weighting, aggregation.reducer, aggregation.trim_fraction
        )
    elif aggregation.vendor_aware:
        raise ValueError(
            f"strategy.server_optimizer={aggregation.server_optimizer} builds "
            f"{type(strategy).__name__}, which has no vendor-aware aggregation; use "
            "strategy.vendor_weighting=examples and strategy.reducer=mean"
        )
    if aggregation.personalised:
        return personalise(strategy, aggregation, model_keys)
    if central_dp.enabled:
        return wrap_central_dp(strategy, central_dp, settings.min_sites)
    return strategy


def personalise(
    strategy: Strategy, aggregation: StrategySettings, model_keys: Iterable[str] | None
) -> VendorPersonalisedStrategy:
    """``strategy`` inside the vendor-personalisation wrapper ``aggregation`` describes."""
    personalisation = VendorPersonalisation(
        aggregation.personalised, aggregation.vendor_weighting, aggregation.personalise_from_round
    )
    if model_keys is not None:
        keys = personalisation.keys(model_keys)  # refuses a pattern that matches nothing
        logger.info("%d parameter tensors are kept per vendor", len(keys))
    return VendorPersonalisedStrategy(strategy, personalisation)


def wrap_central_dp(strategy: Strategy, dp: CentralDPSettings, min_sites: int) -> Strategy:
    """``strategy`` inside Flower's DifferentialPrivacy{Server,Client}Side{Fixed,Adaptive}Clipping.

    Flower's accountant (no amplification: every sampled site takes part in every release)
    applies only to fixed clipping over FedAvg's own aggregation with equal site weights;
    elsewhere the noise is added but no epsilon is reported.
    """
    sampled = dp.num_sampled_sites or min_sites
    if dp.clipping == "adaptive":
        kind = (
            DifferentialPrivacyServerSideAdaptiveClipping
            if dp.side == "server"
            else DifferentialPrivacyClientSideAdaptiveClipping
        )
        return kind(
            strategy,
            noise_multiplier=dp.noise_multiplier,
            num_sampled_clients=sampled,
            initial_clipping_norm=dp.clipping_norm,
            # Flower's default (sites / 20) is refused for few sites: the noise on the
            # clipped count must exceed 1 / (2 noise_multiplier) for the split to work.
            clipped_count_stddev=max(sampled / 20, 1.0 / max(dp.noise_multiplier, 1e-12)),
        )
    kind = (
        DifferentialPrivacyServerSideFixedClipping
        if dp.side == "server"
        else DifferentialPrivacyClientSideFixedClipping
    )
    accountant = None
    if accountant_applies(strategy, dp):
        from flwr.supercore.privacy_accounting.rdp_accountant import RdpAccountant

        accountant = RdpAccountant(
            PrivacyConfig(
                target_delta=dp.delta,
                population_size=sampled,
                neighboring_relation=NeighboringRelation.ADD_OR_REMOVE_ONE,
                sampling_method=SamplingMethod.NO_AMPLIFICATION,
            )
        )
    else:
        logger.warning(
            "central DP: Flower's accountant needs fixed clipping over plain FedAvg "
            "aggregation with noise > 0 (this run: %s); noise is added, epsilon is not reported",
            type(strategy).__name__,
        )
    return kind(
        strategy,
        noise_multiplier=dp.noise_multiplier,
        clipping_norm=dp.clipping_norm,
        num_sampled_clients=sampled,
        accountant=accountant,
    )


def accountant_applies(strategy: Strategy, dp: CentralDPSettings) -> bool:
    """Whether Flower's fixed-clipping accountant can account for this strategy."""
    return (
        dp.clipping == "fixed"
        and dp.noise_multiplier > 0
        and isinstance(strategy, FedAvg)
        and type(strategy).aggregate_train is FedAvg.aggregate_train
    )


def nan_aware_mean(records: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Weighted mean of each metric over the replies where it is finite.

    Flower's default averages NaN in (a site without a validation split reports NaN scores,
    which would make the whole average NaN) and divides by zero when every site reports 0
    examples. Here a metric is NaN only when no site has a finite value with weight > 0;
    ``weighted_by_key`` carries the total. List-valued metrics are left out.
    """
    sums: dict[str, float] = {}
    weights: dict[str, float] = {}
    total = 0.0
    for record in records:
        metrics = next(iter(record.metric_records.values()))
        weight = float(metrics[weighted_by_key])
        total += weight
        for key, value in metrics.items():
            if key == weighted_by_key or isinstance(value, list):
                continue
            sums.setdefault(key, 0.0)
            weights.setdefault(key, 0.0)
            if weight > 0 and math.isfinite(float(value)):
                sums[key] += weight * float(value)
                weights[key] += weight
    result = MetricRecord(
        {key: sums[key] / weights[key] if weights[key] > 0 else math.nan for key in sums}
    )
    result[weighted_by_key] = total
    return result
