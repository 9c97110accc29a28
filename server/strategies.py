"""Build the aggregation strategy from the settings, and save / restore its server state.

FedAvg and FedProx keep nothing between rounds on the server; FedAdam keeps its first and
second moments (``m_t``, ``v_t``), which a resumed run must restore to continue exactly.
Its step count is the server round, which the checkpoint stores anyway.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from flwr.app import MetricRecord, RecordDict
from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx, Strategy
from flwr.serverapp.strategy.fedopt import FedOpt

from server.settings import FederationSettings
from strategies import VendorBalancedFedAvg


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
    if settings.strategy == "fedavg":
        return FedAvg(**common)
    if settings.strategy == "vendor_balanced":
        return VendorBalancedFedAvg(vendor_weighting=settings.vendor_weighting, **common)
    if settings.strategy == "fedprox":
        # FedProx only writes proximal-mu into the train config; the sites add the term.
        return FedProx(**common, proximal_mu=settings.proximal_mu)
    return FedAdam(
        **common,
        eta=settings.server_learning_rate,
        eta_l=settings.learning_rate,
        beta_1=settings.beta_1,
        beta_2=settings.beta_2,
        tau=settings.tau,
    )


def strategy_state(strategy: Strategy) -> dict[str, Any]:
    """The strategy's server-side state as torch tensors (loadable with weights_only)."""
    state: dict[str, Any] = {"class": type(strategy).__name__}
    if isinstance(strategy, FedOpt):
        state["m_t"] = _to_tensors(strategy.m_t)
        state["v_t"] = _to_tensors(getattr(strategy, "v_t", None))
    return state


def restore_strategy_state(strategy: Strategy, state: dict[str, Any]) -> None:
    """Put back what :func:`strategy_state` saved; the class must be the same."""
    saved = state.get("class")
    if saved != type(strategy).__name__:
        raise ValueError(
            f"the checkpoint was written by strategy {saved}, this run uses "
            f"{type(strategy).__name__}; resume with the same strategy.name"
        )
    if isinstance(strategy, FedOpt):
        strategy.m_t = _to_numpy(state.get("m_t"))
        strategy.v_t = _to_numpy(state.get("v_t"))


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
