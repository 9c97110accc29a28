"""The federated round loop.

Our own loop rather than ``strategy.start``: that one always numbers rounds from 1 (so it
cannot resume) and hides the sites' individual replies. Each round: train on the sampled
sites, aggregate, evaluate on the sites, evaluate the global model on the server (optional),
then checkpoint and track.

:func:`run_rounds` is that lifecycle (resume, per-round checkpoint and tracking, the final
model) with the round itself passed in: :func:`run_round` here, the SecAgg+ round in
server/secure_rounds.py.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord
from flwr.serverapp import Grid
from flwr.serverapp.strategy import Strategy
from omegaconf import DictConfig, OmegaConf

from cardiomm.model.vendor_personalised import VENDOR_PARTS_KEY
from federation.records import (
    HISTORY_FILE,
    RoundRecord,
    history_from_json,
    history_to_json,
    write_history,
)
from server.checkpoints import (
    FINAL,
    RoundCheckpoint,
    check_same_recipe,
    checkpoint_dir,
    load_resume_point,
    restore_rng_state,
    rng_state,
    save_round_checkpoint,
)
from server.cross_site import cross_site_phase
from server.global_evaluation import GlobalEvaluator
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
from server.server_transport import ServerTransport, frozen_names
from server.settings import FederationSettings
from server.site_identities import SiteIdentities
from server.site_roles import Consortium, open_consortium, with_evaluation_sites
from server.tracking import Tracker, open_tracker
from server.update_screening import ScreenedUpdates, screen_updates
from strategies.factory import build_strategy
from strategies.server_state import restore_strategy_state, strategy_state
from strategies.vendor_personalisation import VendorPersonalisation
from strategies.wrappers import (
    central_dp_report,
    inner_strategy,
    observe_train_replies,
    vendor_personalisation,
)

logger = logging.getLogger(__name__)


# Where a round checkpoint keeps the site bindings, beside the strategy's state.
IDENTITIES_STATE = "site-identities"

RoundStep = Callable[[int, ArrayRecord], tuple[RoundRecord, ArrayRecord]]
"""One round from the global weights: (round number, arrays) -> (its record, the new arrays)."""


@dataclasses.dataclass
class FederationResult:
    """What a federated run produced.

    Attributes:
        rounds: the rounds this call ran (empty when a resumed run was already complete).
        history: one record per round since the start of the run (resumed rounds included).
        arrays: the final global state dict.
        final_checkpoint: the CardioMM model checkpoint (``checkpoints/final.pt``).
        history_path: the history as JSON.
        tracking_run_id: the MLflow run (None when tracking is off).
    """

    rounds: list[int]
    history: list[RoundRecord]
    arrays: dict[str, torch.Tensor]
    final_checkpoint: Path
    history_path: Path
    tracking_run_id: str | None


def run_federation(config: DictConfig, grid: Grid) -> FederationResult:
    """Run (or resume) the federation the config describes over ``grid``."""
    settings = FederationSettings.from_config(config)
    model = GlobalModel(config, settings.initial_checkpoint)
    # The model's keys: a personalisation pattern that matches none of them stops the run now.
    strategy = build_strategy(settings, model.state_dict())
    transport = _transport(settings, config, model)
    consortium = open_consortium(settings, grid)

    def play_round(server_round: int, arrays: ArrayRecord) -> tuple[RoundRecord, ArrayRecord]:
        # Training and site evaluation see the training sites only.
        return run_round(
            server_round,
            settings,
            strategy,
            arrays,
            consortium.training_sites,
            consortium.gate,
            transport,
        )

    return run_rounds(config, settings, strategy, model, play_round, consortium)


def run_rounds(
    config: DictConfig,
    settings: FederationSettings,
    strategy: Strategy,
    model: GlobalModel,
    play_round: RoundStep,
    consortium: Consortium,
    *,
    final_extra: Mapping[str, Any] | None = None,
    log_round: Callable[[dict[str, Any]], None] | None = None,
    round_integer_buffers: bool = False,
) -> FederationResult:
    """Resume, play the remaining rounds, and finish: the lifecycle of every federated run.

    After each round the new weights go back to the network's dtypes and into ``model``, the
    server evaluates the global model (when on), and the round is checkpointed (weights,
    strategy state, history, RNG state), tracked and logged. Each round is followed, when
    due, by the evaluation-only sites' phase; after the last (also on a resumed run that had
    no round left) comes the cross-site matrix. At the end the final model, the history and
    the config are written.

    Args:
        config: the composed config (saved with every checkpoint).
        settings: its federation settings.
        strategy: the strategy ``play_round`` uses; its state is checkpointed and restored.
            Its vendor personalisation, when it has one, goes into the final model and to the
            global evaluation and the evaluation-only sites.
        model: the global model, loaded with the resumed weights when resuming.
        play_round: one round of the training sites (:data:`RoundStep`).
        consortium: the run's sites; their bindings (``gate.identities``) are kept in the
            checkpoints and restored on resume.
        final_extra: more fields for the final model checkpoint.
        log_round: writes a round's log line from its record (default: the plain round's).
        round_integer_buffers: round integer buffers that come back as floats to the nearest
            integer instead of truncating them.
    """
    personalisation = vendor_personalisation(strategy)
    grid, roles = consortium.grid, consortium.roles
    play_round = with_evaluation_sites(play_round, settings, grid, roles, personalisation)
    # The cross-site phase checks its named checkpoints against the model now, before any round.
    after_rounds = cross_site_phase(settings, grid, roles, personalisation, model.state_dict())
    settings.output_dir.mkdir(parents=True, exist_ok=True)
    start, keeper = _open_run(
        config, settings, strategy, model, consortium, log_round, round_integer_buffers
    )
    tracker, arrays = keeper.tracker, ArrayRecord(model.state_dict())
    try:
        for server_round in range(start, settings.num_rounds + 1):
            record, arrays = play_round(server_round, arrays)
            arrays = keeper.keep(server_round, record, arrays)
        if after_rounds is not None:
            after_rounds(model, keeper.history, tracker)
        result = _finish(keeper, config, final_extra or {})
    except BaseException:
        tracker.end(failed=True)
        raise
    tracker.end(failed=False)
    return result


@dataclasses.dataclass
class _RoundKeeper:
    """What follows every round of a run: the weights back in the network's ``dtypes`` and
    into ``model``, the server's evaluation (when on), the checkpoint (with ``config_yaml``),
    tracking and the log line; and at the end, the final model. ``history`` and ``rounds``
    grow by one per round kept."""

    settings: FederationSettings
    strategy: Strategy
    model: GlobalModel
    identities: SiteIdentities | None
    personalisation: VendorPersonalisation | None
    history: list[RoundRecord]
    dtypes: dict[str, np.dtype]
    tracker: Tracker
    evaluator: GlobalEvaluator | None
    config_yaml: str
    round_integer_buffers: bool
    log_round: Callable[[RoundRecord], None]
    rounds: list[int] = dataclasses.field(default_factory=list)

    def keep(self, server_round: int, record: RoundRecord, arrays: ArrayRecord) -> ArrayRecord:
        """Keep round ``server_round``'s ``record`` and new ``arrays``; returns the arrays in
        the network's dtypes."""
        arrays = _cast(arrays, self.dtypes, self.round_integer_buffers)
        self.model.load(arrays.to_torch_state_dict())
        if self.evaluator is not None:
            _evaluate_globally(self.evaluator, self.model, self.personalisation, record)
        self.history.append(record)
        checkpoint = RoundCheckpoint(
            server_round=server_round,
            arrays=self.model.state_dict(),
            strategy=_server_state(self.strategy, self.identities),
            config_yaml=self.config_yaml,
            history=history_to_json(self.history),
            rng=rng_state(),
            tracking_run_id=self.tracker.run_id,
        )
        self.tracker.log_round(record, save_round_checkpoint(self.settings.output_dir, checkpoint))
        self.rounds.append(server_round)
        self.log_round(record)
        return arrays


