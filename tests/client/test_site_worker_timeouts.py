"""No wait on a site worker is unbounded: a stopped worker, a silent peer or a peer that
stops reading costs one timeout, after which the ClientApp does the task itself (or, once
the worker was let charge the privacy ledger, replies with an error rather than charge the
round twice); a long task is not cut short; an unauthenticated peer cannot make the worker
reserve what it declares."""

import contextlib
import json
import logging
import os
import signal
import socket
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from flwr.app import MessageType

from client.worker import (
    SOCKET_NAME,
    TOKEN_NAME,
    SiteWorker,
    WorkerUnavailableError,
    submit,
)
from client.worker_wire import MAGIC, receive_frame, send_frame
from federation.protocol import SITE_FAILURE
from tests.builders import write_consortium
from tests.client.messages import call, train_content
from tests.client.stand_in_worker import impostor, worker_process
from tests.deadline import deadline

SILENCE = 0.3  # the ClientApp's timeout in these tests: seconds of silence it allows


@pytest.fixture(scope="module")
def overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"


@contextlib.contextmanager
def thread_worker(folder: Path, handle, timeout: float = 30.0):
    """A SiteWorker with ``handle`` serving ``folder`` from a thread of this process."""
    worker = SiteWorker(folder, handle, timeout)
    worker.start()
    thread = threading.Thread(target=worker.serve_forever, daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop()
        thread.join(10)
        assert not thread.is_alive(), "the worker did not stop"


def _answer(header, arrays, confirm_charge):
    return {"metrics": {"answered": 1.0}}, {}


def _impostor_folder(tmp_path: Path) -> tuple[Path, socket.socket]:
    folder = tmp_path / "impostor"
    return folder, impostor(folder)


def _given_up_on_in_time(folder: Path, match: str) -> None:
    began = time.monotonic()
    with deadline(10), pytest.raises(WorkerUnavailableError, match=match):
        submit(folder, {"kind": "query"}, {}, timeout=SILENCE)
    assert time.monotonic() - began < SILENCE + 1.5


def _train(overrides, node_config):
    return call(MessageType.TRAIN, train_content(overrides), node_config, overrides)


# -- the ClientApp's side ---------------------------------------------------------------------


def test_a_stopped_worker_process_is_given_up_on_after_one_timeout(tmp_path):
    folder = tmp_path / "worker"
    with worker_process(folder) as process:
        process.send_signal(signal.SIGSTOP)
        _given_up_on_in_time(folder, f"{folder / SOCKET_NAME}: no answer within 0.3 s")


def test_the_clientapp_does_the_round_itself_when_its_worker_is_stopped(
    overrides, tmp_path, caplog
):
    folder = tmp_path / "worker"
    node_config = {"partition-id": 0, "site-worker": str(folder), "site-worker-timeout": SILENCE}
    with worker_process(folder) as process, caplog.at_level(logging.WARNING, "client.app"):
        process.send_signal(signal.SIGSTOP)
        with deadline(60):
            reply = _train(overrides, node_config)
    assert not reply.has_error()
    assert reply.content["metrics"]["site-worker"] == 0.0
    (warning,) = [record.getMessage() for record in caplog.records if record.name == "client.app"]
    assert str(folder / SOCKET_NAME) in warning and "no answer within 0.3 s" in warning
    assert warning.endswith("doing the task here")


def test_a_listener_that_accepts_and_says_nothing_is_given_up_on(tmp_path):
    folder, listener = _impostor_folder(tmp_path)
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    try:
        _given_up_on_in_time(folder, "no answer within 0.3 s .* while waiting for its welcome")
    finally:
        thread.join(5)
        for connection, _ in accepted:
            connection.close()
        listener.close()


def test_a_listener_that_never_accepts_is_given_up_on(tmp_path):
    folder, listener = _impostor_folder(tmp_path)
    with listener:
        _given_up_on_in_time(folder, "no answer within 0.3 s .* while waiting for its welcome")


def test_a_socket_whose_backlog_is_full_does_not_block_the_connect(tmp_path):
    folder, listener = _impostor_folder(tmp_path)
    queued = []
    try:
        while True:  # fill the listener's backlog: the next connect would block
            waiting = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            waiting.setblocking(False)
            queued.append(waiting)
            waiting.connect(str(folder / SOCKET_NAME))
    except BlockingIOError:
        pass
    try:
        _given_up_on_in_time(folder, "while connecting")
    finally:
        for waiting in queued:
            waiting.close()
        listener.close()


def test_a_task_longer_than_the_timeout_is_waited_for_while_the_worker_keeps_alive(tmp_path):
    def slow(header, arrays, confirm_charge):
        time.sleep(4 * SILENCE)  # a long round: silent but for the keep-alives
        return {"metrics": {"answered": 1.0}}, {}

    with thread_worker(tmp_path / "worker", slow) as worker, deadline(10):
        reply = submit(worker.folder, {"kind": "query"}, {}, timeout=SILENCE)
    assert reply.header["metrics"] == {"answered": 1.0}
    assert worker.tasks == 1


# -- the worker's side ---------------------------------------------------------------------


def test_a_silent_connection_does_not_hold_up_the_next_task(tmp_path):
    with (
        thread_worker(tmp_path / "worker", _answer, timeout=30.0) as worker,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent,
        deadline(10),
    ):
        silent.connect(str(worker.socket_path))  # and says nothing for 30 s
        began = time.monotonic()
        reply = submit(worker.folder, {"kind": "query"}, {}, timeout=5.0)
        assert time.monotonic() - began < 2.0
    assert reply.header["metrics"] == {"answered": 1.0}


def test_a_silent_connection_is_closed_at_the_workers_timeout(tmp_path):
    with (
        thread_worker(tmp_path / "worker", _answer, timeout=SILENCE) as worker,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent,
        deadline(10),
    ):
        silent.connect(str(worker.socket_path))
        silent.settimeout(5.0)
        began = time.monotonic()
        assert silent.recv(1) == b""  # the worker closed it
        assert time.monotonic() - began < SILENCE + 1.5


def test_a_worker_stops_even_when_its_clientapp_stopped_reading_the_reply(tmp_path):
    def large(header, arrays, confirm_charge):  # more than the socket's buffers hold
        return {"metrics": {}}, {"w": np.zeros(16 * 1024 * 1024, dtype=np.uint8)}

    folder = tmp_path / "worker"
    with (
        thread_worker(folder, large, timeout=SILENCE) as worker,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as reader,
        deadline(10),
    ):
        reader.connect(str(worker.socket_path))
        send_frame(reader, {"token": (folder / TOKEN_NAME).read_text()})
        receive_frame(reader)  # the welcome
        send_frame(reader, {"kind": "query"})
        time.sleep(SILENCE + 0.5)  # reads nothing more: the worker's send times out
    # thread_worker's exit asserts that the worker stopped within 10 s


def test_a_peer_without_the_token_cannot_make_the_worker_reserve_a_large_payload(tmp_path):
    declared = 256 * 1024**2
    arrays = [{"name": "w", "dtype": "uint8", "shape": [declared]}]
    header = json.dumps({"kind": "train", "arrays": arrays}).encode()
    frame = MAGIC + len(header).to_bytes(4, "big") + header + declared.to_bytes(8, "big")
    with (
        thread_worker(tmp_path / "worker", _answer) as worker,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer,
        deadline(10),
    ):
        peer.connect(str(worker.socket_path))
        tracemalloc.start()
        try:
            peer.sendall(frame)  # no token, and not a byte of the payload
            refusal, _ = receive_frame(peer, deadline=time.monotonic() + 2.0)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert refusal["refused"].startswith("not a hello: payload of 268435456 bytes")
    assert peak < 4 * 1024**2  # nothing near the declared 256 MiB was reserved
    assert worker.tasks == 0


def test_a_peer_without_the_token_cannot_declare_a_large_header(tmp_path):
    frame = MAGIC + (16 * 1024**2 - 1).to_bytes(4, "big")  # under the limit for a task
    with (
        thread_worker(tmp_path / "worker", _answer),
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as peer,
        deadline(10),
    ):
        peer.connect(str(tmp_path / "worker" / SOCKET_NAME))
        peer.sendall(frame)
        refusal, _ = receive_frame(peer, deadline=time.monotonic() + 2.0)
    assert refusal["refused"] == "not a hello: header of 16777215 bytes exceeds 1024"


# -- the privacy ledger -----------------------------------------------------------------------


def test_a_round_whose_worker_stopped_after_charging_the_ledger_is_not_trained_twice(
    overrides, tmp_path, caplog
):
    folder = tmp_path / "worker"
    node_config = {"partition-id": 0, "site-worker": str(folder), "site-worker-timeout": SILENCE}
    with (
        worker_process(folder, mode="charge-then-stop"),
        deadline(60),
        caplog.at_level(logging.WARNING, "client.app"),
    ):
        reply = _train(overrides, node_config)
    assert reply.has_error() and reply.error.code == SITE_FAILURE
    assert str(folder / SOCKET_NAME) in reply.error.reason
    assert "after letting it charge the privacy ledger" in reply.error.reason
    assert "the round is not trained again here" in reply.error.reason
    assert "\n" not in reply.error.reason
    messages = [record.getMessage() for record in caplog.records if record.name == "client.app"]
    assert messages == [reply.error.reason]  # one warning, and no "doing the task here"


def test_a_site_worker_timeout_that_is_not_a_positive_number_is_replaced_by_the_default(
    caplog,
):
    from client.app import _worker_timeout
    from client.worker import DEFAULT_TIMEOUT

    with caplog.at_level(logging.WARNING, "client.app"):
        assert _worker_timeout({"site-worker-timeout": "soon"}) == DEFAULT_TIMEOUT
        assert _worker_timeout({"site-worker-timeout": -1.0}) == DEFAULT_TIMEOUT
        assert _worker_timeout({"site-worker-timeout": 2.5}) == 2.5
    assert [record.getMessage() for record in caplog.records] == [
        "node config site-worker-timeout='soon' is not a positive number of seconds; using 30",
        "node config site-worker-timeout=-1.0 is not a positive number of seconds; using 30",
    ]


def test_a_token_that_is_a_fifo_does_not_block_the_clientapp(tmp_path):
    folder = tmp_path / "worker"
    folder.mkdir(mode=0o700)
    os.mkfifo(folder / TOKEN_NAME)  # a read of it would wait for a writer forever
    _given_up_on_in_time(folder, f"token {folder / TOKEN_NAME} is not a plain file")
