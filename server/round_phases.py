"""The steps of a round that both round loops take with the sites.

server/rounds.py (plain aggregation) and server/secure_rounds.py (SecAgg+) sample and ask
the sites to train the same way, exchange messages the same way, evaluate on the sites the
same way and read the strategy's aggregation alike; they differ in how the trained updates
reach the strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import time
from collections.abc import Iterator

from flwr.app import ArrayRecord, ConfigRecord, Message
from flwr.serverapp import Grid
from flwr.serverapp.exception import AggregationError, InconsistentMessageReplies
from flwr.serverapp.strategy import Strategy

from federation.protocol import LEARNING_RATE, LOCAL_STEPS, PROXIMAL_MU, SEED, SERVER_ROUND
from server.replies import PhaseReplies, ReplyGate, sort_replies
from server.round_records import metric_numbers
from server.server_transport import ServerTransport
from server.settings import FederationSettings


@dataclasses.dataclass
class SiteEvaluation:
    """The evaluate phase of a round.

    Attributes:
        replies: the sites' replies, sorted out.
        metrics: the strategy's aggregate of their metrics.
        note: how the aggregation went ("ok", or why there is none).
        seconds: the phase's wall time.
    """

    replies: PhaseReplies
    metrics: dict[str, float]
    note: str
    seconds: float


def train_requests(
    server_round: int,
    settings: FederationSettings,
    strategy: Strategy,
    arrays: ArrayRecord,
    grid: Grid,
    proximal_mu: float,
) -> list[Message]:
    """The strategy's train messages for the round, to the sites it samples.

    Args:
        proximal_mu: the ``proximal-mu`` the sites get (FedProx overwrites it with its own).
    """
    train_config = ConfigRecord(
        {
            SERVER_ROUND: server_round,
            LOCAL_STEPS: settings.local_steps,
            LEARNING_RATE: settings.learning_rate,
            PROXIMAL_MU: proximal_mu,
            SEED: settings.seed,
        }
    )
    with seeded_sampling(settings.seed, server_round, "train"):
        return list(strategy.configure_train(server_round, arrays, train_config, grid))


def exchange(
    phase: str, messages: list[Message], grid: Grid, timeout: float | None, gate: ReplyGate
) -> PhaseReplies:
    """Send ``messages``, wait for the replies (up to ``timeout``) and sort them out through
    the ``gate``."""
    if not messages:
        return PhaseReplies(valid=[], sites={}, errors=[])
    replies = grid.send_and_receive(messages, timeout=timeout)
    return sort_replies(phase, messages, replies, gate)


def aggregate_train_replies(
    strategy: Strategy,
    server_round: int,
    replies: list[Message],
    tolerated: tuple[type[Exception], ...] = (),
) -> tuple[ArrayRecord | None, dict[str, float], str]:
    """The strategy's new weights and metrics from ``replies``, and how that went.

    A failed aggregation (Flower's aggregation errors, and the ``tolerated`` exceptions)
    gives no weights and a note saying why instead of stopping the federation.
    """
    try:
        arrays, metrics = strategy.aggregate_train(server_round, replies)
    except (AggregationError, InconsistentMessageReplies, *tolerated) as error:
        return None, {}, f"aggregation failed: {error}"
    if arrays is None:
        return None, metric_numbers(metrics), "the strategy returned no weights"
    return arrays, metric_numbers(metrics), "ok"


def evaluate_on_sites(
    server_round: int,
    settings: FederationSettings,
    strategy: Strategy,
    arrays: ArrayRecord,
    grid: Grid,
    gate: ReplyGate,
    transport: ServerTransport | None = None,
) -> SiteEvaluation:
    """Evaluate ``arrays`` on the sites the strategy samples and aggregate their metrics.

    Each site gets the arrays the strategy configures (a vendor-personalised strategy puts
    the site's vendor copy in); with ``transport``, the arrays travel encoded.
    """
    began = time.perf_counter()
    with seeded_sampling(settings.seed, server_round, "evaluate"):
        messages = list(
            strategy.configure_evaluate(
                server_round, arrays, ConfigRecord({SERVER_ROUND: server_round}), grid
            )
        )
    if transport is not None:
        transport.encode(messages)
    replies = exchange("evaluate", messages, grid, settings.timeout, gate)
    metrics, note = _aggregate_evaluate(strategy, server_round, replies)
    return SiteEvaluation(replies, metrics, note, time.perf_counter() - began)


def _aggregate_evaluate(
    strategy: Strategy, server_round: int, evaluate: PhaseReplies
) -> tuple[dict[str, float], str]:
    if not evaluate.valid:
        return {}, f"no site evaluated ({len(evaluate.errors)} failed)"
    try:
        metrics = strategy.aggregate_evaluate(server_round, evaluate.valid)
    except (AggregationError, InconsistentMessageReplies) as error:
        return {}, f"aggregation failed: {error}"
    return metric_numbers(metrics), "ok" if metrics is not None else "the strategy returned nothing"


@contextlib.contextmanager
def seeded_sampling(seed: int, server_round: int, phase: str) -> Iterator[None]:
    """Make the strategy's site sampling a function of (seed, round, phase).

    Flower's strategies sample with Python's global ``random``; seeding it per round makes
    a resumed run sample the same sites as an uninterrupted one. The caller's RNG state is
    put back afterwards.
    """
    state = random.getstate()
    random.seed(f"cardiomm-fl:{seed}:{server_round}:{phase}")
    try:
        yield
    finally:
        random.setstate(state)
