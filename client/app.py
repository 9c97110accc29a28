"""The ClientApp: Flower messages in, a site's local training and evaluation, numbers out.

Only translation between Flower records and a :class:`~client.site_task.SiteTask` happens
here; the work is :func:`client.tasks.run_task`, done in this process or, when the node
config names a warm site worker (``site-worker="<folder>"``, client/worker.py), handed to
it: then this process imports neither torch nor the model, and when the worker is down,
stopped or silent for ``site-worker-timeout`` seconds (node config, default 30) the task is
done here after all (one warning in the site's log naming the socket and what happened,
``site-worker`` 0 in the reply). The one exception: a DP-SGD round whose worker was lost
after it was let charge the site's privacy ledger is an error reply, not trained again here,
so that one update is never charged twice.
A site that cannot train replies with an error naming itself and the problem, and the round
goes on.

With DP-SGD (``privacy.dp_sgd.enabled``) the site's privacy accountant lives in
``context.state`` (the one thing Flower keeps per node between rounds), so the epsilon
each reply reports is cumulative over the run. A site whose epsilon budget is spent does not
train and replies with an :class:`~flwr.app.Error` of code :data:`PRIVACY_BUDGET_SPENT`
whose reason names the site and its epsilon, rather than with ``num-examples`` 0: every site
of a run spends its budget at about the same pace, and when all of them replied with 0
examples the weighted average would divide by zero, while errors leave the server to keep
the previous global model, log the reason per site, and go on to evaluation.

An evaluation-only site (node config ``role="evaluate"``; a simulation's held-out centres)
tells the server its role in the roll call (a query message, answered with the site record
alone), is sent no training, refuses training if sent it anyway, and answers evaluate
messages with the global model's official scores on all of its files, per group.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from typing import Any

from flwr.app import (
    ConfigRecord,
    Context,
    Error,
    Message,
    MetricRecord,
    RecordDict,
)
from flwr.clientapp import ClientApp

# First of the project's imports: its clock splits the process's start from the imports below.
import client.startup
from client.central_dp import central_dp_clipping_mod
from client.privacy_state import store_history, stored_history
from client.secure_aggregation_mod import secure_aggregation_mod
from client.site_task import (
    EVALUATE,
    QUERY,
    TRAIN,
    SiteTask,
    TaskOutcome,
    node_description,
    scalar_values,
)
from client.site_transport import receive
from federation.array_packing import received_weights, weights_record
from federation.protocol import (
    ARRAYS,
    CONFIG,
    HANDOFF_SECONDS,
    IMPORT_SECONDS,
    METRICS,
    NODE_SITE_WORKER,
    NODE_SITE_WORKER_TIMEOUT,
    SITE_FAILURE,
    SITE_RECORD,
    SITE_WORKER_ANSWERED,
)

logger = logging.getLogger(__name__)

# Secure aggregation (privacy=secagg): the mod keeps a secure round's weights at the site and
# answers Flower's SecAgg+ stages; central DP with client-side clipping clips the update when
# the server sends a clipping norm. Every other message passes through both unchanged.
app = ClientApp(mods=[secure_aggregation_mod, central_dp_clipping_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local training on the site's train split; replies weights and metrics."""
    return _answer(TRAIN, msg, context)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global model's scores on the site's validation split (a training site) or on all
    of its files, per group (an evaluation-only site); for a model of the cross-site matrix
    (``cross-site-model`` in the request), its scores on the site's test split (all files of
    an evaluation-only site), unless the site's own file declines."""
    return _answer(EVALUATE, msg, context)


@app.query()
def roll_call(msg: Message, context: Context) -> Message:
    """Who the site is and what it does (its role): the site record alone, no data read
    beyond the index."""
    return _answer(QUERY, msg, context)


