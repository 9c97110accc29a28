"""Model weights travel as one array per dtype, not one per parameter tensor.

Flower 1.42 moves every array of an ArrayRecord as its own object, with its own request,
on every hop (ServerApp -> SuperLink -> SuperNode -> ClientApp and back): the small model's
346 tensors meant 346 requests per hop and message, which took most of a deployed round
(benchmarks/round_overhead.py). Packed, a message carries one array per dtype (``packed.
float32``) and a layout record (``array-layout``: the names, dtypes and shapes in order);
the values are the same bits, so aggregation, clipping norms and results do not change.

The server packs what it sends and unpacks each reply with the layout *it* sent, never one
a site sends back; a reply whose packed arrays do not fit that layout stays packed, and the
update screening refuses it for its unknown keys. A request without a layout record (the
secure-aggregation path) is answered unpacked.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from federation.protocol import ARRAYS

LAYOUT_RECORD = "array-layout"  # ConfigRecord of a request: {LAYOUT_KEY: JSON layout}
LAYOUT_KEY = "layout"
PACKED_PREFIX = "packed."

# (name, dtype, shape) of every array, in order.
Layout = list[tuple[str, str, tuple[int, ...]]]


class PackingError(ValueError):
    """Packed arrays and a layout that do not fit each other; the message says how."""


def layout_of(arrays: dict[str, np.ndarray]) -> Layout:
    return [(name, array.dtype.name, tuple(array.shape)) for name, array in arrays.items()]


def pack(arrays: dict[str, np.ndarray], layout: Layout | None = None) -> ArrayRecord:
    """One flat array per dtype (``packed.<dtype>``) of ``arrays``, in ``layout``'s order
    (default: theirs).

    Raises:
        PackingError: ``arrays`` are not the layout's names, dtypes and shapes.
    """
    layout = layout_of(arrays) if layout is None else layout
    if set(arrays) != {name for name, _, _ in layout}:
        raise PackingError("the arrays' names are not the layout's")
    pieces: dict[str, list[np.ndarray]] = {}
    for name, dtype, shape in layout:
        array = np.asarray(arrays[name])
        if array.dtype.name != dtype or tuple(array.shape) != tuple(shape):
            raise PackingError(
                f"{name}: {array.dtype.name} {tuple(array.shape)}, the layout says {dtype} {shape}"
            )
        pieces.setdefault(dtype, []).append(array.reshape(-1))
    packed = OrderedDict(
        (PACKED_PREFIX + dtype, Array.from_numpy_ndarray(np.concatenate(flat)))
        for dtype, flat in pieces.items()
    )
    return ArrayRecord(array_dict=packed)


def unpack(record: ArrayRecord, layout: Layout) -> dict[str, np.ndarray]:
    """The arrays ``pack`` packed, by name in layout order.

    Raises:
        PackingError: the record's packed arrays are missing, extra, of another dtype or
            size than the layout needs.
    """
    flats = {}
    needed: dict[str, int] = {}
    for _, dtype, shape in layout:
        needed[dtype] = needed.get(dtype, 0) + math.prod(shape)
    if set(record.keys()) != {PACKED_PREFIX + dtype for dtype in needed}:
        raise PackingError(
            f"packed arrays {sorted(record.keys())[:4]}, the layout needs "
            f"{sorted(PACKED_PREFIX + dtype for dtype in needed)}"
        )
    for dtype, size in needed.items():
        flat = record[PACKED_PREFIX + dtype].numpy()
        if flat.dtype.name != dtype or flat.ndim != 1 or flat.size != size:
            raise PackingError(
                f"{PACKED_PREFIX}{dtype} is {flat.dtype.name} of shape {flat.shape}, "
                f"the layout needs {size} values"
            )
        flats[dtype] = flat
    offsets = dict.fromkeys(needed, 0)
    arrays = {}
    for name, dtype, shape in layout:
        size = math.prod(shape)
        arrays[name] = flats[dtype][offsets[dtype] : offsets[dtype] + size].reshape(shape)
        offsets[dtype] += size
    return arrays


def layout_record(layout: Layout) -> ConfigRecord:
    return ConfigRecord({LAYOUT_KEY: json.dumps([[n, d, list(s)] for n, d, s in layout])})


def read_layout(record: Any) -> Layout:
    """The layout of a request's ``array-layout`` record.

    Raises:
        PackingError: not the JSON list of [name, dtype, shape] that :func:`layout_record`
            writes.
    """
    try:
        entries = json.loads(str(record[LAYOUT_KEY]))
        if not isinstance(entries, list):
            raise TypeError(f"a JSON {type(entries).__name__}, not a list")
        layout = [
            (str(name), str(dtype), tuple(int(size) for size in shape))
            for name, dtype, shape in entries
        ]
    except (KeyError, TypeError, ValueError) as error:
        raise PackingError(f"{LAYOUT_RECORD} record is malformed: {error}") from error
    if len({name for name, _, _ in layout}) != len(layout) or any(
        size < 0 for _, _, shape in layout for size in shape
    ):
        raise PackingError(f"{LAYOUT_RECORD} record repeats a name or has a negative size")
    for _, dtype, _ in layout:
        try:
            numeric = np.dtype(dtype).kind in "fiub"  # nothing numpy would have to unpickle
        except TypeError:
            numeric = False
        if not numeric:
            raise PackingError(f"{LAYOUT_RECORD} names dtype {dtype[:20]!r}")
    return layout


def received_weights(content: RecordDict) -> tuple[dict[str, np.ndarray], Layout | None]:
    """(the weights of a request's ``arrays`` record by name, the layout they came packed
    in or None): what a site reads, packed or not.

    Raises:
        PackingError: a layout record that is malformed or does not fit the packed arrays.
        KeyError: the request holds no ``arrays`` record.
    """
    record = content.array_records[ARRAYS]
    if LAYOUT_RECORD not in content.config_records:
        return {name: array.numpy() for name, array in record.items()}, None
    layout = read_layout(content.config_records[LAYOUT_RECORD])
    return unpack(record, layout), layout


def weights_record(arrays: dict[str, np.ndarray], layout: Layout | None) -> ArrayRecord:
    """A site's weights as the request sent them: packed in its layout, or one per array."""
    if layout is not None:
        return pack(arrays, layout)
    return ArrayRecord(
        array_dict=OrderedDict(
            (name, Array.from_numpy_ndarray(np.asarray(array))) for name, array in arrays.items()
        )
    )
