"""The site worker's frames: what goes in comes out, a malformed frame is an error naming
the problem, never an object built from it, and no read or write outlasts its deadline."""

import json
import socket
import struct
import threading
import time

import numpy as np
import pytest

from client.worker_wire import MAGIC, WireError, WireTimeoutError, receive_frame, send_frame
from tests.deadline import deadline


def _round_trip(header, arrays, **limits):
    left, right = socket.socketpair()
    with left, right:
        send_frame(left, header, arrays)
        return receive_frame(right, **limits)


def _raw(frame: bytes, **limits):
    left, right = socket.socketpair()
    with left, right:
        left.sendall(frame)
        left.shutdown(socket.SHUT_WR)
        return receive_frame(right, **limits)


def _frame(header: dict, payload: bytes) -> bytes:
    encoded = json.dumps(header).encode()
    lengths = struct.pack(">I", len(encoded)), struct.pack(">Q", len(payload))
    return MAGIC + lengths[0] + encoded + lengths[1] + payload


def test_arrays_and_header_arrive_as_sent_in_order():
    arrays = {
        "conv.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4),
        "norm.steps": np.array(7, dtype=np.int64),
        "empty": np.zeros((0, 5), dtype=np.float16),
    }
    header, received = _round_trip({"metrics": {"psnr": float("nan"), "loss": 0.5}}, arrays)
    assert list(received) == list(arrays)
    for name, array in arrays.items():
        assert received[name].dtype == array.dtype and np.array_equal(received[name], array)
    assert np.isnan(header["metrics"]["psnr"]) and header["metrics"]["loss"] == 0.5


def test_an_array_of_objects_is_not_sent():
    with pytest.raises(WireError, match="dtype object"):
        _round_trip({}, {"pickled": np.array([{"a": 1}], dtype=object)})


def test_a_frame_without_the_magic_is_refused():
    with pytest.raises(WireError, match="not a site-worker frame"):
        _raw(b"GET / HTTP/1.1\r\n\r\n" + b"\0" * 32)


def test_an_oversized_header_is_refused_before_it_is_read():
    with pytest.raises(WireError, match="exceeds 64"):
        _raw(_frame({"padding": "x" * 100}, b""), max_header_bytes=64)


def test_arrays_that_do_not_fill_the_payload_are_refused():
    header = {"arrays": [{"name": "w", "dtype": "float32", "shape": [4]}]}
    with pytest.raises(WireError, match="payload of 8 bytes; its arrays need 16"):
        _raw(_frame(header, b"\0" * 8))


def test_a_dtype_outside_the_list_is_refused():
    header = {"arrays": [{"name": "w", "dtype": "O", "shape": [1]}]}
    with pytest.raises(WireError, match="dtype 'O' is not one of the wire's"):
        _raw(_frame(header, b"\0" * 8))


def test_a_negative_size_is_refused():
    header = {"arrays": [{"name": "w", "dtype": "uint8", "shape": [-1]}]}
    with pytest.raises(WireError, match="is not a list of sizes"):
        _raw(_frame(header, b""))


def test_a_repeated_array_name_is_refused():
    entry = {"name": "w", "dtype": "uint8", "shape": [1]}
    with pytest.raises(WireError, match="is not a new string"):
        _raw(_frame({"arrays": [entry, entry]}, b"\0\0"))


def test_a_connection_closed_mid_frame_is_an_error():
    header = {"arrays": [{"name": "w", "dtype": "uint8", "shape": [10]}]}
    frame = _frame(header, b"\0" * 10)
    with pytest.raises(WireError, match="connection closed"):
        _raw(frame[:-4])


def test_a_silent_peer_is_an_error_at_the_deadline():
    left, right = socket.socketpair()
    with left, right, deadline(5):
        began = time.monotonic()
        with pytest.raises(WireTimeoutError, match="timed out at byte 0 of 13"):
            receive_frame(right, deadline=began + 0.2)
    assert time.monotonic() - began < 1.0


def test_a_peer_that_trickles_bytes_cannot_stretch_the_deadline():
    left, right = socket.socketpair()
    frame = _frame({"padding": "x" * 200}, b"")
    stop = threading.Event()

    def trickle():  # one byte every 50 ms: every recv succeeds, the frame never completes
        for byte in frame:
            if stop.wait(0.05):
                return
            left.send(bytes([byte]))

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    try:
        with deadline(5):
            began = time.monotonic()
            with pytest.raises(WireTimeoutError):
                receive_frame(right, deadline=began + 0.3)
        assert time.monotonic() - began < 1.0
    finally:
        stop.set()
        thread.join(5)
        left.close()
        right.close()


def test_a_send_to_a_peer_that_stops_reading_is_an_error_at_the_deadline():
    left, right = socket.socketpair()
    with left, right, deadline(5):
        big = {"w": np.zeros(16 * 1024 * 1024, dtype=np.uint8)}  # more than the socket buffers
        began = time.monotonic()
        with pytest.raises(WireTimeoutError, match="the peer stopped reading"):
            send_frame(left, {}, big, deadline=began + 0.2)
    assert time.monotonic() - began < 1.0


def test_a_payload_over_the_readers_limit_is_refused_without_waiting_for_it():
    header = {"arrays": [{"name": "w", "dtype": "uint8", "shape": [2**30]}]}
    encoded = json.dumps(header).encode()
    declared = MAGIC + struct.pack(">I", len(encoded)) + encoded + struct.pack(">Q", 2**30)
    left, right = socket.socketpair()
    with left, right, deadline(5):
        left.sendall(declared)  # and not a byte of the payload: the reader must not wait for it
        with pytest.raises(WireError, match=r"payload of 1073741824 bytes.*at most 0"):
            receive_frame(right, max_payload_bytes=0, deadline=time.monotonic() + 2)
