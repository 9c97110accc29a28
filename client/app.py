"""The ClientApp: Flower messages in, a site's local training and evaluation, numbers out.

Only translation between Flower records and :mod:`client.local` happens here; a site that
cannot train replies with an error naming itself and the problem, and the round goes on.

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
import time
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

# First of the project's imports: its clock splits the process's start from the imports below.
import client.startup
from cardiomm.data.errors import DataFileError
from cardiomm.privacy.settings import PrivacySettings
from cardiomm.train.loop import TrainingStepError
from client.central_dp import central_dp_clipping_mod
from client.local import (
    RoundInstructions,
    evaluate_site,
    score_files,
    skipped_files_json,
    train_site,
)
from client.secure_aggregation import secure_aggregation_mod
from client.site import SiteData, SiteDataError, resolve_site
from client.site_config import compose_site_config
from federation.protocol import (
    ARRAYS,
    CONFIG,
    CROSS_SITE_DECLINED,
    CROSS_SITE_MODEL,
    LEARNING_RATE,
    LOCAL_STEPS,
    METRICS,
    PRIVACY_BUDGET_SPENT,
    PROXIMAL_MU,
    ROLE_EVALUATE,
    SEED,
    SERVER_ROUND,
    SITE_FAILURE,
    SITE_RECORD,
    SiteRecord,
)

logger = logging.getLogger(__name__)

# Secure aggregation (privacy=secagg): the mod keeps a secure round's weights at the site and
# answers Flower's SecAgg+ stages; central DP with client-side clipping clips the update when
# the server sends a clipping norm. Every other message passes through both unchanged.
app = ClientApp(mods=[secure_aggregation_mod, central_dp_clipping_mod])


@app.train()
def train(msg: Message, context: Context) -> Message:
    """Local training on the site's train split; replies weights and metrics."""
    site: SiteData | None = None
    timings = client.startup.CLOCK.take()
    try:
        config, site = _site_of(context, timings)
        privacy = PrivacySettings.from_config(config).dp_sgd
        if site.role == ROLE_EVALUATE:
            raise SiteDataError(
                f"site {site.site_id} is an evaluation-only site (role=evaluate): it does not train"
            )
        received = msg.content[CONFIG]
        instructions = RoundInstructions(
            server_round=int(received[SERVER_ROUND]),
            local_steps=int(received[LOCAL_STEPS]),
            learning_rate=float(received[LEARNING_RATE]),
            proximal_mu=float(received.get(PROXIMAL_MU, 0.0)),
            seed=int(received.get(SEED, config.seed)),
        )
        global_state = msg.content[ARRAYS].to_torch_state_dict()
        if privacy.enabled:
            return _train_privately(msg, context, site, global_state, instructions, config, timings)
        state, metrics, skipped = train_site(site, global_state, instructions, config)
    except Exception as error:  # a site's failure is its reply, never a crashed ClientApp
        return _failure(msg, site, context, error)
    return _train_reply(msg, site, state, {**metrics, **timings}, skipped)


def _train_privately(
    msg: Message,
    context: Context,
    site: SiteData,
    global_state: dict[str, Any],
    instructions: RoundInstructions,
    config: Any,
    timings: dict[str, float],
) -> Message:
    """A DP-SGD round: the accountant from ``context.state``, charged, and stored back."""
    # Imported here: Opacus takes a second to load, and only DP-SGD runs need it.
    from cardiomm.privacy.accountant import PrivacyBudgetSpentError
    from client.privacy_state import load_accountant, store_accountant

    accountant = load_accountant(context.state)
    try:
        state, metrics, skipped = train_site(site, global_state, instructions, config, accountant)
    except PrivacyBudgetSpentError as spent:
        reason = f"site {site.site_id}: {spent}"
        logger.warning(reason)
        return Message(Error(code=PRIVACY_BUDGET_SPENT, reason=reason), reply_to=msg)
    # Stored only once the round succeeded: a failed round releases nothing to the server.
    store_accountant(context.state, accountant)
    return _train_reply(msg, site, state, {**metrics, **timings}, skipped)


