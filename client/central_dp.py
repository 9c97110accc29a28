"""Client-side clipping for central DP (``privacy.central_dp.side=client``).

Flower's ``DifferentialPrivacyClientSide*Clipping`` wrappers send a clipping norm with every
train message and expect the site to clip its update to it. Flower's clipping mods answer an
error to a train message without that norm, so the ClientApp cannot carry them always; this
mod hands a message to Flower's ``adaptiveclipping_mod`` only when the norm is there. That mod
clips exactly like ``fixedclipping_mod`` and also reports whether it clipped (the bit the
adaptive wrapper needs; the fixed wrapper ignores it).
"""

from __future__ import annotations

from flwr.app import Context, Message, MessageType
from flwr.clientapp.mod import adaptiveclipping_mod
from flwr.clientapp.typing import ClientAppCallable
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM


def central_dp_clipping_mod(
    msg: Message, context: Context, call_next: ClientAppCallable
) -> Message:
    """Clip the site's update when the server asked for client-side clipping."""
    if msg.metadata.message_type != MessageType.TRAIN or not _asks_for_clipping(msg):
        return call_next(msg, context)
    return adaptiveclipping_mod(msg, context, call_next)


def _asks_for_clipping(msg: Message) -> bool:
    return any(KEY_CLIPPING_NORM in record for record in msg.content.config_records.values())