def _answer(kind: str, msg: Message, context: Context) -> Message:
    timings = client.startup.CLOCK.take() if kind != QUERY else {}
    arrays, layout = {}, None
    try:
        if kind != QUERY:
            arrays, layout = received_weights(msg.content)  # packed by the server, or not
            # Half precision or a frozen part kept here (federation/transport.py).
            received = receive(msg.content, arrays, context.state)
            arrays = received.weights
        task = SiteTask(
            kind=kind,
            run_config=scalar_values(context.run_config),
            node_config=scalar_values(context.node_config),
            request=scalar_values(msg.content.config_records.get(CONFIG, {})),
            arrays=arrays,
            history=stored_history(context.state) if kind == TRAIN else None,
            run_id=str(context.run_id),
        )
    except Exception as error:  # a malformed message or state is the site's error reply
        reason = f"site {node_description(context.node_config)}: {type(error).__name__}: {error}"
        logger.error(reason)
        return Message(Error(code=SITE_FAILURE, reason=reason), reply_to=msg)
    outcome, served, imported = _run(task)
    if kind != QUERY:
        # The stack imported for the task itself is part of this process's imports.
        timings[IMPORT_SECONDS] = timings.get(IMPORT_SECONDS, 0.0) + imported
    if outcome.error_code:
        return Message(Error(code=outcome.error_code, reason=outcome.reason), reply_to=msg)
    if outcome.history is not None:
        store_history(context.state, outcome.history)
    content = RecordDict({SITE_RECORD: ConfigRecord(outcome.site or {})})
    if kind != QUERY:
        content[METRICS] = MetricRecord({**outcome.metrics, **timings, **served})
    if kind == TRAIN:
        content[ARRAYS] = weights_record(received.reply(outcome.arrays), layout)
    return Message(content=content, reply_to=msg)


def _run(task: SiteTask) -> tuple[TaskOutcome, dict[str, float], float]:
    """(the task's outcome, how it was served: ``site-worker`` and ``handoff-seconds``, the
    seconds this process spent importing for it): by the site worker when the node config
    names one and it answers, otherwise here."""
    folder = task.node_config.get(NODE_SITE_WORKER)
    if folder:
        handed = _handed_to_worker(task, str(folder))
        if handed is not None:
            return handed
    # Imported only here: torch and the model stack are what a warm worker saves this process.
    began, cold = time.perf_counter(), "client.tasks" not in sys.modules
    from client.tasks import run_task

    imports = time.perf_counter() - began if cold else 0.0
    return run_task(task), dict(_HERE), imports


_HERE = {SITE_WORKER_ANSWERED: 0.0, HANDOFF_SECONDS: 0.0}


def _handed_to_worker(
    task: SiteTask, folder: str
) -> tuple[TaskOutcome, dict[str, float], float] | None:
    """The worker's answer to ``task`` as :func:`_run` returns it, or None when the
    ClientApp is to do the task itself (the warning says why)."""
    from client.worker import WorkerLostAfterChargeError, WorkerUnavailableError, submit

    began = time.perf_counter()
    try:
        reply = submit(folder, task.header(), task.arrays, _worker_timeout(task.node_config))
    except WorkerLostAfterChargeError as lost:
        return _not_trained_twice(task, str(lost)), dict(_HERE), 0.0
    except WorkerUnavailableError as error:
        logger.warning("%s; doing the task here", error)
        return None
    try:
        outcome = TaskOutcome.from_header(reply.header, reply.arrays)
        work = float(reply.header.get("seconds", 0.0))
    except (ValueError, TypeError) as error:
        problem = f"site worker in {folder} sent an outcome that is not one: {error}"
        if reply.ledger_charged:
            return _not_trained_twice(task, problem), dict(_HERE), 0.0
        logger.warning("%s; doing the task here", problem)
        return None
    handoff = max(0.0, time.perf_counter() - began - work)
    return outcome, {SITE_WORKER_ANSWERED: 1.0, HANDOFF_SECONDS: handoff}, 0.0


def _not_trained_twice(task: SiteTask, problem: str) -> TaskOutcome:
    """The error reply of a round whose worker may have charged the site's privacy ledger
    before it was lost: training it here too would charge one update twice."""
    reason = (
        f"site {node_description(task.node_config)}: {problem}; the worker was let charge the "
        "site's privacy ledger for this round, so the round is not trained again here "
        "(the charge stands, the round goes on without this site)"
    )
    logger.warning(reason)
    return TaskOutcome(error_code=SITE_FAILURE, reason=reason)


def _worker_timeout(node_config: dict[str, Any]) -> float:
    """Seconds of silence the ClientApp allows its worker: node config
    ``site-worker-timeout``, or the default when it is missing or not a positive number."""
    from client.worker import DEFAULT_TIMEOUT

    value = node_config.get(NODE_SITE_WORKER_TIMEOUT)
    if value is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not (math.isfinite(seconds) and seconds > 0):
        logger.warning(
            "node config %s=%r is not a positive number of seconds; using %g",
            NODE_SITE_WORKER_TIMEOUT,
            value,
            DEFAULT_TIMEOUT,
        )
        return DEFAULT_TIMEOUT
    return seconds


client.startup.CLOCK.imported()  # the module's imports are done: what follows is the site's
