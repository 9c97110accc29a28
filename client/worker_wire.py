"""The site worker's wire format: one request and one reply per connection, each a frame.

A frame is ``b"CMFL-WORKER-1"``, the header's length (4 bytes, big-endian), the header (UTF-8
JSON object), the payload's length (8 bytes) and the payload: the raw bytes of the header's
``arrays`` (``[{"name", "dtype", "shape"}, ...]``), one after the other in C order. Nothing
is unpickled and no code is named: the dtypes come from a fixed list and every size is
checked against the lengths before a byte is read into an array, so a malformed or hostile
frame is an error naming what is wrong, never an object built from it.

Every read and write takes a deadline (``time.monotonic()`` seconds) for the whole frame, not
per ``recv``: a peer that sends nothing, or one byte now and then, or stops reading, costs at
most the deadline (:class:`WireTimeoutError`). The limits are the reader's: who has not yet shown
the worker's token gets a frame of a few hundred bytes and no payload
(client/worker.py), so a declared size is refused before anything is reserved for it.
"""

from __future__ import annotations

import json
import math
import socket
import struct
import time
from typing import Any

import numpy as np

MAGIC = b"CMFL-WORKER-1"
MAX_HEADER_BYTES = 16 * 1024 * 1024  # configs, metrics and the DP history: far below this
MAX_PAYLOAD_BYTES = 8 * 1024**3  # the paper-size model is 0.26 GB
# What a state dict holds; nothing that numpy would have to unpickle.
DTYPES = frozenset(
    {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}
)
_CHUNK = 4 * 1024 * 1024


class WireError(RuntimeError):
    """A frame that is not what the protocol says; the message says what is wrong."""


class WireTimeoutError(WireError):
    """The deadline passed before the frame was complete (a silent or stopped peer)."""


def send_frame(
    connection: socket.socket,
    header: dict[str, Any],
    arrays: dict[str, np.ndarray] | None = None,
    deadline: float | None = None,
) -> None:
    """Send ``header`` and ``arrays`` (name -> array) as one frame, all of it before
    ``deadline`` (``time.monotonic()``; None: no limit).

    Raises:
        WireError: an array the wire cannot carry, or a header over the limit.
        WireTimeoutError: the peer did not take the frame before the deadline.
    """
    arrays = arrays or {}
    described = []
    for name, array in arrays.items():
        if array.dtype.name not in DTYPES:
            raise WireError(f"array {name!r} has dtype {array.dtype.name}, not one of the wire's")
        described.append({"name": name, "dtype": array.dtype.name, "shape": list(array.shape)})
    encoded = json.dumps({**header, "arrays": described}, allow_nan=True).encode()
    if len(encoded) > MAX_HEADER_BYTES:
        raise WireError(f"header of {len(encoded)} bytes exceeds {MAX_HEADER_BYTES}")
    buffers = [np.ascontiguousarray(array) for array in arrays.values()]
    payload_bytes = sum(buffer.nbytes for buffer in buffers)
    _send(connection, MAGIC + struct.pack(">I", len(encoded)) + encoded, deadline)
    _send(connection, struct.pack(">Q", payload_bytes), deadline)
    for buffer in buffers:
        _send(connection, memoryview(buffer.reshape(-1).view(np.uint8)), deadline)


