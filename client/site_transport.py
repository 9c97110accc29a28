"""The site's side of the lighter transport (federation/transport.py): decode a request's
weights (half precision, the frozen part from the request or from the site's own copy in
``context.state``) and encode the reply (the update in half precision)."""

from __future__ import annotations

import dataclasses

import numpy as np
from flwr.app import ConfigRecord, RecordDict

from federation.transport import (
    FROZEN_DIGEST_KEY,
    FROZEN_RECORD,
    TRANSPORT_RECORD,
    TransportError,
    decode,
    read_precision,
    reply_arrays,
    wire_dtype,
)

# The site's copy of the frozen part in context.state, and the digest it came with.
FROZEN_STATE = "transport-frozen"
FROZEN_DIGEST_STATE = "transport-frozen-digest"


@dataclasses.dataclass(frozen=True)
class ReceivedWeights:
    """A request's weights, decoded.

    Attributes:
        weights: every array the task needs, as float32 (the frozen part included).
        sent: the request's own arrays, decoded (what the reply answers).
        precision: the request's transport precision (None: plain float32 weights).
    """

    weights: dict[str, np.ndarray]
    sent: dict[str, np.ndarray]
    precision: str | None = None

    def reply(self, trained: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The reply's arrays for the ``trained`` weights."""
        if self.precision is None:
            return trained
        return reply_arrays(trained, self.sent, self.precision)


def receive(
    content: RecordDict, arrays: dict[str, np.ndarray], state: RecordDict
) -> ReceivedWeights:
    """Decode ``arrays`` (the request's, unpacked) as the request's transport record says,
    keeping a frozen part that comes with it in ``state``.

    Raises:
        TransportError: unknown precision, arrays that do not decode, or a frozen part the
            request does not carry and the site has no copy of (the server sends it again
            after this error).
    """
    config = content.config_records.get(TRANSPORT_RECORD)
    if config is None:
        return ReceivedWeights(arrays, arrays)
    precision = read_precision(config)
    sent = _decoded(arrays, precision)
    wanted = str(config.get(FROZEN_DIGEST_KEY, "") or "")
    frozen: dict[str, np.ndarray] = {}
    if FROZEN_RECORD in content.array_records:
        state[FROZEN_STATE] = content.array_records[FROZEN_RECORD]
        state[FROZEN_DIGEST_STATE] = ConfigRecord({FROZEN_DIGEST_KEY: wanted})
    if wanted:
        held = state.config_records.get(FROZEN_DIGEST_STATE, {}).get(FROZEN_DIGEST_KEY)
        if held != wanted or FROZEN_STATE not in state.array_records:
            raise TransportError(
                f"the request names frozen weights {wanted[:12]} this site does not hold "
                f"(it holds {str(held)[:12] or 'none'}); they come again with the next request"
            )
        frozen = _decoded(
            {k: v.numpy() for k, v in state.array_records[FROZEN_STATE].items()}, precision
        )
    overlap = sorted(set(frozen) & set(sent))
    if overlap:
        raise TransportError(f"arrays {overlap[:3]} come both frozen and sent")
    return ReceivedWeights({**frozen, **sent}, sent, precision)


def _decoded(arrays: dict[str, np.ndarray], precision: str) -> dict[str, np.ndarray]:
    """float32 arrays from what they travel as; other arrays (integer buffers) as they are."""
    wire = wire_dtype(precision)
    return {
        name: decode(array, precision, np.dtype(np.float32)) if array.dtype == wire else array
        for name, array in ((name, np.asarray(array)) for name, array in arrays.items())
    }
