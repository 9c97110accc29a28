"""Half-precision transport: encoding, the update added to the float32 master, the replies
the server refuses, and the site's copy of the frozen part."""

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, ConfigRecord, RecordDict

from client.site_transport import receive
from federation.transport import (
    FROZEN_RECORD,
    TRANSPORT_RECORD,
    TransportError,
    TransportSettings,
    apply_reply,
    decode,
    encode,
    encode_arrays,
    reply_arrays,
    request_config,
)

WEIGHTS = np.random.default_rng(0).normal(0.0, 0.1, size=1000).astype(np.float32)


@pytest.mark.parametrize(("precision", "relative"), [("bfloat16", 2**-8), ("float16", 2**-11)])
def test_half_precision_rounds_to_its_relative_accuracy_in_two_bytes(precision, relative):
    encoded = encode(WEIGHTS, precision)
    assert encoded.nbytes == 2 * WEIGHTS.size
    decoded = decode(encoded, precision, np.dtype(np.float32))
    assert decoded.dtype == np.float32
    assert np.all(np.abs(decoded - WEIGHTS) <= relative * np.abs(WEIGHTS) + 1e-30)


def test_integer_arrays_travel_as_they_are():
    steps = np.arange(3, dtype=np.int64)
    assert encode(steps, "bfloat16") is steps


def test_an_integer_array_of_the_half_precision_wire_dtype_is_refused():
    with pytest.raises(TransportError, match="what float32 travels as"):
        encode_arrays({"counts": np.zeros(2, np.int16)}, "bfloat16")


def test_the_server_adds_the_half_precision_update_to_its_float32_master():
    master = {"w": WEIGHTS}
    received = {"w": decode(encode(WEIGHTS, "bfloat16"), "bfloat16", np.dtype(np.float32))}
    trained = {"w": received["w"] + np.float32(1e-3)}
    reply = reply_arrays(trained, received, "bfloat16")
    weights = apply_reply(reply, master, ["w"], "bfloat16")
    # The master's float32 digits survive; only the update is rounded (relative to itself).
    assert np.allclose(weights["w"] - WEIGHTS, 1e-3, rtol=2**-8, atol=0)


def test_arrays_the_request_did_not_send_stay_the_masters():
    master = {"w": WEIGHTS, "frozen": np.ones(3, np.float32)}
    reply = {"w": encode(np.zeros_like(WEIGHTS), "float16")}
    assert apply_reply(reply, master, ["w"], "float16")["frozen"] is master["frozen"]


@pytest.mark.parametrize(
    ("reply", "match"),
    [
        ({}, "not those sent"),
        ({"w": WEIGHTS, "x": WEIGHTS}, "not those sent"),
        ({"w": WEIGHTS}, "travels as int16"),  # float32 where bfloat16 bits were due
        ({"w": encode(WEIGHTS[:10], "bfloat16")}, "shape"),
    ],
)
def test_a_reply_that_does_not_decode_is_refused(reply, match):
    with pytest.raises(TransportError, match=match):
        apply_reply(reply, {"w": WEIGHTS}, ["w"], "bfloat16")


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision must be one of"):
        TransportSettings(precision="int8")


def _request(frozen: bool, digest: str = "abc") -> RecordDict:
    content = RecordDict(
        {
            TRANSPORT_RECORD: ConfigRecord(
                request_config(TransportSettings("bfloat16", True), digest)
            )
        }
    )
    if frozen:
        content[FROZEN_RECORD] = ArrayRecord({"frozen": Array(encode(WEIGHTS, "bfloat16"))})
    return content


def test_a_site_keeps_the_frozen_part_and_uses_it_when_the_request_leaves_it_out():
    state = RecordDict()
    sent = {"w": encode(WEIGHTS[:4], "bfloat16")}
    first = receive(_request(frozen=True), sent, state)
    later = receive(_request(frozen=False), sent, state)
    assert set(later.weights) == {"w", "frozen"} and set(later.sent) == {"w"}
    assert np.array_equal(later.weights["frozen"], first.weights["frozen"])


def test_a_site_without_the_named_frozen_part_says_so():
    with pytest.raises(TransportError, match="does not hold"):
        receive(_request(frozen=False, digest="def"), {}, RecordDict())


def test_a_request_without_a_transport_record_is_plain_float32():
    received = receive(RecordDict(), {"w": WEIGHTS}, RecordDict())
    assert received.reply({"w": WEIGHTS + 1})["w"][0] == WEIGHTS[0] + 1