def receive_frame(
    connection: socket.socket,
    max_header_bytes: int = MAX_HEADER_BYTES,
    max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    deadline: float | None = None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(the header without ``arrays``, the arrays by name) of the next frame, complete
    before ``deadline`` (``time.monotonic()``; None: no limit). Both sizes are checked
    against the limits before a byte of what they declare is read or reserved.

    Raises:
        WireError: a wrong magic, an oversized or malformed header, arrays whose sizes do
            not add up to the payload, or a connection closed mid-frame.
        WireTimeoutError: the frame was not complete before the deadline.
    """
    magic = _read_exactly(connection, len(MAGIC), deadline)
    if magic != MAGIC:
        raise WireError(f"not a site-worker frame (starts with {magic[:16]!r})")
    (header_bytes,) = struct.unpack(">I", _read_exactly(connection, 4, deadline))
    if header_bytes > max_header_bytes:
        raise WireError(f"header of {header_bytes} bytes exceeds {max_header_bytes}")
    try:
        header = json.loads(_read_exactly(connection, header_bytes, deadline))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WireError(f"header is not JSON: {error}") from error
    if not isinstance(header, dict):
        raise WireError(f"header is a JSON {type(header).__name__}, not an object")
    layout = _layout(header.pop("arrays", []))
    (payload_bytes,) = struct.unpack(">Q", _read_exactly(connection, 8, deadline))
    expected = sum(nbytes for _, _, _, nbytes in layout)
    if payload_bytes != expected or payload_bytes > max_payload_bytes:
        raise WireError(
            f"payload of {payload_bytes} bytes; its arrays need {expected} "
            f"(at most {max_payload_bytes})"
        )
    payload = bytearray(payload_bytes)
    view = memoryview(payload)
    received = 0
    while received < payload_bytes:
        where = f"at payload byte {received} of {payload_bytes}"
        _wait_at_most(connection, deadline, where)
        try:
            count = connection.recv_into(view[received:], min(_CHUNK, payload_bytes - received))
        except TimeoutError as error:
            raise _timed_out(where) from error
        if count == 0:
            raise WireError(f"connection closed after {received} of {payload_bytes} payload bytes")
        received += count
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for name, dtype, shape, nbytes in layout:
        arrays[name] = np.frombuffer(payload, dtype=dtype, count=math.prod(shape), offset=offset)
        arrays[name] = arrays[name].reshape(shape)
        offset += nbytes
    return header, arrays


def _layout(described: Any) -> list[tuple[str, np.dtype, tuple[int, ...], int]]:
    """(name, dtype, shape, bytes) per array of a header, checked."""
    if not isinstance(described, list):
        raise WireError("header 'arrays' is not a list")
    layout = []
    names = set()
    for entry in described:
        if not isinstance(entry, dict) or set(entry) != {"name", "dtype", "shape"}:
            raise WireError(f"array entry {str(entry)[:80]!r} is not {{name, dtype, shape}}")
        name, dtype, shape = entry["name"], entry["dtype"], entry["shape"]
        if not isinstance(name, str) or name in names:
            raise WireError(f"array name {str(name)[:80]!r} is not a new string")
        if dtype not in DTYPES:
            raise WireError(f"array {name!r}: dtype {str(dtype)[:40]!r} is not one of the wire's")
        if not isinstance(shape, list) or not all(
            isinstance(size, int) and not isinstance(size, bool) and 0 <= size < 2**40
            for size in shape
        ):
            raise WireError(f"array {name!r}: shape {str(shape)[:80]!r} is not a list of sizes")
        names.add(name)
        element = np.dtype(dtype)
        layout.append((name, element, tuple(shape), math.prod(shape) * element.itemsize))
    return layout


def _read_exactly(connection: socket.socket, count: int, deadline: float | None) -> bytes:
    chunks = []
    remaining = count
    while remaining:
        where = f"at byte {count - remaining} of {count}"
        _wait_at_most(connection, deadline, where)
        try:
            chunk = connection.recv(min(remaining, _CHUNK))
        except TimeoutError as error:
            raise _timed_out(where) from error
        if not chunk:
            raise WireError(f"connection closed {count - remaining} bytes into {count}")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send(connection: socket.socket, data: bytes | memoryview, deadline: float | None) -> None:
    # sendall's timeout bounds the whole call (Python 3.5+), so one deadline covers the frame.
    where = "sending (the peer stopped reading)"
    _wait_at_most(connection, deadline, where)
    try:
        connection.sendall(data)
    except TimeoutError as error:
        raise _timed_out(where) from error


def _wait_at_most(connection: socket.socket, deadline: float | None, where: str) -> None:
    """Let the next socket call wait no later than ``deadline``."""
    if deadline is None:
        return
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _timed_out(where)
    connection.settimeout(remaining)


def _timed_out(where: str) -> WireTimeoutError:
    return WireTimeoutError(f"timed out {where}")
