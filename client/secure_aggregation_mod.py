"""A site's side of secure aggregation (Flower SecAgg+): the site's weights never leave it.

A round under ``privacy.secure_aggregation.enabled`` (docs/federation-protocol.md) reaches the
ClientApp as two kinds of ``train`` messages, both handled by :func:`secure_aggregation_mod`:

1. Train and announce: an ordinary train request that also carries the ``secure-aggregation``
   ConfigRecord. The ClientApp's own train handler runs (site resolution, local training,
   metrics, errors: nothing differs from a plain round); this mod then takes the weights out
   of its reply, keeps the update (trained minus received, float64) in the node's
   ``context.state`` and replies only the metrics and the site record. The server learns the
   example count and vendor it needs to compute the aggregation weights, nothing more.
2. Flower's SecAgg+ stages (legacy ``train`` messages carrying ``secaggplus_configs``),
   handled by Flower's own ``secaggplus_mod``: setup (key pairs), share keys, collect masked
   vectors, unmask. At the collect stage this module hands the mod the held update together
   with the integer weight the server sent; the mod scales the update by
   ``weight / max_weight``, clips it to the clipping range, quantises it (stochastic
   rounding), adds the pairwise and private masks and sends the masked integer vector only.

Every other message goes to the ClientApp unchanged, with one guard: a site whose run config
turns secure aggregation on refuses an ordinary train request, so a server path that ignores
the setting cannot collect plain weights.
"""

from __future__ import annotations

import hashlib
import logging

import flwr.compat.common.recorddict_compat as compat
import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, RecordDict
from flwr.app.message_type import MessageType
from flwr.client.mod import secaggplus_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.common import Code, FitRes, Status, ndarrays_to_parameters
from flwr.common.secure_aggregation.secaggplus_constants import (
    RECORD_KEY_CONFIGS,
    Key,
    Stage,
)

from cardiomm.privacy import PrivacySettings
from client.site_config import compose_site_config
from federation.protocol import (
    ARRAYS,
    CLIPPED_METRIC,
    CLIPPING_KEY,
    CONFIG,
    SECURE_RECORD,
    SEED,
    SERVER_ROUND,
    SITE_FAILURE,
    SITE_ID,
    WEIGHT_KEY,
    WEIGHT_SCALE_KEY,
    SiteRecord,
)

logger = logging.getLogger(__name__)


# Where the node keeps its update between the two kinds of message (never sent).
HELD_UPDATE = "secure-aggregation.update"
HELD_ROUND = "secure-aggregation.held"


