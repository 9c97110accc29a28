"""Lighter weight transport: half-precision arrays, updates as deltas, a frozen part sent once.

``federation.transport.precision`` (``float32`` | ``bfloat16`` | ``float16``) and
``federation.transport.trainable_only`` change what a round's train and evaluate messages
carry; the server keeps the float32 *master* weights and never rounds them:

- Down: the master's float32 arrays rounded to the precision (bfloat16 travels as its 16 bits
  in an int16 array: numpy has no bfloat16). With ``trainable_only`` the request's ``arrays``
  hold only the parameters ``train.trainable`` trains; the frozen rest travels once per node
  and run, in the request's ``frozen`` record, which the site keeps in its ``context.state``
  and later finds again by the digest the request names.
- Up: in half precision, the site's *update* (trained weights minus the rounded weights it
  received), rounded; in float32, its trained weights; in both, the arrays of the request's
  ``arrays`` record and nothing else. The server adds a half-precision update to the float32
  master it sent: the rounding of the way down never accumulates, and the rounding of an
  update is relative to the update, not to the weight.

Non-float arrays (integer buffers) travel as they are. Secure aggregation (SecAgg+) quantises
and masks float32 arrays itself and refuses these options (server/settings.py).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from typing import Any

import numpy as np

from federation.schema import TransportConfig

TRANSPORT_RECORD = "transport"  # ConfigRecord of a request: precision and frozen digest
FROZEN_RECORD = "frozen"  # ArrayRecord of a request: the frozen arrays, when sent
PRECISION_KEY = "precision"
FROZEN_DIGEST_KEY = "frozen-digest"
PRECISIONS = ("float32", "bfloat16", "float16")
# What an encoded float32 array travels as.
_WIRE_DTYPES = {"float32": np.dtype(np.float32), "bfloat16": np.dtype(np.int16),
                "float16": np.dtype(np.float16)}  # fmt: skip


class TransportError(ValueError):
    """Arrays that do not decode: the message says which and why."""


@dataclasses.dataclass(frozen=True)
class TransportSettings:
    """``federation.transport``.

    Attributes:
        precision: what float weights travel as (``float32``: as they are).
        trainable_only: send only the trained parameters each round (the frozen rest once).
    """

    precision: str = TransportConfig.precision
    trainable_only: bool = TransportConfig.trainable_only

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"federation.transport.precision must be one of {', '.join(PRECISIONS)}, "
                f"got {self.precision!r}"
            )

    @property
    def active(self) -> bool:
        """Whether messages differ from plain float32 weights."""
        return self.precision != "float32" or self.trainable_only

    @property
    def half(self) -> bool:
        return self.precision != "float32"


def encode(array: np.ndarray, precision: str) -> np.ndarray:
    """A float32 array as it travels in ``precision`` (round to nearest even); any other
    array as it is."""
    array = np.asarray(array)
    if array.dtype != np.float32 or precision == "float32":
        return array
    import torch  # only for half precision: a site's ClientApp imports no torch for nothing

    tensor = torch.from_numpy(np.asarray(array, order="C"))
    if precision == "bfloat16":
        return tensor.to(torch.bfloat16).view(torch.int16).numpy()
    return tensor.to(torch.float16).numpy()


def decode(array: np.ndarray, precision: str, dtype: np.dtype) -> np.ndarray:
    """What :func:`encode` made of an array of ``dtype``, back as ``dtype`` (float32 values
    widened exactly from the half-precision ones).

    Raises:
        TransportError: the array is not what ``dtype`` travels as.
    """
    array = np.asarray(array)
    wire = wire_dtype(precision) if dtype == np.float32 else np.dtype(dtype)
    if array.dtype != wire:
        raise TransportError(f"a {dtype} array travels as {wire}, got {array.dtype}")
    if dtype != np.float32 or precision == "float32":
        return array
    import torch

    tensor = torch.from_numpy(np.asarray(array, order="C"))
    if precision == "bfloat16":
        return tensor.view(torch.bfloat16).float().numpy()
    return tensor.float().numpy()


def wire_dtype(precision: str) -> np.dtype:
    """What a float32 array travels as in ``precision``."""
    return _WIRE_DTYPES[precision]


def encode_arrays(arrays: Mapping[str, np.ndarray], precision: str) -> dict[str, np.ndarray]:
    """Every array encoded (:func:`encode`).

    Raises:
        TransportError: a non-float32 array of the dtype float32 arrays travel as (the
            receiver could not tell them apart).
    """
    for name, array in arrays.items():
        dtype = np.asarray(array).dtype
        if dtype != np.float32 and dtype == wire_dtype(precision):
            raise TransportError(f"{name} is {dtype}, what float32 travels as in {precision}")
    return {name: encode(array, precision) for name, array in arrays.items()}


def digest(arrays: Mapping[str, np.ndarray]) -> str:
    """A short fingerprint of named arrays (names, dtypes, shapes and bytes, in order)."""
    hasher = hashlib.sha256()
    for name, array in arrays.items():
        array = np.asarray(array, order="C")
        hasher.update(f"{name}:{array.dtype.str}:{array.shape};".encode())
        hasher.update(array.tobytes())
    return hasher.hexdigest()[:32]


def request_config(settings: TransportSettings, frozen_digest: str) -> dict[str, Any]:
    """The request's ``transport`` ConfigRecord values."""
    return {PRECISION_KEY: settings.precision, FROZEN_DIGEST_KEY: frozen_digest}


def read_precision(config: Mapping[str, Any]) -> str:
    """The precision a request's ``transport`` record names.

    Raises:
        TransportError: not one of :data:`PRECISIONS`.
    """
    precision = config.get(PRECISION_KEY)
    if precision not in PRECISIONS:
        raise TransportError(
            f"the request's transport precision {str(precision)[:20]!r} is unknown"
        )
    return str(precision)


def reply_arrays(
    trained: Mapping[str, np.ndarray],
    received: Mapping[str, np.ndarray],
    precision: str,
) -> dict[str, np.ndarray]:
    """What a site sends back for the request's arrays ``received`` (decoded): in half
    precision the encoded update ``trained - received`` of each float32 array, else the
    trained arrays themselves."""
    reply = {}
    for name, before in received.items():
        after = np.asarray(trained[name])
        if precision != "float32" and after.dtype == np.float32:
            reply[name] = encode(after - before, precision)
        else:
            reply[name] = after
    return reply


def apply_reply(
    reply: Mapping[str, np.ndarray],
    master: Mapping[str, np.ndarray],
    sent: list[str],
    precision: str,
) -> dict[str, np.ndarray]:
    """The full weights a site's reply stands for: the master (what the server holds, float32)
    plus each decoded update in half precision, the replied arrays in float32; arrays not
    sent stay the master's.

    Raises:
        TransportError: the reply's names are not those sent, or an array is not what its
            master travels as or has another shape.
    """
    if set(reply) != set(sent):
        missing, extra = sorted(set(sent) - set(reply)), sorted(set(reply) - set(sent))
        raise TransportError(
            f"the reply's arrays are not those sent (missing {missing[:3]}, extra {extra[:3]})"
        )
    weights = {name: np.asarray(array) for name, array in master.items()}
    for name in sent:
        base = weights[name]
        value = decode(reply[name], precision, base.dtype)
        if value.shape != base.shape:
            raise TransportError(f"{name}: shape {value.shape}, sent {base.shape}")
        if precision != "float32" and base.dtype == np.float32:
            value = base + value
        weights[name] = value
    return weights
