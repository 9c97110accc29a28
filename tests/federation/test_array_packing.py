"""Weights packed into one array per dtype arrive as the same bits, and packed arrays that
do not fit the layout are an error naming the problem."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from federation.array_packing import (
    LAYOUT_RECORD,
    PackingError,
    layout_of,
    layout_record,
    pack,
    read_layout,
    received_weights,
    unpack,
    weights_record,
)

WEIGHTS = {
    "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
    "norm.count": np.array([3, 4], dtype=np.int64),
    "conv.bias": np.array([0.5, -1.5], dtype=np.float32),
    "scalar": np.array(2.0, dtype=np.float32),
}


def test_packed_weights_unpack_to_the_same_bits_names_and_order():
    record = pack(WEIGHTS)
    assert sorted(record.keys()) == ["packed.float32", "packed.int64"]
    unpacked = unpack(record, layout_of(WEIGHTS))
    assert list(unpacked) == list(WEIGHTS)
    for name, array in WEIGHTS.items():
        assert unpacked[name].dtype == array.dtype and np.array_equal(unpacked[name], array)


def test_the_layout_survives_its_record():
    assert read_layout(layout_record(layout_of(WEIGHTS))) == layout_of(WEIGHTS)


def test_a_packed_array_of_another_size_is_refused():
    record = pack(WEIGHTS)
    record["packed.float32"] = Array(np.zeros(5, dtype=np.float32))
    with pytest.raises(PackingError, match=r"packed\.float32 is float32 of shape \(5,\)"):
        unpack(record, layout_of(WEIGHTS))


def test_a_packed_array_of_another_dtype_is_refused():
    record = ArrayRecord(
        {"packed.float64": Array(np.zeros(31)), "packed.int64": Array(np.zeros(2, np.int64))}
    )
    with pytest.raises(PackingError, match="the layout needs"):
        unpack(record, layout_of(WEIGHTS))


def test_weights_that_are_not_the_layouts_are_not_packed():
    layout = layout_of(WEIGHTS)
    with pytest.raises(PackingError, match="names are not the layout's"):
        pack({"conv.weight": WEIGHTS["conv.weight"]}, layout)
    reshaped = {**WEIGHTS, "conv.bias": WEIGHTS["conv.bias"].reshape(2, 1)}
    with pytest.raises(PackingError, match=r"conv\.bias"):
        pack(reshaped, layout)


@pytest.mark.parametrize(
    "layout_json",
    [
        '[["w", "object", [1]]]',
        '[["w", "float32", [-1]]]',
        '[["w", "float32", [1]], ["w", "float32", [1]]]',
        "{}",
    ],
)
def test_a_malformed_layout_record_is_refused(layout_json):
    with pytest.raises(PackingError, match="array-layout"):
        read_layout(ConfigRecord({"layout": layout_json}))


def test_a_site_reads_and_answers_packed_or_per_array_requests_alike():
    for layout in (layout_of(WEIGHTS), None):
        content = RecordDict({"arrays": pack(WEIGHTS) if layout else weights_record(WEIGHTS, None)})
        if layout:
            content[LAYOUT_RECORD] = layout_record(layout)
        received, read = received_weights(content)
        assert read == layout
        assert all(np.array_equal(received[name], WEIGHTS[name]) for name in WEIGHTS)
        reply = weights_record(received, read)
        assert sorted(reply.keys()) == sorted(content["arrays"].keys())
