"""The secure sum of one round: Flower's SecAgg+ workflow over the sites that trained.

The sites hold their updates; the server computes each one's integer weight, sends it with
the clipping range, drives Flower's ``SecAggPlusWorkflow`` through a legacy strategy that
only sums, and gets the weighted mean update (and what travelled) back.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, RecordDict
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

from cardiomm.privacy import SecureAggregationSettings
from federation.protocol import (
    CLIPPED_METRIC,
    CLIPPING_KEY,
    METRICS,
    NUM_EXAMPLES,
    SEED,
    SERVER_ROUND,
    WEIGHT_KEY,
    WEIGHT_SCALE_KEY,
    SiteRecord,
    vendor_of,
)
from server.replies import PhaseReplies
from server.settings import FederationSettings
from strategies.vendor_weights import vendor_balanced_weights

logger = logging.getLogger(__name__)

# SecAgg+ masks live modulo 2**32: the summed quantised values of all sites must stay below.
MODULUS_RANGE = 2**32


@dataclasses.dataclass(frozen=True)
class _SumPlan:
    """Who is summed with which weight: the sites that trained, sorted by node id."""

    nodes: list[int]
    names: dict[int, str]
    weights: list[float]
    integer_weights: list[int]
    scale: int


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
    summary = _empty_summary(secure)
    plan = _plan(train, settings, secure, summary)
    if plan is None:
        return summary, None
    legacy, metered = _run_workflow(server_round, settings, secure, plan, grid)
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
    _record_sum(server_round, secure, plan, legacy, summary)
    if len(legacy.aggregate) != len(keys):
        raise ValueError(
            f"the secure sum holds {len(legacy.aggregate)} arrays, the model {len(keys)}"
        )
    return summary, dict(zip(keys, legacy.aggregate, strict=True))


def _empty_summary(secure: SecureAggregationSettings) -> dict[str, Any]:
    return {
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


def _plan(
    train: PhaseReplies,
    settings: FederationSettings,
    secure: SecureAggregationSettings,
    summary: dict[str, Any],
) -> _SumPlan | None:
    """The sites to sum and their integer weights; None (with the reason in ``summary``)
    when there is nothing a secure sum can do."""
    contents = {int(reply.metadata.src_node_id): reply.content for reply in train.valid}
    if len(contents) < 2:
        summary["status"] = f"{len(contents)} site(s) trained; SecAgg+ needs at least 2"
        return None
    nodes = sorted(contents)
    vendors = [vendor_of(contents[node]) for node in nodes]
    examples = [float(contents[node][METRICS][NUM_EXAMPLES]) for node in nodes]
    if not any(count > 0 for count in examples):
        summary["status"] = "no site trained on any example"
        return None
    weights = vendor_balanced_weights(vendors, examples, settings.aggregation.vendor_weighting)
    scale = int(secure.quantization_range)
    plan = _SumPlan(
        nodes=nodes,
        names={node: SiteRecord.of(contents[node], node).site_id for node in nodes},
        weights=weights,
        integer_weights=[round(weight * scale) for weight in weights],
        scale=scale,
    )
    summary["weights"] = dict(zip(_names(plan), weights, strict=True))
    summary["integer-weights"] = dict(zip(_names(plan), plan.integer_weights, strict=True))
    if len(nodes) * scale >= MODULUS_RANGE:
        raise ValueError(
            f"{len(nodes)} sites x privacy.secure_aggregation.quantization_range={scale} "
            f"overflows SecAgg+'s modulus 2**32; lower the quantization range"
        )
    return plan


def _names(plan: _SumPlan) -> list[str]:
    return [plan.names[node] for node in plan.nodes]


def _run_workflow(
    server_round: int,
    settings: FederationSettings,
    secure: SecureAggregationSettings,
    plan: _SumPlan,
    grid: Grid,
) -> tuple[_SecureSum, _MeteredGrid]:
    """Flower's SecAgg+ workflow over the planned sites, on a grid that counts bytes."""
    instructions = {
        node: {
            SERVER_ROUND: server_round,
            SEED: settings.seed,
            WEIGHT_KEY: k,
            WEIGHT_SCALE_KEY: plan.scale,
            CLIPPING_KEY: float(secure.clipping_range),
        }
        for node, k in zip(plan.nodes, plan.integer_weights, strict=True)
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
        max_weight=float(plan.scale),
        clipping_range=float(secure.clipping_range),
        quantization_range=plan.scale,
        modulus_range=MODULUS_RANGE,
        timeout=settings.timeout,
    )
    metered = _MeteredGrid(grid)
    workflow(metered, context)
    return legacy, metered


def _record_sum(
    server_round: int,
    secure: SecureAggregationSettings,
    plan: _SumPlan,
    legacy: _SecureSum,
    summary: dict[str, Any],
) -> None:
    """Who was summed, who dropped out, what was clipped and the error bound, into
    ``summary``; warnings for clipping and for a sum of fewer than three sites."""
    names = plan.names
    summed = set(legacy.summed_nodes)
    summary["sites"] = sorted(names[node] for node in summed)
    summary["dropped"] = sorted(names[node] for node in plan.nodes if node not in summed)
    summary["errors"] += [
        {
            "phase": "secure-aggregation",
            "node-id": node,
            "site": names[node],
            "code": -1,
            "reason": f"site {names[node]} trained but left SecAgg+ before its masked update "
            "was collected; the others' weights renormalise",
        }
        for node in plan.nodes
        if node not in summed
    ]
    summary["clipped-values"] = {names[node]: count for node, count in legacy.clipped.items()}
    total = sum(
        k for node, k in zip(plan.nodes, plan.integer_weights, strict=True) if node in summed
    )
    summary["bound"] = quantisation_bound(len(summed), secure.clipping_range, plan.scale, total)
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
            int(proxy.node_id): _count(fitres.metrics.get(CLIPPED_METRIC, 0))
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


def _run_id(grid: Grid) -> int:
    try:
        return int(grid.run.run_id)
    except Exception:  # a grid without a run yet
        return 0


def _count(value: object) -> int:
    """A site's count of clipped values; anything but a finite non-negative number is 0 (the
    site wrote it, and only the log reads it)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        return 0
    return int(min(value, 2**62))
