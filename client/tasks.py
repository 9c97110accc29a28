"""A site's part of one Flower message, in plain values: what the ClientApp does in-process
and what a warm site worker (client/worker.py) does for it.

A :class:`~client.site_task.SiteTask` holds everything the message and the ClientApp's
context say (the run config, the node config, the request's config record, the global
weights as numpy arrays, the DP-SGD history from ``context.state``); :func:`run_task` turns
it into a :class:`~client.site_task.TaskOutcome` (metrics, weights, the site record, the
history to store back, or an error code and a reason naming the site). Nothing here knows
about Flower messages, so the same code answers in the ClientApp's process and in the
worker's, and both give the same bits.

A site that cannot do its part answers with an error; the round goes on without it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from cardiomm.data.errors import DataFileError
from cardiomm.model.factory import network_from_config
from cardiomm.site_round import NetworkBuilder, RoundInstructions, SiteRound
from cardiomm.train.loop import TrainingStepError
from client.local import score_metrics, skipped_files_json, train_metrics, validation_metrics
from client.privacy_state import ACCOUNTANT_WHERE
from client.site import SiteData, SiteDataError, resolve_site
from client.site_config import compose_site_config
from client.site_task import (
    EVALUATE,
    QUERY,
    TASK_KINDS,
    TRAIN,
    SiteTask,
    TaskOutcome,
    node_description,
)
from client.worker import ClientAppGoneError, TaskHandler
from federation.protocol import (
    CROSS_SITE_DECLINED,
    CROSS_SITE_MODEL,
    LEARNING_RATE,
    LOCAL_STEPS,
    PRIVACY_BUDGET_SPENT,
    PRIVACY_POLICY_REFUSED,
    PROXIMAL_MU,
    ROLE_EVALUATE,
    SEED,
    SERVER_ROUND,
    SETUP_SECONDS,
    SITE_FAILURE,
    SiteRecord,
)

logger = logging.getLogger(__name__)


def run_task(
    task: SiteTask,
    build: NetworkBuilder = network_from_config,
    confirm_charge: Callable[[], None] | None = None,
) -> TaskOutcome:
    """Do the site's part of one message; never raises (a failure is the outcome).

    Args:
        task: the message's work.
        build: where the network comes from (a warm worker's cache, or built afresh).
        confirm_charge: called right before the site's privacy ledger is charged (a site
            worker asks its ClientApp, client/worker.py); raising stops the round uncharged.
    """
    site: SiteData | None = None
    timings: dict[str, float] = {}
    try:
        config, site = site_of(task.run_config, task.node_config, timings)
        if task.kind == TRAIN:
            outcome = _train(task, config, site, build, confirm_charge)
        elif task.kind == EVALUATE:
            outcome = _evaluate(task, config, site, build)
        elif task.kind == QUERY:
            outcome = TaskOutcome(site=_site_fields(site, "[]"))
        else:
            raise ValueError(f"unknown task kind {task.kind!r}: one of {', '.join(TASK_KINDS)}")
    except Exception as error:  # a site's failure is its reply, never a crashed ClientApp
        return failure(site, task.node_config, error)
    if task.kind != QUERY and not outcome.error_code:
        outcome.metrics.update(timings)
    return outcome


def site_of(
    run_config: dict[str, Any], node_config: dict[str, Any], timings: dict[str, float]
) -> tuple[Any, SiteData]:
    """(the site's composed config, its data): the coordinator's run config under the site's
    own file, and the site its node config names; their seconds into ``timings``."""
    began = time.perf_counter()
    config = compose_site_config(run_config, node_config)
    site = resolve_site(dict(node_config), config)
    timings[SETUP_SECONDS] = time.perf_counter() - began
    return config, site


def _train(
    task: SiteTask,
    config: Any,
    site: SiteData,
    build: NetworkBuilder,
    confirm_charge: Callable[[], None] | None,
) -> TaskOutcome:
    """The library's training round (:meth:`SiteRound.train`) for a train message; a run
    the site's policy refuses and a spent budget are error outcomes naming the site."""
    if site.role == ROLE_EVALUATE:
        raise SiteDataError(
            f"site {site.site_id} is an evaluation-only site (role=evaluate): it does not train"
        )
    instructions = _instructions(task.request, config)
    try:
        trained = SiteRound(site, config, build).train(
            _state_dict(task.arrays),
            instructions,
            history=task.history,
            run_id=task.run_id,
            confirm_charge=confirm_charge,
            history_where=ACCOUNTANT_WHERE,
        )
    except Exception as error:
        refused = _refusal(site, error)
        if refused is None:
            raise
        return refused
    # With a ledger the steps were charged there before training: an update released is
    # always charged, and a round that failed after the charge stays charged. The history
    # is stored only once the round succeeded: a failed round releases nothing.
    return TaskOutcome(
        metrics=train_metrics(site.field_strengths, trained),
        arrays={name: tensor.numpy() for name, tensor in trained.state.items()},
        site=_site_fields(site, skipped_files_json(trained.skipped)),
        history=trained.history,
    )


def _instructions(received: dict[str, Any], config: Any) -> RoundInstructions:
    """What the server asked for, from the message's config record."""
    return RoundInstructions(
        server_round=int(received[SERVER_ROUND]),
        local_steps=int(received[LOCAL_STEPS]),
        learning_rate=float(received[LEARNING_RATE]),
        proximal_mu=float(received.get(PROXIMAL_MU, 0.0)),
        seed=int(received.get(SEED, config.seed)),
    )


def _refusal(site: SiteData, error: Exception) -> TaskOutcome | None:
    """The error outcome of a run the site's privacy policy refuses (the noise calibrated
    from a target epsilon too) or whose budget is spent; None for any other failure."""
    from cardiomm.privacy.errors import PrivacyBudgetSpentError
    from cardiomm.privacy.policy import PolicyViolationError

    if isinstance(error, PolicyViolationError):
        code, reason = PRIVACY_POLICY_REFUSED, f"site {site.site_id} refuses the run: {error}"
    elif isinstance(error, PrivacyBudgetSpentError):
        code, reason = PRIVACY_BUDGET_SPENT, f"site {site.site_id}: {error}"
    else:
        return None
    logger.warning(reason)
    return TaskOutcome(error_code=code, reason=reason)


def _evaluate(task: SiteTask, config: Any, site: SiteData, build: NetworkBuilder) -> TaskOutcome:
    """The global model's scores on the site's validation split (a training site) or on all
    of its files, per group (an evaluation-only site); for a model of the cross-site matrix
    (``cross-site-model`` in the request), its scores on the site's test split (all files of
    an evaluation-only site), unless the site's own file declines."""
    global_state = _state_dict(task.arrays)
    site_round = SiteRound(site, config, build)
    if task.request.get(CROSS_SITE_MODEL) is not None:
        if not bool(config.sharing.cross_site_evaluation):
            return _declined(site)
        scores = site_round.score(site.scored_files, global_state)
        metrics, skipped = score_metrics(scores), scores.skipped if scores else []
    elif site.role == ROLE_EVALUATE:
        scores = site_round.score(site.evaluation_files, global_state)
        metrics, skipped = score_metrics(scores), scores.skipped if scores else []
    else:
        metrics, skipped = validation_metrics(site_round.evaluate(global_state)), []
    return TaskOutcome(metrics=metrics, site=_site_fields(site, skipped_files_json(skipped)))


def _declined(site: SiteData) -> TaskOutcome:
    reason = (
        f"site {site.site_id} does not score other models "
        "(sharing.cross_site_evaluation is false in its site file)"
    )
    logger.info(reason)
    return TaskOutcome(error_code=CROSS_SITE_DECLINED, reason=reason)


def _state_dict(arrays: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    # Copies: the arrays may be read-only views of a received buffer.
    return {name: torch.from_numpy(np.array(array)) for name, array in arrays.items()}


def _site_fields(site: SiteData, bad_files_json: str) -> dict[str, str]:
    record = SiteRecord(
        site.site_id, site.vendor, ", ".join(site.scanners), bad_files_json, site.role
    )
    return dict(record.to_record())


# Failures whose message says all (a file, a setting, the data): no traceback needed.
_EXPLAINED = (
    SiteDataError,
    DataFileError,
    FileNotFoundError,
    ValueError,
    KeyError,
    TrainingStepError,
    ClientAppGoneError,
)


def failure(site: SiteData | None, node_config: dict[str, Any], error: Exception) -> TaskOutcome:
    """The error outcome: the site, the failure's type unless self-explanatory, its message."""
    who = site.site_id if site is not None else node_description(node_config)
    # Messages that already name the site (the library's "site Center001: ...") keep theirs.
    prefix = "" if str(error).startswith(f"site {who}") else f"site {who}: "
    if isinstance(error, _EXPLAINED):
        reason = f"{prefix}{error}"
        logger.error(reason)
    else:
        reason = f"site {who}: {type(error).__name__}: {error}"
        logger.exception(reason)  # the traceback stays in the site's own log
    return TaskOutcome(error_code=SITE_FAILURE, reason=reason)


def worker_handler(build: NetworkBuilder) -> TaskHandler:
    """A site worker's task handler (client/worker.py): header and arrays in, the
    outcome's header and arrays out, the networks from ``build`` (a warm cache)."""

    def handle(
        header: dict[str, Any], arrays: dict[str, np.ndarray], confirm_charge: Callable[[], None]
    ) -> tuple[dict, dict]:
        began = time.perf_counter()
        try:
            task = SiteTask.from_header(header, arrays)
        except ValueError as error:
            outcome = failure(None, {}, error)
        else:
            outcome = run_task(task, build, confirm_charge)
        # The worker's own seconds: the ClientApp's round trip minus these is the handoff.
        return {**outcome.header(), "seconds": time.perf_counter() - began}, outcome.arrays

    return handle
