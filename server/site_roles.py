"""Which connected nodes train and which only evaluate, and the evaluation-only sites' phase.

A site decides its role (node config ``role``; a simulation's held-out centres evaluate
only). The server learns it by a roll call: each connected node it has not heard from yet is
sent a query message, answered with the site record alone, which passes the reply gate like
any reply (fields, identity binding). Training and site evaluation then see only the
training sites (:class:`TrainingSitesGrid`), so an evaluation-only site never receives a
training message; every ``federation.zero_shot_every`` rounds and after the last,
:func:`evaluate_zero_shot` sends the global model to the evaluation-only sites, which reply
with official scores on all of their data, per (modality, cardiac view, setting) group.

A node that fails the roll call (an error, no reply, a refused reply) gets neither training
nor evaluation and is asked again in the next round.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Message, MessageType, RecordDict
from flwr.serverapp import Grid

from federation.protocol import (
    ARRAYS,
    CONFIG,
    EVAL_SECONDS,
    ROLE_EVALUATE,
    ROLE_TRAIN,
    SERVER_ROUND,
    SiteRecord,
)
from federation.records import RoundRecord
from federation.reply_checks import ROLL_CALL, ZERO_SHOT
from server.deployed_grid import WrappedGrid
from server.replies import PhaseReplies, ReplyGate, finite_max, open_gate, sort_replies
from server.settings import FederationSettings
from strategies.vendor_personalisation import VendorPersonalisation


class SiteRoles:
    """The role of every node that answered the roll call, and the calls' failures.

    Args:
        gate: the run's reply gate.
        timeout: seconds to wait for roll-call replies (None: for all of them).
    """

    def __init__(self, gate: ReplyGate, timeout: float | None) -> None:
        self.gate = gate
        self.timeout = timeout
        self.role_of_node: dict[int, str] = {}
        self.server_round = 0
        self._asked_in_round: dict[int, int] = {}
        self._failures = PhaseReplies(valid=[], sites={}, errors=[])
        self.answered: list[Message] = []

    def start_round(self, server_round: int) -> None:
        """Nodes that failed an earlier roll call may be asked again from this round on."""
        self.server_round = server_round

    def roll_call(self, grid: Grid, connected: Iterable[int]) -> None:
        """Ask the nodes of ``connected`` not yet known (nor asked this round) their role."""
        new = [
            node
            for node in connected
            if node not in self.role_of_node and self._asked_in_round.get(node) != self.server_round
        ]
        if not new:
            return
        messages = [
            Message(
                RecordDict({CONFIG: ConfigRecord({SERVER_ROUND: self.server_round})}),
                dst_node_id=node,
                message_type=MessageType.QUERY,
            )
            for node in new
        ]
        for node in new:
            self._asked_in_round[node] = self.server_round
        replies = grid.send_and_receive(messages, timeout=self.timeout)
        sorted_out = sort_replies(ROLL_CALL, messages, replies, self.gate)
        for reply in sorted_out.valid:
            role = SiteRecord.of(reply.content, int(reply.metadata.src_node_id)).role
            self.role_of_node[int(reply.metadata.src_node_id)] = role
        self.answered.extend(sorted_out.valid)
        self._failures.errors.extend(sorted_out.errors)
        self._failures.refused.extend(sorted_out.refused)

    def nodes(self, role: str, connected: Iterable[int]) -> list[int]:
        """The nodes of ``connected`` whose site has ``role``."""
        return [node for node in connected if self.role_of_node.get(node) == role]

    def connected(self, grid: Grid, *roles: str) -> list[int]:
        """The connected nodes whose site has one of ``roles`` (in that order), after a roll
        call of the nodes that joined since the last."""
        connected = list(grid.get_node_ids())
        self.roll_call(grid, connected)
        return [node for role in roles for node in self.nodes(role, connected)]

    def take_failures(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(errors, refused replies) of the roll calls since the last call, for the round's
        record."""
        failures = self._failures
        self._failures = PhaseReplies(valid=[], sites={}, errors=[])
        return failures.errors, failures.refused

    def take_answered(self) -> list[Message]:
        """The admitted roll-call replies since the last call (to learn vendors from)."""
        answered, self.answered = self.answered, []
        return answered


class TrainingSitesGrid(WrappedGrid):
    """``grid`` as a strategy should see it: only the training sites are connected.

    Every :meth:`get_node_ids` first rolls-calls the nodes that joined since, so a strategy
    waiting for ``min_sites`` training sites sees them as they come.
    """

    def __init__(self, grid: Grid, roles: SiteRoles) -> None:
        super().__init__(grid)
        self.roles = roles

    def get_node_ids(self) -> Iterable[int]:
        connected = list(self.grid.get_node_ids())
        self.roles.roll_call(self.grid, connected)
        return self.roles.nodes(ROLE_TRAIN, connected)