def _train_reply(
    msg: Message,
    site: SiteData,
    state: dict[str, Any],
    metrics: dict[str, float],
    skipped: list[dict[str, str]],
) -> Message:
    content = RecordDict(
        {
            ARRAYS: ArrayRecord(state),
            METRICS: MetricRecord(metrics),
            SITE_RECORD: _site_record(site, skipped_files_json(skipped)),
        }
    )
    return Message(content=content, reply_to=msg)


@app.evaluate()
def evaluate(msg: Message, context: Context) -> Message:
    """The global model's scores on the site's validation split (a training site) or on all
    of its files, per group (an evaluation-only site); for a model of the cross-site matrix
    (``cross-site-model`` in the request), its scores on the site's test split (all files of
    an evaluation-only site), unless the site's own file declines."""
    site: SiteData | None = None
    timings = client.startup.CLOCK.take()
    try:
        config, site = _site_of(context, timings)
        global_state = msg.content[ARRAYS].to_torch_state_dict()
        cross_site_model = msg.content.config_records.get(CONFIG, {}).get(CROSS_SITE_MODEL)
        if cross_site_model is not None:
            if not bool(config.sharing.cross_site_evaluation):
                return _declined(msg, site)
            metrics, skipped = score_files(site, site.scored_files, global_state, config)
        elif site.role == ROLE_EVALUATE:
            metrics, skipped = score_files(site, site.evaluation_files, global_state, config)
        else:
            metrics, skipped = evaluate_site(site, global_state, config), []
    except Exception as error:  # a site's failure is its reply, never a crashed ClientApp
        return _failure(msg, site, context, error)
    content = RecordDict(
        {
            METRICS: MetricRecord({**metrics, **timings}),
            SITE_RECORD: _site_record(site, skipped_files_json(skipped)),
        }
    )
    return Message(content=content, reply_to=msg)


def _declined(msg: Message, site: SiteData) -> Message:
    reason = (
        f"site {site.site_id} does not score other models "
        "(sharing.cross_site_evaluation is false in its site file)"
    )
    logger.info(reason)
    return Message(Error(code=CROSS_SITE_DECLINED, reason=reason), reply_to=msg)


@app.query()
def roll_call(msg: Message, context: Context) -> Message:
    """Who the site is and what it does (its role): the site record alone, no data read
    beyond the index."""
    site: SiteData | None = None
    try:
        _, site = _site_of(context, {})
    except Exception as error:  # a site's failure is its reply, never a crashed ClientApp
        return _failure(msg, site, context, error)
    return Message(content=RecordDict({SITE_RECORD: _site_record(site, "[]")}), reply_to=msg)


def _site_of(context: Context, timings: dict[str, float]) -> tuple[Any, SiteData]:
    """(the site's composed config, its data): the coordinator's run config under the site's
    own file, and the site its node config names; their seconds into ``timings``."""
    began = time.perf_counter()
    config = compose_site_config(context.run_config, context.node_config)
    site = resolve_site(dict(context.node_config), config)
    timings["setup-seconds"] = time.perf_counter() - began
    return config, site


def _site_record(site: SiteData, bad_files_json: str) -> ConfigRecord:
    record = SiteRecord(
        site.site_id, site.vendor, ", ".join(site.scanners), bad_files_json, site.role
    )
    return record.to_record()


# Failures whose message says all (a file, a setting, the data): no traceback needed.
_EXPLAINED = (
    SiteDataError,
    DataFileError,
    FileNotFoundError,
    ValueError,
    KeyError,
    TrainingStepError,
)


def _failure(msg: Message, site: SiteData | None, context: Context, error: Exception) -> Message:
    """The error reply: the site, the failure's type unless self-explanatory, its message."""
    who = site.site_id if site is not None else _node_description(context.node_config)
    # Messages that already name the site (the library's "site Center001: ...") keep theirs.
    prefix = "" if str(error).startswith(f"site {who}") else f"site {who}: "
    if isinstance(error, _EXPLAINED):
        reason = f"{prefix}{error}"
        logger.error(reason)
    else:
        reason = f"site {who}: {type(error).__name__}: {error}"
        logger.exception(reason)  # the traceback stays in the site's own log
    return Message(Error(code=SITE_FAILURE, reason=reason), reply_to=msg)


def _node_description(node_config: Any) -> str:
    return ", ".join(f"{key}={value}" for key, value in dict(node_config).items()) or "unknown"


client.startup.CLOCK.imported()  # the module's imports are done: what follows is the site's
