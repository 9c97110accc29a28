"""Federated rounds under secure aggregation: the server learns only the weighted sum of the
sites' updates (Flower's SecAgg+, which Flower 1.42 runs only through its legacy workflow).

Selected by server/app.py when ``privacy.secure_aggregation.enabled`` is true. A round:

1. Train and announce (Message API): the configured strategy samples the sites and builds the
   ordinary train request, marked with the ``secure-aggregation`` ConfigRecord. The sites
   train and reply their metrics (``num-examples``) and site record (vendor) but keep their
   weights (client/secure_aggregation.py).
2. Weights: from the announced example counts and vendors the server computes each site's
   aggregation weight ``w_i`` (``strategy.vendor_weighting``: examples = FedAvg, equal or
   sqrt; strategies/vendor_weights.py), summing to 1, and its integer form
   ``k_i = round(w_i * Q)`` with ``Q = quantization_range``.
3. Secure sum: Flower's ``SecAggPlusWorkflow`` (``max_weight = Q``) with a legacy strategy
   that sends each site that trained its ``k_i``. Each site scales its update by
   ``k_i / Q``, clips it to ``[-clipping_range, clipping_range]``, quantises it to ``Q``
   levels and masks it; the server unmasks only the sum and divides by ``sum k_i``. Sites
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
plus a rounding of the weights to ``1 / Q``; :func:`quantisation_bound`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Message, RecordDict
from flwr.common import FitIns, FitRes, Parameters, Scalar, parameters_to_ndarrays
from flwr.server.client_manager import ClientManager
from flwr.server.client_proxy import ClientProxy
from flwr.server.compat.grid_client_proxy import GridClientProxy
from flwr.server.compat.legacy_context import LegacyContext
from flwr.server.strategy import Strategy as LegacyStrategy
from flwr.server.workflow import SecAggPlusWorkflow
from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD
from flwr.server.workflow.constant import Key as WorkflowKey
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from omegaconf import DictConfig, OmegaConf

from cardiomm.privacy import PrivacySettings, SecureAggregationSettings
from federation.protocol import (
    ARRAYS,
    CLIPPED_METRIC,
    CLIPPING_KEY,
    METRICS,
    NUM_EXAMPLES,
    SECURE_RECORD,
    SEED,
    SERVER_ROUND,
    STAGE_KEY,
    STAGE_TRAIN,
    WEIGHT_KEY,
    WEIGHT_SCALE_KEY,
    SiteRecord,
    vendor_of,
)
from federation.records import RoundRecord
from server.model import GlobalModel
from server.replies import PhaseReplies, array_bytes
from server.round_phases import (
    aggregate_train_replies,
    evaluate_on_sites,
    exchange,
    train_requests,
)
from server.round_records import round_timing, site_records
from server.rounds import FederationResult, run_rounds
from server.settings import FederationSettings
from server.strategy_factory import build_strategy
from strategies.vendor_weights import vendor_balanced_weights

logger = logging.getLogger(__name__)

# Protocol names shared with client/secure_aggregation.py (docs/federation-protocol.md).

# SecAgg+ masks live modulo 2**32: the summed quantised values of all sites must stay below.
MODULUS_RANGE = 2**32
ENABLED_KEY = "privacy.secure_aggregation.enabled"


def secure_aggregation_enabled(config: DictConfig) -> bool:
    """Whether the composed config asks for secure aggregation."""
    return bool(OmegaConf.select(config, ENABLED_KEY, default=False))


def check_secure_aggregation_config(config: DictConfig) -> None:
    """Refuse, naming both settings and why, what cannot work when the server sees only a sum.

    The settings are read as the round loop reads them (FederationSettings), so keys a
    config lacks count as their defaults: ``federation.validation.enabled`` defaults to true,
    and under secure aggregation it must be set false explicitly.
    """
    if not secure_aggregation_enabled(config):
        return
    PrivacySettings.from_config(config)  # DP combinations (PrivacySettings.validate)
    settings = FederationSettings.from_config(config)
    secure = f"{ENABLED_KEY}=true"
    sum_only = "under SecAgg+ the server sees only the weighted sum of the sites' updates"
    reducer = settings.reducer
    if reducer != "mean":
        raise ValueError(
            f"strategy.reducer={reducer} cannot work with {secure}: a {reducer} needs every "
            f"site's value per coordinate, and {sum_only}; use strategy.reducer=mean"
        )
    personalised = list(settings.personalised)
    if personalised:
        raise ValueError(
            f"strategy.personalised={personalised} (vendor-personalised parameters) cannot "
            f"work with {secure}: a per-vendor average needs each vendor's updates apart, and "
            f"{sum_only}; use strategy.personalised=[]"
        )
    if settings.validation.enabled:
        raise ValueError(
            f"federation.validation.enabled=true (the default) cannot work with {secure}: "
            f"update validation inspects each site's update, and {sum_only} (the sites check "
            "their own for NaN and shape); set federation.validation.enabled=false"
        )
    min_sites = settings.min_sites
    if min_sites < 2:
        raise ValueError(
            f"federation.min_sites={min_sites} cannot work with {secure}: SecAgg+ needs at "
            "least 2 sites a round (the sum of one site is its update); set "
            "federation.min_sites>=2 (3 or more: with 2, each site can work out the other's)"
        )


def run_secure_federation(config: DictConfig, grid: Grid) -> FederationResult:
    """Run (or resume) the federation the config describes, aggregating through SecAgg+."""
    check_secure_aggregation_config(config)
    settings = FederationSettings.from_config(config)
    secure = PrivacySettings.from_config(config).secure_aggregation
    if not secure.enabled:
        raise ValueError(f"{ENABLED_KEY} is false: run server.rounds.run_federation instead")
    strategy = build_strategy(settings)
    model = GlobalModel(config, settings.initial_checkpoint)

    def play_round(server_round: int, arrays: ArrayRecord) -> tuple[RoundRecord, ArrayRecord]:
        return run_secure_round(server_round, settings, secure, strategy, arrays, grid)

    # The aggregate is global + mean update in float64: integer buffers are rounded back.
    return run_rounds(
        config,
        settings,
        strategy,
        model,
        play_round,
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
) -> tuple[RoundRecord, ArrayRecord]:
    """One round: train and announce, secure sum, strategy step, site evaluation."""
    began = time.perf_counter()
    # FedProx overwrites proximal-mu with its own.
    messages = train_requests(server_round, settings, strategy, arrays, grid, proximal_mu=0.0)
    marker = ConfigRecord({STAGE_KEY: STAGE_TRAIN})
    for message in messages:
        message.content[SECURE_RECORD] = marker
    train = exchange("train", messages, grid, settings.timeout)
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

    evaluation = evaluate_on_sites(server_round, settings, strategy, new_arrays, grid)
    evaluate = evaluation.replies

    sent = array_bytes(arrays)
    secure_errors = summary.pop("errors")

    def secure_fields(site_id: str) -> dict[str, Any]:
        return {
            "aggregation-weight": summary["weights"].get(site_id, 0.0),
            "in-secure-sum": site_id in summary["sites"],
        }

    record = RoundRecord(
        round=server_round,
        train=train_metrics,
        evaluate=evaluation.metrics,
        aggregation={"train": note, "evaluate": evaluation.note},
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
        timing=round_timing(
            train,
            evaluate,
            train_seconds,
            evaluation.seconds,
            other_phases={"secure-aggregation-seconds": secure_seconds},
        ),
        traffic={
            "bytes-per-site": sent,
            "bytes-sent": sent * (len(train.valid) + len(train.errors)) + summary["bytes-sent"],
            "bytes-received": summary["bytes-received"],
        },
    )
    return record, new_arrays


def secure_sum(
    server_round: int,
    settings: FederationSettings,
    secure: SecureAggregationSettings,
    train: PhaseReplies,
    grid: Grid,
    keys: list[str],
) -> tuple[dict[str, Any], dict[str, np.ndarray] | None]:
    """The weighted mean of the trained sites' updates, through Flower's SecAgg+ workflow.

    ``keys`` are the global model's array names in the order the server sent them (the
    order of every site's update and so of the aggregate).

    Returns:
        (the round's secure-aggregation record, the mean update per array name in float64,
        or None when the protocol could not finish).
    """
    summary: dict[str, Any] = {
        "status": "not run",
        "sites": [],
        "weights": {},
        "integer-weights": {},
        "weight-scale": secure.quantization_range,
        "clipping-range": secure.clipping_range,
        "dropped": [],
        "clipped-values": {},
        "bound": float("nan"),
        "bytes-sent": 0,
        "bytes-received": 0,
        "bytes-received-per-node": {},
        "errors": [],
    }
    contents = {int(reply.metadata.src_node_id): reply.content for reply in train.valid}
    if len(contents) < 2:
        summary["status"] = f"{len(contents)} site(s) trained; SecAgg+ needs at least 2"
        return summary, None
    nodes = sorted(contents)
    vendors = [vendor_of(contents[node]) for node in nodes]
    examples = [float(contents[node][METRICS][NUM_EXAMPLES]) for node in nodes]
    if not any(count > 0 for count in examples):
        summary["status"] = "no site trained on any example"
        return summary, None
    weights = vendor_balanced_weights(vendors, examples, settings.vendor_weighting)
    scale = int(secure.quantization_range)
    integer_weights = [round(weight * scale) for weight in weights]
    names = {node: SiteRecord.of(contents[node], node).site_id for node in nodes}
    summary["weights"] = {names[node]: w for node, w in zip(nodes, weights, strict=True)}
    summary["integer-weights"] = {
        names[node]: k for node, k in zip(nodes, integer_weights, strict=True)
    }
    if len(nodes) * scale >= MODULUS_RANGE:
        raise ValueError(
            f"{len(nodes)} sites x privacy.secure_aggregation.quantization_range={scale} "
            f"overflows SecAgg+'s modulus 2**32; lower the quantization range"
        )
    instructions = {
        node: {
            SERVER_ROUND: server_round,
            SEED: settings.seed,
            WEIGHT_KEY: k,
            WEIGHT_SCALE_KEY: scale,
            CLIPPING_KEY: float(secure.clipping_range),
        }
        for node, k in zip(nodes, integer_weights, strict=True)
    }
    legacy = _SecureSum(instructions, grid)
    context = LegacyContext(
        Context(
            run_id=_run_id(grid),
            node_id=0,
            node_config={},
            state=RecordDict(),
            run_config={},
        ),
        strategy=legacy,
    )
    context.state.config_records[MAIN_CONFIGS_RECORD] = ConfigRecord(
        {WorkflowKey.CURRENT_ROUND: server_round}
    )
    # The sites already hold the global model: the SecAgg+ fit messages carry no weights.
    context.state.array_records[MAIN_PARAMS_RECORD] = ArrayRecord()
    workflow = SecAggPlusWorkflow(
        num_shares=int(secure.num_shares),
        reconstruction_threshold=int(secure.reconstruction_threshold),
        max_weight=float(scale),
        clipping_range=float(secure.clipping_range),
        quantization_range=scale,
        modulus_range=MODULUS_RANGE,
        timeout=settings.timeout,
    )
    metered = _MeteredGrid(grid)
    workflow(metered, context)
    summary.update(
        {
            "bytes-sent": metered.bytes_sent,
            "bytes-received": metered.bytes_received,
            "bytes-received-per-node": dict(metered.received_per_node),
            # Flower's workflow keeps failed replies without their node.
            "errors": [
                {"phase": "secure-aggregation", "node-id": -1, "code": -1, "reason": str(error)}
                for error in legacy.failures
            ],
        }
    )
    if legacy.aggregate is None:
        summary["status"] = "SecAgg+ halted (too few sites answered a stage)"
        return summary, None
    summed = set(legacy.summed_nodes)
    summary["sites"] = sorted(names[node] for node in summed)
    summary["dropped"] = sorted(names[node] for node in nodes if node not in summed)
    summary["errors"] += [
        {
            "phase": "secure-aggregation",
            "node-id": node,
            "site": names[node],
            "code": -1,
            "reason": f"site {names[node]} trained but left SecAgg+ before its masked update "
            "was collected; the others' weights renormalise",
        }
        for node in nodes
        if node not in summed
    ]
    summary["clipped-values"] = {names[node]: count for node, count in legacy.clipped.items()}
    total = sum(k for node, k in zip(nodes, integer_weights, strict=True) if node in summed)
    summary["bound"] = quantisation_bound(len(summed), secure.clipping_range, scale, total)
    summary["status"] = "ok"
    if any(legacy.clipped.values()):
        logger.warning(
            "round %d: some weighted update values exceeded privacy.secure_aggregation."
            "clipping_range=%g and were clipped: %s",
            server_round,
            secure.clipping_range,
            summary["clipped-values"],
        )
    if len(summed) < 3:
        logger.warning(
            "round %d: only %d sites in the secure sum; each can work out the other's update",
            server_round,
            len(summed),
        )
    if len(legacy.aggregate) != len(keys):
        raise ValueError(
            f"the secure sum holds {len(legacy.aggregate)} arrays, the model {len(keys)}"
        )
    return summary, dict(zip(keys, legacy.aggregate, strict=True))


def quantisation_bound(
    sites: int, clipping_range: float, quantization_range: int, total: int
) -> float:
    """Largest difference per value between the secure and the plain weighted mean update.

    Each site's scaled update is quantised with a step of ``2 * clipping_range /
    quantization_range``; stochastic rounding moves it by less than one step. The sum of
    ``sites`` such errors is divided by ``total / quantization_range`` (the summed integer
    weights over the scale, 1 up to rounding). Values the sites clipped are not covered.
    """
    step = 2.0 * clipping_range / quantization_range
    return sites * step * quantization_range / total


class _SecureSum(LegacyStrategy):
    """The legacy strategy SecAggPlusWorkflow drives: fixed sites and weights, keeps the sum.

    ``configure_fit`` returns the sites that trained with their instructions (round, seed,
    integer weight, scale, clipping range) and no weights; ``aggregate_fit`` receives every
    summed site's reply with the unmasked aggregate as its parameters (SecAggPlusWorkflow
    puts it there) and keeps it.
    """

    def __init__(self, instructions: dict[int, dict[str, Scalar]], grid: Grid) -> None:
        self.instructions = instructions
        self.grid = grid
        self.aggregate: list[np.ndarray] | None = None
        self.summed_nodes: list[int] = []
        self.clipped: dict[int, int] = {}
        self.failures: list[BaseException | tuple[ClientProxy, FitRes]] = []

    def initialize_parameters(self, client_manager: ClientManager) -> Parameters | None:
        return None

    def configure_fit(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list[tuple[ClientProxy, FitIns]]:
        run_id = _run_id(self.grid)
        return [
            (
                GridClientProxy(node, self.grid, run_id),
                FitIns(Parameters(tensors=[], tensor_type="numpy.ndarray"), dict(config)),
            )
            for node, config in self.instructions.items()
        ]

    def aggregate_fit(
        self,
        server_round: int,
        results: list[tuple[ClientProxy, FitRes]],
        failures: list[tuple[ClientProxy, FitRes] | BaseException],
    ) -> tuple[Parameters | None, dict[str, Scalar]]:
        self.failures = list(failures)
        if not results:
            return None, {}
        self.summed_nodes = [int(proxy.node_id) for proxy, _ in results]
        self.clipped = {
            int(proxy.node_id): int(fitres.metrics.get(CLIPPED_METRIC, 0))
            for proxy, fitres in results
        }
        parameters = results[0][1].parameters
        self.aggregate = parameters_to_ndarrays(parameters)
        return parameters, {}

    def configure_evaluate(
        self, server_round: int, parameters: Parameters, client_manager: ClientManager
    ) -> list:
        return []

    def aggregate_evaluate(
        self, server_round: int, results: list, failures: list
    ) -> tuple[float | None, dict[str, Scalar]]:
        return None, {}

    def evaluate(self, server_round: int, parameters: Parameters) -> None:
        return None


class _MeteredGrid:
    """The grid as SecAggPlusWorkflow uses it (send_and_receive), counting payload bytes."""

    def __init__(self, grid: Grid) -> None:
        self.grid = grid
        self.bytes_sent = 0
        self.bytes_received = 0
        self.received_per_node: dict[int, int] = {}

    def send_and_receive(
        self, messages: Iterable[Message], *, timeout: float | None = None
    ) -> list[Message]:
        messages = list(messages)
        self.bytes_sent += sum(content_bytes(message.content) for message in messages)
        replies = list(self.grid.send_and_receive(messages, timeout=timeout))
        for reply in replies:
            if reply.has_content():
                size = content_bytes(reply.content)
                node = int(reply.metadata.src_node_id)
                self.bytes_received += size
                self.received_per_node[node] = self.received_per_node.get(node, 0) + size
        return replies

    def __getattr__(self, name: str) -> Any:
        return getattr(self.grid, name)


def content_bytes(content: RecordDict) -> int:
    """Payload of a message: its arrays' bytes plus the bytes values of its config records."""
    size = sum(
        len(array.data) for record in content.array_records.values() for array in record.values()
    )
    for record in content.config_records.values():
        for value in record.values():
            if isinstance(value, bytes):
                size += len(value)
            elif isinstance(value, list):
                size += sum(len(item) for item in value if isinstance(item, bytes))
    return size


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
        # The sites send scalars as 1-element arrays (client/secure_aggregation.py).
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


def _run_id(grid: Grid) -> int:
    try:
        return int(grid.run.run_id)
    except Exception:  # a grid without a run yet
        return 0
