"""Pieces of a round's history record that both round loops write.

server/rounds.py (plain aggregation) and server/secure_rounds.py (SecAgg+) record each
round alike: per-site entries, the round's timing, and the strategy's metrics as numbers.
What the secure path adds (each site's weight, the secure sum's phase) comes in as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flwr.app import MetricRecord

from federation.protocol import (
    EVAL_SECONDS,
    TRAIN_SECONDS,
)
from federation.records import SiteRound
from server.replies import PhaseReplies, finite_max


def site_records(
    train: PhaseReplies,
    evaluate: PhaseReplies,
    bytes_sent: int,
    *,
    train_fields: Callable[[str], Mapping[str, Any]] | None = None,
    other_bytes_received: Mapping[int, int] | None = None,
) -> dict[str, SiteRound]:
    """Per site id (in site order): node, site fields, train and evaluate metrics, traffic.

    Args:
        train: the round's train replies.
        evaluate: the round's evaluate replies.
        bytes_sent: what the server sent each site in the train phase.
        train_fields: more fields for a site that trained, by site id (placed after its
            train metrics).
        other_bytes_received: bytes each node sent besides its train reply, by node id
            (the secure sum's masked vectors, keys and shares).
    """
    other_bytes_received = other_bytes_received or {}
    sites: dict[str, SiteRound] = {}
    for site_id, entry in train.sites.items():
        sites[site_id] = SiteRound(
            node_id=entry["node-id"],
            vendor=entry["vendor"],
            scanner=entry["scanner"],
            bad_files=entry["bad-files"],
            train=entry["metrics"],
            train_fields=dict(train_fields(site_id)) if train_fields is not None else {},
            bytes_sent=bytes_sent,
            bytes_received=entry["bytes-received"] + other_bytes_received.get(entry["node-id"], 0),
        )
    for site_id, entry in evaluate.sites.items():
        site = sites.setdefault(site_id, SiteRound(node_id=entry["node-id"]))
        site.evaluate = entry["metrics"]
    # Site order, not the order replies arrived in: the same run writes the same history.
    return dict(sorted(sites.items()))


def round_timing(
    train: PhaseReplies,
    evaluate: PhaseReplies,
    train_seconds: float,
    evaluate_seconds: float,
    other_phases: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Round wall time, the clients' compute, and the rest (the federation's overhead).

    The round has to wait for its slowest site in each phase, so the overhead is the round's
    wall time minus the slowest site's training and evaluation time.

    Args:
        other_phases: seconds of the phases between training and evaluation, by their timing
            key (``secure-aggregation-seconds``); they count in the round's wall time and so
            in the overhead.
    """
    other_phases = other_phases or {}
    compute = [site["metrics"].get(TRAIN_SECONDS, 0.0) for site in train.sites.values()]
    evaluation = [site["metrics"].get(EVAL_SECONDS, 0.0) for site in evaluate.sites.values()]
    round_seconds = train_seconds + sum(other_phases.values()) + evaluate_seconds
    slowest = finite_max(compute) + finite_max(evaluation)
    return {
        "round-seconds": round_seconds,
        "train-phase-seconds": train_seconds,
        **other_phases,
        "evaluate-phase-seconds": evaluate_seconds,
        "client-train-seconds-max": finite_max(compute),
        "client-train-seconds-sum": float(sum(value for value in compute if value == value)),
        "client-eval-seconds-max": finite_max(evaluation),
        "overhead-seconds": round_seconds - slowest,
    }


def metric_numbers(metrics: MetricRecord | None) -> dict[str, float]:
    """A strategy's aggregated metrics as floats (list values left out); {} for None."""
    if metrics is None:
        return {}
    return {key: float(value) for key, value in metrics.items() if not isinstance(value, list)}
