"""Federated rounds under secure aggregation: the server learns only the weighted sum of the
sites' updates (Flower's SecAgg+, which Flower 1.42 runs only through its legacy workflow).

Selected by server/app.py when ``privacy.secure_aggregation.enabled`` is true
(server/secure_aggregation_config.py: what it refuses to combine with). A round:

1. Train and announce (Message API): the configured strategy samples the sites and builds the
   ordinary train request, marked with the ``secure-aggregation`` ConfigRecord. The sites
   train and reply their metrics (``num-examples``) and site record (vendor) but keep their
   weights (client/secure_aggregation_mod.py).
2. Weights: from the announced example counts and vendors the server computes each site's
   aggregation weight ``w_i`` (``strategy.vendor_weighting``: examples = FedAvg, equal or
   sqrt; strategies/vendor_weights.py), summing to 1, and its integer form
   ``k_i = round(w_i * Q)`` with ``Q = quantization_range``.
3. Secure sum (server/secure_sum.py): Flower's ``SecAggPlusWorkflow`` (``max_weight = Q``)
   with a legacy strategy that sends each site that trained its ``k_i``. Each site scales
   its update by ``k_i / Q``, clips it to ``[-clipping_range, clipping_range]``, quantises it
   to ``Q`` levels and masks it; the server unmasks only the sum and divides by ``sum k_i``. Sites
   that drop out mid-protocol leave the sum (their masks are reconstructed from shares) and
   the weights renormalise over the others.
4. Step: the aggregate (global + mean update) stands in for every summed site's weights in
   that site's reply, as Flower's own SecAgg+ workflow does for legacy strategies, and the
   configured strategy aggregates them: its mean returns the aggregate, its metrics
   aggregation and server optimiser (FedAdam / FedYogi) apply unchanged.
5. Site evaluation (ordinary evaluate messages), optional global evaluation, a round
   checkpoint, the history and MLflow tracking: server/rounds.py's ``run_rounds`` plays the
   rounds, and both round loops share the steps and records of server/round_phases.py and
   server/round_records.py.

Each value of the aggregate is within ``sites * 2 * clipping_range / Q`` of the plain
weighted mean (stochastic rounding moves each site's quantised value by less than one level),
plus a rounding of the weights to ``1 / Q``; ``server.secure_sum.quantisation_bound``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from omegaconf import DictConfig

from cardiomm.privacy import PrivacySettings, SecureAggregationSettings
from federation.protocol import (
    ARRAYS,
    SECURE_RECORD,
    STAGE_KEY,
    STAGE_TRAIN,
    SiteRecord,
)
from federation.records import RoundRecord
from server.model import GlobalModel
from server.replies import PhaseReplies, ReplyGate, array_bytes
from server.round_phases import (
    SiteEvaluation,
    aggregate_train_replies,
    evaluate_on_sites,
    exchange,
    train_requests,
)
from server.round_records import round_timing, site_records
from server.rounds import FederationResult, run_rounds
from server.secure_aggregation_config import ENABLED_KEY, check_secure_aggregation_config
from server.secure_sum import secure_sum
from server.settings import FederationSettings
from server.site_roles import open_consortium
from strategies.example_shares import cap_example_shares
from strategies.factory import build_strategy

logger = logging.getLogger(__name__)


def run_secure_federation(config: DictConfig, grid: Grid) -> FederationResult:
    """Run (or resume) the federation the config describes, aggregating through SecAgg+."""
    check_secure_aggregation_config(config)
    settings = FederationSettings.from_config(config)
    secure = PrivacySettings.from_config(config).secure_aggregation
    if not secure.enabled:
        raise ValueError(f"{ENABLED_KEY} is false: run server.rounds.run_federation instead")
    strategy = build_strategy(settings)
    model = GlobalModel(config, settings.initial_checkpoint)
    consortium = open_consortium(settings, grid)

    def play_round(server_round: int, arrays: ArrayRecord) -> tuple[RoundRecord, ArrayRecord]:
        return run_secure_round(
            server_round,
            settings,
            secure,
            strategy,
            arrays,
            consortium.training_sites,
            consortium.gate,
        )

    # The aggregate is global + mean update in float64: integer buffers are rounded back.
    return run_rounds(
        config,
        settings,
        strategy,
        model,
        play_round,
        consortium,
        final_extra={"secure_aggregation": True},
        log_round=_log_round,
        round_integer_buffers=True,
    )


def run_secure_round(
    server_round: int,
    settings: FederationSettings,
    secure: SecureAggregationSettings,
    strategy: Strategy,
    arrays: ArrayRecord,
    grid: Grid,
    gate: ReplyGate,
) -> tuple[RoundRecord, ArrayRecord]:
    """One round: train and announce, secure sum, strategy step, site evaluation.

    The announcements pass the ``gate`` like any reply, and no site counts for more than its
    share of the examples (``federation.replies.max_site_share``) in the weights of the sum.
    """
    began = time.perf_counter()
    # FedProx overwrites proximal-mu with its own.
    messages = train_requests(server_round, settings, strategy, arrays, grid, proximal_mu=0.0)
    marker = ConfigRecord({STAGE_KEY: STAGE_TRAIN})
    for message in messages:
        message.content[SECURE_RECORD] = marker
    train = exchange("train", messages, grid, settings.timeout, gate)
    capped = cap_example_shares(train.valid, settings.replies.max_site_share)
    train_seconds = time.perf_counter() - began

    secure_began = time.perf_counter()
    summary, mean_update = secure_sum(server_round, settings, secure, train, grid, list(arrays))
    secure_seconds = time.perf_counter() - secure_began
    new_arrays, train_metrics, note = _step(
        strategy, server_round, arrays, train, mean_update, summary["sites"]
    )
    if mean_update is None:
        note = summary["status"]
    if new_arrays is None:
        logger.warning("round %d: keeping the previous global model: %s", server_round, note)
        new_arrays = arrays

    evaluation = evaluate_on_sites(server_round, settings, strategy, new_arrays, grid, gate)

    record = _secure_round_record(
        server_round,
        train,
        evaluation,
        summary,
        train_metrics,
        note,
        capped,
        array_bytes(arrays),
        {"train": train_seconds, "secure-aggregation": secure_seconds},
    )
    return record, new_arrays


def _secure_round_record(
    server_round: int,
    train: PhaseReplies,
    evaluation: SiteEvaluation,
    summary: dict[str, Any],
    train_metrics: dict[str, float],
    note: str,
    capped: list[dict[str, Any]],
    sent: int,
    seconds: dict[str, float],
) -> RoundRecord:
    """A SecAgg+ round's record from its train replies, site evaluation and secure-sum
    ``summary`` (its errors move to the record's), the strategy step's metrics and note, the
    sites whose example counts were capped, the array bytes each site was sent and the
    train and secure-sum seconds."""
    evaluate = evaluation.replies
    secure_errors = summary.pop("errors")

    def secure_fields(site_id: str) -> dict[str, Any]:
        return {
            "aggregation-weight": summary["weights"].get(site_id, 0.0),
            "in-secure-sum": site_id in summary["sites"],
        }

    return RoundRecord(
        round=server_round,
        train=train_metrics,
        evaluate=evaluation.metrics,
        aggregation={
            "train": note,
            "evaluate": evaluation.note,
            **({"capped-examples": capped} if capped else {}),
        },
        secure_aggregation=summary,
        # Besides its train reply, a site sent only masked vectors, keys and shares: its
        # weights never leave it.
        sites=site_records(
            train,
            evaluate,
            sent,
            train_fields=secure_fields,
            other_bytes_received=summary["bytes-received-per-node"],
        ),
        errors=train.errors + secure_errors + evaluate.errors,
        rejected=train.refused + evaluate.refused,
        timing=round_timing(
            train,
            evaluate,
            seconds["train"],
            evaluation.seconds,
            other_phases={"secure-aggregation-seconds": seconds["secure-aggregation"]},
        ),
        traffic={
            "bytes-per-site": sent,
            "bytes-sent": sent * (len(train.valid) + len(train.refused) + len(train.errors))
            + summary["bytes-sent"],
            "bytes-received": summary["bytes-received"],
        },
    )


def _step(
    strategy: Strategy,
    server_round: int,
    arrays: ArrayRecord,
    train: PhaseReplies,
    mean_update: dict[str, np.ndarray] | None,
    summed_sites: Iterable[str],
) -> tuple[ArrayRecord | None, dict[str, float], str]:
    """The strategy's new global model from the aggregate (global + mean update)."""
    if mean_update is None:
        return None, {}, "no secure sum"
    aggregate = {}
    for key in arrays:
        before = arrays[key].numpy()
        update = mean_update[key]
        if update.size != before.size or update.ndim > max(before.ndim, 1):
            raise ValueError(
                f"the secure sum's '{key}' has shape {update.shape}, expected {before.shape}"
            )
        # The sites send scalars as 1-element arrays (client/secure_aggregation_mod.py).
        update = update.reshape(before.shape)
        aggregate[key] = Array(np.asarray(before.astype(np.float64) + update))
    summed = set(summed_sites)
    replies = [
        reply
        for reply in train.valid
        if SiteRecord.of(reply.content, int(reply.metadata.src_node_id)).site_id in summed
    ]
    for reply in replies:
        # What Flower's SecAgg+ workflow does for legacy strategies: every summed site's
        # result carries the aggregate, so the strategy's mean is the aggregate itself.
        reply.content[ARRAYS] = ArrayRecord(dict(aggregate))
    try:
        return aggregate_train_replies(strategy, server_round, replies)
    finally:
        for reply in replies:
            del reply.content[ARRAYS]


def _log_round(record: RoundRecord) -> None:
    """The SecAgg+ round's log line: its status and the sites in the secure sum."""
    secure = record.secure_aggregation or {}
    logger.info(
        "round %d (SecAgg+ %s): %d site(s) summed, %d error(s), loss %.4f, %.1f s",
        record.round,
        secure.get("status"),
        len(secure.get("sites", [])),
        len(record.errors),
        record.train.get("loss", float("nan")),
        record.timing["round-seconds"],
    )