def secure_aggregation_mod(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Route train messages of a secure round; everything else passes through unchanged."""
    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, context)
    records = msg.content.config_records
    if RECORD_KEY_CONFIGS in records:
        return _secaggplus_stage(msg, context)
    if SECURE_RECORD in records:
        return _train_and_hold(msg, context, call_next)
    if _secure_aggregation_required(context):
        reason = (
            "privacy.secure_aggregation.enabled is true in this run's config, but the server "
            "asked for the site's weights in the clear; refusing"
        )
        logger.error(reason)
        return Message(Error(code=SITE_FAILURE, reason=reason), reply_to=msg)
    return call_next(msg, context)


def _train_and_hold(msg: Message, context: Context, call_next: ClientAppCallable) -> Message:
    """Train through the ClientApp, keep the update here, reply metrics and site only."""
    received = msg.content[ARRAYS]
    reply = call_next(msg, context)
    if reply.has_error():
        return reply
    content = reply.content
    who = SiteRecord.of(content, int(context.node_id)).site_id
    trained = content.array_records.get(ARRAYS)
    try:
        update = _update(received, trained)
    except ValueError as error:
        reason = f"site {who}: {error}; left out of the secure sum"
        logger.error(reason)
        return Message(Error(code=SITE_FAILURE, reason=reason), reply_to=msg)
    context.state[HELD_UPDATE] = update
    context.state[HELD_ROUND] = ConfigRecord(
        {SERVER_ROUND: int(msg.content[CONFIG][SERVER_ROUND]), SITE_ID: who}
    )
    announced = RecordDict(
        {key: record for key, record in content.items() if not isinstance(record, ArrayRecord)}
    )
    return Message(content=announced, reply_to=msg)


def _update(received: ArrayRecord, trained: ArrayRecord | None) -> ArrayRecord:
    """``trained - received`` per array in float64, in the order the server sent them."""
    if trained is None:
        raise ValueError("the ClientApp's reply holds no 'arrays'")
    if set(trained) != set(received):
        raise ValueError("the trained weights' keys differ from the global model's")
    update = {}
    for key in received:
        before = received[key].numpy()
        after = trained[key].numpy()
        if after.shape != before.shape:
            raise ValueError(f"'{key}' has shape {after.shape}, expected {before.shape}")
        difference = np.asarray(after.astype(np.float64) - before.astype(np.float64))
        if not np.isfinite(difference).all():
            raise ValueError(f"its update of '{key}' holds NaN or infinite values")
        update[key] = Array(difference)
    return ArrayRecord(update)


def _secaggplus_stage(msg: Message, context: Context) -> Message:
    """One SecAgg+ stage through Flower's mod; the collect stage masks the held update.

    Stochastic rounding in the quantisation draws from NumPy's global generator: at the
    collect stage it is seeded from (seed, round, site) and put back afterwards, so runs
    and resumed runs are reproducible. The draws hide nothing: the masks do.
    """
    stage = msg.content.config_records[RECORD_KEY_CONFIGS].get(Key.STAGE)
    if stage != Stage.COLLECT_MASKED_VECTORS:
        return secaggplus_mod(msg, context, _held_update_reply)
    saved = np.random.get_state()
    np.random.seed(_rounding_seed(msg, context))
    try:
        return secaggplus_mod(msg, context, _held_update_reply)
    finally:
        np.random.set_state(saved)


def _held_update_reply(msg: Message, context: Context) -> Message:
    """The legacy fit reply SecAgg+ masks: the held update, weighted by the server's weight.

    The weight travels as FitRes ``num_examples`` (an integer; ``secaggplus_mod`` multiplies
    the update by ``num_examples / max_weight`` before quantising it).
    """
    config = compat.recorddict_to_fitins(msg.content, keep_input=True).config
    server_round = int(config[SERVER_ROUND])
    held = context.state.config_records.get(HELD_ROUND)
    if held is None or int(held[SERVER_ROUND]) != server_round or HELD_UPDATE not in context.state:
        # Raising makes this site a SecAgg+ dropout: the others' sum is still unmasked.
        raise RuntimeError(
            f"no update held for round {server_round} (the site did not train this round, "
            "or its process restarted between training and the secure sum)"
        )
    update = context.state.array_records[HELD_UPDATE]
    # At least 1-D: Flower 1.42's unmasking shifts and rescales each array in place, which
    # misses 0-d arrays (a scalar weight would come back off by clipping_range x (sites-1)).
    arrays = [np.atleast_1d(update[key].numpy()) for key in update]
    weight = int(config[WEIGHT_KEY])
    scale = weight / float(config[WEIGHT_SCALE_KEY])
    clipping = float(config[CLIPPING_KEY])
    clipped = sum(int(np.count_nonzero(np.abs(array) * scale > clipping)) for array in arrays)
    if clipped:
        logger.warning(
            "site %s: %d weighted update values exceed the secure-aggregation clipping range "
            "%g and are clipped",
            held[SITE_ID],
            clipped,
            clipping,
        )
    del context.state[HELD_UPDATE]
    del context.state[HELD_ROUND]
    fitres = FitRes(
        status=Status(code=Code.OK, message=""),
        parameters=ndarrays_to_parameters(arrays),
        num_examples=weight,
        metrics={CLIPPED_METRIC: clipped, SITE_ID: str(held[SITE_ID])},
    )
    return Message(content=compat.fitres_to_recorddict(fitres, keep_input=False), reply_to=msg)


def _rounding_seed(msg: Message, context: Context) -> int:
    held = context.state.config_records.get(HELD_ROUND)
    site = str(held[SITE_ID]) if held is not None else str(context.node_id)
    try:
        config = compat.recorddict_to_fitins(msg.content, keep_input=True).config
        seed, server_round = int(config.get(SEED, 0)), int(config.get(SERVER_ROUND, 0))
    except KeyError:
        seed, server_round = 0, 0
    text = f"cardiomm-fl secagg rounding:{seed}:{server_round}:{site}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:4], "little")


def _secure_aggregation_required(context: Context) -> bool:
    """Whether the run's config (the same overrides the server composes) turns SecAgg+ on."""
    try:
        config = compose_site_config(context.run_config, context.node_config)
    except Exception:  # a config that does not compose: the ClientApp reports it itself
        return False
    return PrivacySettings.read(config).secure_aggregation.enabled