def _open_run(
    config: DictConfig,
    settings: FederationSettings,
    strategy: Strategy,
    model: GlobalModel,
    consortium: Consortium,
    log_round: Callable[[RoundRecord], None] | None,
    round_integer_buffers: bool,
) -> tuple[int, _RoundKeeper]:
    """Resume (or start) the run: the first round to play and the run's
    :class:`_RoundKeeper`, its tracker (continuing the resumed MLflow run) and evaluator
    opened, the dtypes those of ``model`` as resumed."""
    identities = consortium.gate.identities
    start, run_id, history = _resume(config, settings, strategy, model, identities)
    # Aggregation may come back in another dtype (FedAdam computes in float64): the global
    # model keeps the network's dtypes, so traffic and checkpoints stay the network's size.
    dtypes = {key: value.numpy().dtype for key, value in model.state_dict().items()}
    tracker = open_tracker(settings, config, run_id)
    evaluator = _open_evaluator(config, settings)
    keeper = _RoundKeeper(
        settings,
        strategy,
        model,
        identities,
        vendor_personalisation(strategy),
        history,
        dtypes,
        tracker,
        evaluator,
        config_yaml=OmegaConf.to_yaml(config, resolve=True),
        round_integer_buffers=round_integer_buffers,
        log_round=log_round or _log_round,
    )
    return start, keeper


