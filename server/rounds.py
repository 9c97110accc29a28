"""The federated round loop.

Our own loop rather than ``strategy.start``: that one always numbers rounds from 1 (so it
cannot resume) and hides the sites' individual replies. Each round: train on the sampled
sites, aggregate, evaluate on the sites, evaluate the global model on the server (optional),
then checkpoint and track.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MetricRecord
from flwr.serverapp import Grid
from flwr.serverapp.exception import AggregationError, InconsistentMessageReplies
from flwr.serverapp.strategy import Strategy
from omegaconf import DictConfig, OmegaConf

from cardiomm.model.vendor_parts import VENDOR_PARTS_KEY
from server.checkpoints import (
    FINAL,
    RoundCheckpoint,
    checkpoint_dir,
    load_round_checkpoint,
    restore_rng_state,
    resume_path,
    rng_state,
    save_round_checkpoint,
)
from server.evaluation import GlobalEvaluator
from server.model import GlobalModel
from server.replies import PhaseReplies, array_bytes, finite_max, sort_replies
from server.settings import FederationSettings
from server.strategies import (
    build_strategy,
    central_dp_report,
    inner_strategy,
    restore_strategy_state,
    strategy_state,
)
from server.tracking import Tracker, open_tracker
from strategies.update_validation import validate_replies
from strategies.vendor_personalisation import VendorPersonalisation

logger = logging.getLogger(__name__)

HISTORY_FILE = "history.json"


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
    history: list[dict[str, Any]]
    arrays: dict[str, torch.Tensor]
    final_checkpoint: Path
    history_path: Path
    tracking_run_id: str | None


def run_federation(config: DictConfig, grid: Grid) -> FederationResult:
    """Run (or resume) the federation the config describes over ``grid``."""
    settings = FederationSettings.from_config(config)
    output_dir = settings.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    strategy = build_strategy(settings)
    model = GlobalModel(config, settings.initial_checkpoint)
    personalisation = _personalisation(settings, model)
    history: list[dict[str, Any]] = []
    start, run_id = 1, None
    resume = resume_path(output_dir, settings.resume)
    if resume is not None:
        saved = load_round_checkpoint(resume)
        model.load(saved.arrays)
        restore_strategy_state(strategy, saved.strategy)
        if personalisation is not None:
            personalisation.restore(saved.strategy["personalisation"])
        restore_rng_state(saved.rng)
        history, start, run_id = saved.history, saved.server_round + 1, saved.tracking_run_id
        logger.info("resuming from %s after round %d", resume, saved.server_round)
    # Aggregation may come back in another dtype (FedAdam computes in float64): the global
    # model keeps the network's dtypes, so traffic and checkpoints stay the network's size.
    dtypes = {key: value.numpy().dtype for key, value in model.state_dict().items()}
    arrays = ArrayRecord(model.state_dict())
    tracker = open_tracker(settings, config, run_id)
    evaluator = _open_evaluator(config, settings)
    config_yaml = OmegaConf.to_yaml(config, resolve=True)
    rounds = []
    try:
        for server_round in range(start, settings.num_rounds + 1):
            record, arrays = run_round(
                server_round, settings, strategy, arrays, grid, personalisation
            )
            arrays = _cast(arrays, dtypes)
            model.load(arrays.to_torch_state_dict())
            if evaluator is not None:
                began = time.perf_counter()
                record["global"] = evaluator.evaluate(model, _vendor_parts(personalisation))
                record["timing"]["global-eval-seconds"] = time.perf_counter() - began
            history.append(record)
            path = save_round_checkpoint(
                output_dir,
                RoundCheckpoint(
                    server_round=server_round,
                    arrays=model.state_dict(),
                    strategy=_server_state(strategy, personalisation),
                    config_yaml=config_yaml,
                    history=history,
                    rng=rng_state(),
                    tracking_run_id=tracker.run_id,
                ),
            )
            tracker.log_round(record, path)
            rounds.append(server_round)
            _log_round(record)
        result = _finish(
            settings, config, model, history, rounds, tracker, config_yaml, personalisation
        )
    except BaseException:
        tracker.end(failed=True)
        raise
    tracker.end(failed=False)
    return result


def run_round(
    server_round: int,
    settings: FederationSettings,
    strategy: Strategy,
    arrays: ArrayRecord,
    grid: Grid,
    personalisation: VendorPersonalisation | None = None,
) -> tuple[dict[str, Any], ArrayRecord]:
    """One round of training and site evaluation; returns its record and the new weights.

    Each site gets the global arrays (with its vendor's copy of the personalised parameters
    when ``personalisation`` is given); replies are validated against what was sent before
    the strategy aggregates the accepted ones.
    """
    began = time.perf_counter()
    train_config = ConfigRecord(
        {
            "server-round": server_round,
            "local-steps": settings.local_steps,
            "learning-rate": settings.learning_rate,
            # FedProx writes the same; set here so FedAdam / FedYogi can use the term too.
            "proximal-mu": settings.proximal_mu,
            "seed": settings.seed,
        }
    )
    with _seeded_sampling(settings.seed, server_round, "train"):
        messages = list(strategy.configure_train(server_round, arrays, train_config, grid))
    if personalisation is not None:
        personalisation.personalise(messages)
    sent = {int(message.metadata.dst_node_id): message.content["arrays"] for message in messages}
    train = _exchange("train", messages, grid, settings.timeout)
    if personalisation is not None:
        personalisation.learn_vendors(train.valid)
    accepted, rejections = train.valid, []
    if settings.validation.enabled:
        accepted, rejections = validate_replies(train.valid, sent, settings.validation)
        for rejection in rejections:
            logger.warning(
                "round %d: rejected the update of site %s (node %d): %s",
                server_round,
                rejection.site,
                rejection.node_id,
                rejection.reason,
            )
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
        if new_arrays is not None and personalisation is not None:
            new_arrays = personalisation.update(accepted, new_arrays)
    train_seconds = time.perf_counter() - began
    if new_arrays is None:
        logger.warning("round %d: keeping the previous global model: %s", server_round, train_note)
        new_arrays = arrays

    evaluate_began = time.perf_counter()
    with _seeded_sampling(settings.seed, server_round, "evaluate"):
        messages = list(
            strategy.configure_evaluate(
                server_round, new_arrays, ConfigRecord({"server-round": server_round}), grid
            )
        )
    if personalisation is not None:
        personalisation.personalise(messages)
    evaluate = _exchange("evaluate", messages, grid, settings.timeout)
    evaluate_metrics, evaluate_note = _aggregate_evaluate(strategy, server_round, evaluate)
    evaluate_seconds = time.perf_counter() - evaluate_began

    sent_bytes = array_bytes(arrays)
    record = {
        "round": server_round,
        "train": train_metrics,
        "evaluate": evaluate_metrics,
        "aggregation": {
            "train": train_note,
            "evaluate": evaluate_note,
            **_site_weights(strategy),
            **central_dp_report(strategy),
        },
        "sites": _site_records(train, evaluate, sent_bytes),
        "errors": train.errors + evaluate.errors,
        "rejected": [rejection.to_dict() for rejection in rejections],
        "timing": _timing(train, evaluate, train_seconds, evaluate_seconds),
        "traffic": {
            "bytes-per-site": sent_bytes,
            "bytes-sent": sent_bytes * len(train.valid) + sent_bytes * len(train.errors),
            "bytes-received": sum(site["bytes-received"] for site in train.sites.values()),
        },
    }
    return record, new_arrays


def _exchange(
    phase: str, messages: list[Message], grid: Grid, timeout: float | None
) -> PhaseReplies:
    if not messages:
        return PhaseReplies(valid=[], sites={}, errors=[])
    replies = grid.send_and_receive(messages, timeout=timeout)
    return sort_replies(phase, messages, replies)


def _aggregate_train(
    strategy: Strategy, server_round: int, train: PhaseReplies
) -> tuple[ArrayRecord | None, dict[str, float], str]:
    if not train.valid:
        return None, {}, f"no site trained ({len(train.errors)} failed)"
    try:
        arrays, metrics = strategy.aggregate_train(server_round, train.valid)
    except (AggregationError, InconsistentMessageReplies, ValueError) as error:
        # ValueError: e.g. Flower's DP accountant refusing unequal site weights.
        return None, {}, f"aggregation failed: {error}"
    if arrays is None:
        return None, _numbers(metrics), "the strategy returned no weights"
    return arrays, _numbers(metrics), "ok"


def _aggregate_evaluate(
    strategy: Strategy, server_round: int, evaluate: PhaseReplies
) -> tuple[dict[str, float], str]:
    if not evaluate.valid:
        return {}, f"no site evaluated ({len(evaluate.errors)} failed)"
    try:
        metrics = strategy.aggregate_evaluate(server_round, evaluate.valid)
    except (AggregationError, InconsistentMessageReplies) as error:
        return {}, f"aggregation failed: {error}"
    return _numbers(metrics), "ok" if metrics is not None else "the strategy returned nothing"


def _site_records(
    train: PhaseReplies, evaluate: PhaseReplies, bytes_sent: int
) -> dict[str, dict[str, Any]]:
    sites: dict[str, dict[str, Any]] = {}
    for site_id, entry in train.sites.items():
        sites[site_id] = {
            "node-id": entry["node-id"],
            **{key: entry[key] for key in ("vendor", "scanner", "bad-files") if key in entry},
            "train": entry["metrics"],
            "bytes-sent": bytes_sent,
            "bytes-received": entry["bytes-received"],
        }
    for site_id, entry in evaluate.sites.items():
        site = sites.setdefault(site_id, {"node-id": entry["node-id"]})
        site["evaluate"] = entry["metrics"]
    return sites


def _timing(
    train: PhaseReplies, evaluate: PhaseReplies, train_seconds: float, evaluate_seconds: float
) -> dict[str, float]:
    """Round wall time, the clients' compute, and the rest (the federation's overhead).

    The round has to wait for its slowest site in each phase, so the overhead is the round's
    wall time minus the slowest site's training and evaluation time.
    """
    compute = [site["metrics"].get("train-seconds", 0.0) for site in train.sites.values()]
    evaluation = [site["metrics"].get("eval-seconds", 0.0) for site in evaluate.sites.values()]
    round_seconds = train_seconds + evaluate_seconds
    slowest = finite_max(compute) + finite_max(evaluation)
    return {
        "round-seconds": round_seconds,
        "train-phase-seconds": train_seconds,
        "evaluate-phase-seconds": evaluate_seconds,
        "client-train-seconds-max": finite_max(compute),
        "client-train-seconds-sum": float(sum(value for value in compute if value == value)),
        "client-eval-seconds-max": finite_max(evaluation),
        "overhead-seconds": round_seconds - slowest,
    }


def _finish(
    settings: FederationSettings,
    config: DictConfig,
    model: GlobalModel,
    history: list[dict[str, Any]],
    rounds: list[int],
    tracker: Tracker,
    config_yaml: str,
    personalisation: VendorPersonalisation | None,
) -> FederationResult:
    output_dir = settings.output_dir
    completed = history[-1]["round"] if history else 0
    personal = {}
    if personalisation is not None:
        # The shared weights hold the fallback; each vendor's copy travels beside them and
        # cardiomm reconstruct / evaluate pick it by the scan's vendor.
        personal = {
            VENDOR_PARTS_KEY: personalisation.vendor_state_dicts(),
            "personalised": list(settings.personalised),
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
        },
    )
    history_path = output_dir / HISTORY_FILE
    history_path.write_text(json.dumps(history, indent=2, default=float))
    (output_dir / "config.yaml").write_text(config_yaml)
    tracker.log_final(final, history_path)
    return FederationResult(
        rounds=rounds,
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


def _personalisation(
    settings: FederationSettings, model: GlobalModel
) -> VendorPersonalisation | None:
    if not settings.personalised:
        return None
    personalisation = VendorPersonalisation(settings.personalised, settings.vendor_weighting)
    keys = personalisation.keys(model.state_dict())  # refuses a pattern that matches nothing
    logger.info("%d parameter tensors are kept per vendor", len(keys))
    return personalisation


def _server_state(
    strategy: Strategy, personalisation: VendorPersonalisation | None
) -> dict[str, Any]:
    state = strategy_state(strategy)
    if personalisation is not None:
        state["personalisation"] = personalisation.state()
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


@contextlib.contextmanager
def _seeded_sampling(seed: int, server_round: int, phase: str) -> Iterator[None]:
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


def _cast(arrays: ArrayRecord, dtypes: dict[str, np.dtype]) -> ArrayRecord:
    if all(np.dtype(arrays[key].dtype) == dtypes[key] for key in arrays):
        return arrays
    return ArrayRecord(
        {key: Array(np.asarray(arrays[key].numpy(), dtype=dtypes[key])) for key in arrays}
    )


def _numbers(metrics: MetricRecord | None) -> dict[str, float]:
    if metrics is None:
        return {}
    return {key: float(value) for key, value in metrics.items() if not isinstance(value, list)}


def _log_round(record: dict[str, Any]) -> None:
    timing = record["timing"]
    logger.info(
        "round %d: %d site(s), %d error(s), loss %.4f, %.1f s (overhead %.1f s)",
        record["round"],
        len(record["sites"]),
        len(record["errors"]),
        record["train"].get("loss", float("nan")),
        timing["round-seconds"],
        timing["overhead-seconds"],
    )
