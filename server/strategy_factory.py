"""Build the aggregation strategy from the settings, and save / restore its server state.

The strategy is Flower's FedAvg / FedProx / FedAdam / FedYogi, or their vendor-aware
versions (strategies/vendor_aware.py) when the weighting or the reducer departs from FedAvg,
optionally wrapped in one of Flower's central-DP wrappers. Server state a resumed run must
restore: FedAdam's / FedYogi's moments (``m_t``, ``v_t``; the step count is the server round,
which the checkpoint stores anyway), the adaptive DP clipping norm and Flower's privacy
accountant.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import torch
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
    FedAdam,
    FedAvg,
    FedProx,
    FedYogi,
    Strategy,
)
from flwr.serverapp.strategy.fedopt import FedOpt
from flwr.supercore.privacy_accounting import (
    NeighboringRelation,
    PrivacyConfig,
    SamplingMethod,
)

from cardiomm.privacy import CentralDPSettings
from federation.protocol import (
    SLICES_SEEN,
)
from server.settings import FederationSettings
from strategies import VendorAwareFedAdam, VendorAwareFedAvg, VendorAwareFedProx, VendorAwareFedYogi

logger = logging.getLogger(__name__)

# (plain Flower class, vendor-aware class) per server optimiser.
_CLASSES: dict[str, tuple[type[FedAvg], type[VendorAwareFedAvg]]] = {
    "fedadam": (FedAdam, VendorAwareFedAdam),
    "fedyogi": (FedYogi, VendorAwareFedYogi),
    "fedprox": (FedProx, VendorAwareFedProx),
    "none": (FedAvg, VendorAwareFedAvg),
}

CENTRAL_DP_WRAPPERS = (
    DifferentialPrivacyClientSideAdaptiveClipping,
    DifferentialPrivacyClientSideFixedClipping,
    DifferentialPrivacyServerSideAdaptiveClipping,
    DifferentialPrivacyServerSideFixedClipping,
)


def build_strategy(settings: FederationSettings) -> Strategy:
    """The configured Flower strategy; sampling limits come from ``federation.min_sites``."""
    common: dict[str, Any] = {
        "fraction_train": settings.fraction_train,
        "fraction_evaluate": settings.fraction_evaluate,
        "min_train_nodes": settings.min_sites,
        "min_evaluate_nodes": settings.min_sites if settings.fraction_evaluate > 0 else 0,
        "min_available_nodes": settings.min_sites,
        "train_metrics_aggr_fn": nan_aware_mean,
        "evaluate_metrics_aggr_fn": nan_aware_mean,
    }
    optimizer = settings.server_optimizer
    if optimizer == "none" and settings.proximal_mu > 0:
        optimizer = "fedprox"
    plain, vendor_aware = _CLASSES[optimizer]
    kind = vendor_aware if settings.vendor_aware else plain
    if optimizer in ("fedadam", "fedyogi"):
        common.update(
            eta=settings.server_learning_rate,
            eta_l=settings.learning_rate,
            beta_1=settings.beta_1,
            beta_2=settings.beta_2,
            tau=settings.tau,
        )
    elif optimizer == "fedprox":
        # FedProx only writes proximal-mu into the train config; the sites add the term.
        common["proximal_mu"] = settings.proximal_mu
    if settings.privacy.central_dp.enabled:
        # Central DP bounds each site's share of the aggregate by clipping_norm / sites, which
        # holds for equal weights: weigh by the slices each site saw this round (the same
        # local steps everywhere) instead of by its data size.
        common["weighted_by_key"] = SLICES_SEEN
    strategy = kind(**common)
    if isinstance(strategy, VendorAwareFedAvg):
        strategy.set_aggregation(
            settings.vendor_weighting, settings.reducer, settings.trim_fraction
        )
    if settings.privacy.central_dp.enabled:
        return wrap_central_dp(strategy, settings.privacy.central_dp, settings.min_sites)
    return strategy


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


def inner_strategy(strategy: Strategy) -> Strategy:
    """The aggregation strategy inside a central-DP wrapper (itself otherwise)."""
    return strategy.strategy if isinstance(strategy, CENTRAL_DP_WRAPPERS) else strategy


def central_dp_report(strategy: Strategy) -> dict[str, float]:
    """The round's central-DP numbers: clipping norm, and epsilon / delta when accounted."""
    if not isinstance(strategy, CENTRAL_DP_WRAPPERS):
        return {}
    report = {"central-dp-clipping-norm": float(strategy.clipping_norm)}
    accountant = getattr(strategy, "accountant", None)
    if accountant is not None and accountant.num_releases > 0:
        spent = accountant.get_privacy_spent()
        report.update({"central-dp-epsilon": spent.epsilon, "central-dp-delta": spent.delta})
    return report


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The strategy's server-side state as torch tensors and text (loadable with
    weights_only)."""
    inner = inner_strategy(strategy)
    state: dict[str, Any] = {"class": type(inner).__name__}
    if isinstance(inner, FedOpt):
        state["m_t"] = _to_tensors(inner.m_t)
        state["v_t"] = _to_tensors(getattr(inner, "v_t", None))
    if inner is not strategy:
        state["wrapper"] = type(strategy).__name__
        state["clipping_norm"] = float(strategy.clipping_norm)
        accountant = getattr(strategy, "accountant", None)
        if accountant is not None:
            state["accountant_json"] = json.dumps(accountant.state_dict())
    return state


def restore_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` saved; the classes must be the same."""
    inner = inner_strategy(strategy)
    saved = state.get("class")
    if saved != type(inner).__name__:
        raise ValueError(
            f"the checkpoint was written by strategy {saved}, this run uses "
            f"{type(inner).__name__}; resume with the same strategy settings"
        )
    wrapper = type(strategy).__name__ if inner is not strategy else None
    if state.get("wrapper") != wrapper:
        raise ValueError(
            f"the checkpoint was written with central DP {state.get('wrapper')}, this run uses "
            f"{wrapper}; resume with the same privacy settings"
        )
    if isinstance(inner, FedOpt):
        inner.m_t = _to_numpy(state.get("m_t"))
        inner.v_t = _to_numpy(state.get("v_t"))
    if wrapper is not None:
        strategy.clipping_norm = float(state["clipping_norm"])
        accountant = getattr(strategy, "accountant", None)
        if accountant is not None and "accountant_json" in state:
            accountant.load_state_dict(json.loads(state["accountant_json"]))


def _to_tensors(arrays: dict[str, np.ndarray] | None) -> dict[str, torch.Tensor] | None:
    if arrays is None:
        return None
    return {key: torch.from_numpy(np.array(value, copy=True)) for key, value in arrays.items()}


def _to_numpy(tensors: dict[str, torch.Tensor] | None) -> dict[str, np.ndarray] | None:
    if tensors is None:
        return None
    return {key: value.numpy().copy() for key, value in tensors.items()}


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