def _resume(
    config: DictConfig,
    settings: FederationSettings,
    strategy: Strategy,
    model: GlobalModel,
    identities: SiteIdentities | None,
) -> tuple[int, str | None, list[RoundRecord]]:
    """(first round to play, MLflow run to continue, history so far): from the checkpoint
    ``settings.resume`` names, whose weights, strategy state and RNG state are restored,
    or a fresh start."""
    found = load_resume_point(settings.output_dir, settings.resume)
    if found is None:
        return 1, None, []
    resume, saved = found
    check_same_recipe(saved.config_yaml, config, resume)
    model.load(saved.arrays)
    restore_strategy_state(strategy, saved.strategy)
    if identities is not None and IDENTITIES_STATE in saved.strategy:
        identities.restore(saved.strategy[IDENTITIES_STATE])
    restore_rng_state(saved.rng)
    logger.info("resuming from %s after round %d", resume, saved.server_round)
    return saved.server_round + 1, saved.tracking_run_id, history_from_json(saved.history)


def _evaluate_globally(
    evaluator: GlobalEvaluator,
    model: GlobalModel,
    personalisation: VendorPersonalisation | None,
    record: RoundRecord,
) -> None:
    """The server's own scores of the new global model, with their time, into ``record``."""
    began = time.perf_counter()
    record.global_scores = evaluator.evaluate(model, _vendor_parts(personalisation))
    record.timing["global-eval-seconds"] = time.perf_counter() - began


def run_round(
    server_round: int,
    settings: FederationSettings,
    strategy: Strategy,
    arrays: ArrayRecord,
    grid: Grid,
    gate: ReplyGate,
    transport: ServerTransport | None = None,
) -> tuple[RoundRecord, ArrayRecord]:
    """One round of training and site evaluation; returns its record and the new weights.

    With ``transport`` the requests travel encoded (half precision, the frozen part once)
    and the replies come back as full float32 weights (server/server_transport.py).

    Each site gets the arrays the strategy configures (a vendor-personalised strategy puts
    the site's vendor copy in); replies pass the ``gate`` (fields, identity), the strategy is
    shown them (strategies/wrappers.py: ``observe_train_replies``), their updates are screened
    against what was sent (server/update_screening.py), and the strategy aggregates the
    accepted ones.
    """
    began = time.perf_counter()
    this_round = _RoundParties(server_round, settings, strategy, grid, gate, transport)
    trained = _train_phase(this_round, arrays)
    train_seconds = time.perf_counter() - began
    new_arrays = trained.arrays
    if new_arrays is None:
        logger.warning(
            "round %d: keeping the previous global model: %s", server_round, trained.note
        )
        new_arrays = arrays

    evaluation = evaluate_on_sites(
        server_round, settings, strategy, new_arrays, grid, gate, transport
    )
    record = _round_record(this_round, arrays, trained, evaluation, train_seconds)
    return record, new_arrays


@dataclasses.dataclass(frozen=True)
class _RoundParties:
    """One plain round's number and who takes part: the settings, the strategy, the grid
    and reply gate of the training sites, and the transport (None: plain arrays)."""

    server_round: int
    settings: FederationSettings
    strategy: Strategy
    grid: Grid
    gate: ReplyGate
    transport: ServerTransport | None


@dataclasses.dataclass
class _TrainPhase:
    """The training phase of a plain round.

    Attributes:
        replies: the sites' train replies, sorted out (decoded when a transport is on).
        undecoded: rejections of replies the transport could not decode.
        screened: the accepted updates and the rejected ones.
        wire: the array bytes each node was sent encoded; None without a transport.
        arrays: the aggregate; None when there is none (the note says why).
        metrics: the strategy's aggregate of the train metrics.
        note: how the aggregation went.
    """

    replies: PhaseReplies
    undecoded: list[dict[str, Any]]
    screened: ScreenedUpdates
    wire: dict[int, int] | None
    arrays: ArrayRecord | None
    metrics: dict[str, float]
    note: str