@dataclasses.dataclass(frozen=True)
class Consortium:
    """The sites of a run as the server knows them.

    Attributes:
        grid: the run's grid, every node on it.
        gate: what every reply passes (its checks, the sites' bound identities).
        roles: who trains and who only evaluates (the roll call).
        training_sites: ``grid`` as strategies see it: the training sites only.
    """

    grid: Grid
    gate: ReplyGate
    roles: SiteRoles
    training_sites: TrainingSitesGrid


def open_consortium(settings: FederationSettings, grid: Grid) -> Consortium:
    """The consortium of a run on ``grid``, its sites bound as ``federation.sites`` says."""
    gate = open_gate(settings.replies, settings.sites, grid)
    roles = SiteRoles(gate, settings.timeout)
    return Consortium(grid, gate, roles, TrainingSitesGrid(grid, roles))


@dataclasses.dataclass
class ZeroShotPhase:
    """The evaluation-only sites' phase of a round.

    Attributes:
        scores: per site id, its checked metrics (overall and per group).
        replies: the replies, sorted out (errors and refusals go into the round's record).
        seconds: the phase's wall time.
    """

    scores: dict[str, dict[str, float]]
    replies: PhaseReplies
    seconds: float

    def timing(self) -> dict[str, float]:
        evaluation = [
            entry["metrics"].get(EVAL_SECONDS, 0.0) for entry in self.replies.sites.values()
        ]
        return {
            "zero-shot-seconds": self.seconds,
            "zero-shot-eval-seconds-max": finite_max(evaluation),
        }


def ask_to_evaluate(
    phase: str,
    nodes: Sequence[int],
    arrays: ArrayRecord,
    config: Mapping[str, Any],
    grid: Grid,
    gate: ReplyGate,
    timeout: float | None,
    personalise: Callable[[list[Message]], None] | None = None,
) -> PhaseReplies:
    """Send ``arrays`` with ``config`` to ``nodes`` in evaluate messages and sort the replies
    out through the ``gate`` as ``phase`` replies (the evaluation-only sites' phase, the
    cross-site matrix).

    Args:
        personalise: called with the messages before they go (vendor personalisation: a
            site of a vendor that trained gets that vendor's parameters).
    """
    messages = [
        Message(
            RecordDict({ARRAYS: arrays, CONFIG: ConfigRecord(dict(config))}),
            dst_node_id=node,
            message_type=MessageType.EVALUATE,
        )
        for node in nodes
    ]
    if not messages:
        return PhaseReplies(valid=[], sites={}, errors=[])
    if personalise is not None:
        personalise(messages)
    return sort_replies(phase, messages, grid.send_and_receive(messages, timeout=timeout), gate)


def evaluate_zero_shot(
    server_round: int,
    arrays: ArrayRecord,
    grid: Grid,
    roles: SiteRoles,
    timeout: float | None,
    personalise: Callable[[list[Message]], None] | None = None,
) -> ZeroShotPhase:
    """Send ``arrays`` to every connected evaluation-only site and collect its scores."""
    began = time.perf_counter()
    replies = ask_to_evaluate(
        ZERO_SHOT,
        roles.connected(grid, ROLE_EVALUATE),
        arrays,
        {SERVER_ROUND: server_round},
        grid,
        roles.gate,
        timeout,
        personalise,
    )
    scores = {site: dict(entry["metrics"]) for site, entry in sorted(replies.sites.items())}
    return ZeroShotPhase(scores, replies, time.perf_counter() - began)


RoundStep = Callable[[int, ArrayRecord], tuple[RoundRecord, ArrayRecord]]


def with_evaluation_sites(
    play_round: RoundStep,
    settings: FederationSettings,
    grid: Grid,
    roles: SiteRoles,
    personalisation: VendorPersonalisation | None = None,
) -> RoundStep:
    """``play_round`` followed, when due, by the evaluation-only sites' phase; the round's
    record gets their scores (``zero_shot``), and the roll calls' and their failures."""

    def play(server_round: int, arrays: ArrayRecord) -> tuple[RoundRecord, ArrayRecord]:
        roles.start_round(server_round)
        record, new_arrays = play_round(server_round, arrays)
        if settings.zero_shot_due(server_round):
            personalise = None
            if personalisation is not None:
                personalisation.learn_vendors(roles.take_answered())
                personalise = personalisation.personalise
            phase = evaluate_zero_shot(
                server_round, new_arrays, grid, roles, settings.timeout, personalise
            )
            record.zero_shot = phase.scores
            record.errors.extend(phase.replies.errors)
            record.rejected.extend(phase.replies.refused)
            record.timing.update(phase.timing())
        errors, refused = roles.take_failures()
        record.errors.extend(errors)
        record.rejected.extend(refused)
        return record, new_arrays

    return play