def _train_phase(this_round: _RoundParties, arrays: ArrayRecord) -> _TrainPhase:
    """Send the train requests for ``arrays``, sort, decode and screen the replies, and
    aggregate the accepted updates (none when fewer than ``validation.min_accepted``)."""
    server_round, settings = this_round.server_round, this_round.settings
    strategy, grid, gate = this_round.strategy, this_round.grid, this_round.gate
    transport = this_round.transport
    # FedProx writes the same proximal-mu; sent here so FedAdam / FedYogi can use the term too.
    messages = train_requests(
        server_round, settings, strategy, arrays, grid, settings.aggregation.proximal_mu
    )
    # What each site was sent, as the server holds it (float32 masters, every array).
    sent = {int(message.metadata.dst_node_id): message.content["arrays"] for message in messages}
    wire = transport.encode(messages) if transport is not None else None
    train = exchange("train", messages, grid, settings.timeout, gate)
    undecoded: list[dict[str, Any]] = []
    if transport is not None:
        train, undecoded = transport.decode(train)
    observe_train_replies(strategy, train.valid)
    screened = screen_updates(server_round, settings, train.valid, sent)
    accepted = screened.accepted
    if train.valid and len(accepted) < settings.validation.min_accepted:
        new_arrays, train_metrics = None, {}
        train_note = (
            f"{len(accepted)} accepted update(s), fewer than federation.validation."
            f"min_accepted={settings.validation.min_accepted}"
        )
    else:
        accepted_replies = dataclasses.replace(train, valid=accepted)
        new_arrays, train_metrics, train_note = _aggregate_train(
            strategy, server_round, accepted_replies
        )
        if new_arrays is not None and transport is not None:
            new_arrays = transport.keep_frozen(new_arrays, arrays)
    return _TrainPhase(train, undecoded, screened, wire, new_arrays, train_metrics, train_note)


def _round_record(
    this_round: _RoundParties,
    arrays: ArrayRecord,
    trained: _TrainPhase,
    evaluation: SiteEvaluation,
    train_seconds: float,
) -> RoundRecord:
    """A plain round's record: metrics, notes and reports, per-site records, errors and
    rejections, timing and traffic (``arrays``: the weights the round started from)."""
    train, evaluate = trained.replies, evaluation.replies
    screened, wire = trained.screened, trained.wire
    # The arrays' bytes on the wire: the largest any site was sent, and all of them.
    sent_bytes = max(wire.values(), default=0) if wire is not None else array_bytes(arrays)
    sent_total = sum(wire.values()) if wire is not None else None
    strategy = this_round.strategy
    return RoundRecord(
        round=this_round.server_round,
        train=trained.metrics,
        evaluate=evaluation.metrics,
        aggregation={
            "train": trained.note,
            "evaluate": evaluation.note,
            **screened.report(),
            **_site_weights(strategy),
            **central_dp_report(strategy),
        },
        sites=site_records(train, evaluate, sent_bytes),
        errors=train.errors + evaluate.errors,
        rejected=train.refused + trained.undecoded + screened.rejected + evaluate.refused,
        timing=round_timing(train, evaluate, train_seconds, evaluation.seconds),
        traffic={
            "bytes-per-site": sent_bytes,
            "bytes-sent": sent_total
            if sent_total is not None
            else sent_bytes * (len(train.valid) + len(train.refused) + len(train.errors)),
            "bytes-received": sum(site["bytes-received"] for site in train.sites.values()),
        },
    )


def _aggregate_train(
    strategy: Strategy, server_round: int, train: PhaseReplies
) -> tuple[ArrayRecord | None, dict[str, float], str]:
    if not train.valid:
        return (
            None,
            {},
            (f"no site trained ({len(train.errors)} failed, {len(train.refused)} refused)"),
        )
    # ValueError: e.g. Flower's DP accountant refusing unequal site weights.
    return aggregate_train_replies(strategy, server_round, train.valid, tolerated=(ValueError,))


def _finish(keeper: _RoundKeeper, config: DictConfig, extra: Mapping[str, Any]) -> FederationResult:
    """Write the final model (with ``extra`` among its fields), the history and the config."""
    settings, model, history, tracker = (
        keeper.settings,
        keeper.model,
        keeper.history,
        keeper.tracker,
    )
    personalisation = keeper.personalisation
    output_dir = settings.output_dir
    completed = history[-1].round if history else 0
    personal = {}
    if personalisation is not None:
        # The shared weights hold the fallback; each vendor's copy travels beside them and
        # cardiomm reconstruct / evaluate pick it by the scan's vendor.
        personal = {
            VENDOR_PARTS_KEY: personalisation.vendor_state_dicts(),
            "personalised": list(settings.aggregation.personalised),
        }
    final = model.save_final(
        checkpoint_dir(output_dir) / FINAL,
        extra={
            **personal,
            "method": settings.method,
            # How inputs must be prepared for this model (cardiomm reconstruct follows it).
            "remove_oversampling": bool(config.data.remove_oversampling),
            "rounds": completed,
            "strategy": settings.strategy,
            "federated": True,
            **extra,
        },
    )
    history_path = write_history(output_dir / HISTORY_FILE, history)
    (output_dir / "config.yaml").write_text(keeper.config_yaml)
    tracker.log_final(final, history_path)
    return FederationResult(
        rounds=keeper.rounds,
        history=history,
        arrays=model.state_dict(),
        final_checkpoint=final,
        history_path=history_path,
        tracking_run_id=tracker.run_id,
    )


def _site_weights(strategy: Strategy) -> dict[str, dict[str, float]]:
    """Each site's weight in the last aggregation, when the strategy is vendor-aware."""
    weights = getattr(inner_strategy(strategy), "last_weights", {})
    return {"weights": weights} if weights else {}


def _transport(
    settings: FederationSettings, config: DictConfig, model: GlobalModel
) -> ServerTransport | None:
    if not settings.transport.active:
        return None
    trainable = [str(group) for group in config.train.get("trainable", ["all"])]
    frozen = frozen_names(model.state_dict(), trainable)
    if settings.transport.trainable_only:
        logger.info("transport: %d arrays sent once per site, the rest every round", len(frozen))
    return ServerTransport(settings.transport, frozen)


def _server_state(strategy: Strategy, identities: SiteIdentities | None) -> dict[str, Any]:
    state = strategy_state(strategy)
    if identities is not None:
        state[IDENTITIES_STATE] = identities.state()
    return state


def _vendor_parts(
    personalisation: VendorPersonalisation | None,
) -> dict[str, dict[str, torch.Tensor]] | None:
    return personalisation.vendor_state_dicts() if personalisation is not None else None


def _open_evaluator(config: DictConfig, settings: FederationSettings) -> GlobalEvaluator | None:
    """The server-side evaluator, or None when it is off or the server has no data.

    A coordinator in a deployment holds no k-space: a missing data root turns global
    evaluation off with a warning instead of stopping the federation.
    """
    if not settings.global_evaluation:
        return None
    try:
        return GlobalEvaluator(config, settings)
    except (FileNotFoundError, ValueError) as error:
        logger.warning("global evaluation is off: %s", error)
        return None


def _cast(arrays: ArrayRecord, dtypes: dict[str, np.dtype], round_integers: bool) -> ArrayRecord:
    """``arrays`` in the network's ``dtypes`` (as they are when they already match).

    Integer and bool buffers that come back as floats are rounded to the nearest integer
    when ``round_integers`` is true, else truncated.
    """
    if all(np.dtype(arrays[key].dtype) == dtypes[key] for key in arrays):
        return arrays
    cast = {}
    for key in arrays:
        value, dtype = arrays[key].numpy(), dtypes[key]
        integral = np.issubdtype(dtype, np.integer) or dtype == np.bool_
        if round_integers and integral and np.dtype(value.dtype) != dtype:
            value = np.rint(value)
        cast[key] = Array(np.asarray(value, dtype=dtype))
    return ArrayRecord(cast)


def _log_round(record: RoundRecord) -> None:
    """The plain round's log line: sites, errors, loss, wall time and overhead."""
    logger.info(
        "round %d: %d site(s), %d error(s), loss %.4f, %.1f s (overhead %.1f s)",
        record.round,
        len(record.sites),
        len(record.errors),
        record.train.get("loss", float("nan")),
        record.timing["round-seconds"],
        record.timing["overhead-seconds"],
    )
