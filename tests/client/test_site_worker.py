"""A warm site worker: the ClientApp hands it the task, gets the same bits back, and does
the task itself when the worker is down; nobody else can talk to the worker."""

import os
import socket
import stat
import subprocess
import sys
import threading

import numpy as np
import pytest
from flwr.app import MessageType

from client.model_cache import ModelCache
from client.tasks import worker_handler
from client.worker import (
    SOCKET_NAME,
    TOKEN_NAME,
    SiteWorker,
    WorkerFolderError,
    WorkerUnavailableError,
    submit,
)
from client.worker_wire import receive_frame, send_frame
from tests.builders import write_consortium
from tests.client.messages import call, train_content
from tests.client.stand_in_worker import impostor

# What differs between two answers of the same task: where the time went.
TIMINGS = {
    "process-seconds",
    "import-seconds",
    "setup-seconds",
    "build-seconds",
    "train-seconds",
    "eval-seconds",
    "site-worker",
    "handoff-seconds",
}


@pytest.fixture(scope="module")
def overrides(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none"


def _train(overrides, node_config):
    return call(MessageType.TRAIN, train_content(overrides), node_config, overrides)


def _same_answer(first, second):
    assert not first.has_error() and not second.has_error()
    one, two = first.content["arrays"], second.content["arrays"]
    assert list(one.keys()) == list(two.keys())
    for name in one:
        assert np.array_equal(one[name].numpy(), two[name].numpy()), name
    metrics = [
        {key: value for key, value in reply.content["metrics"].items() if key not in TIMINGS}
        for reply in (first, second)
    ]
    assert metrics[0] == metrics[1]
    assert dict(first.content["site"]) == dict(second.content["site"])


def test_a_worker_answers_a_round_with_the_same_bits_as_the_clientapp_itself(overrides, worker):
    here = _train(overrides, {"partition-id": 0})
    handed = _train(overrides, {"partition-id": 0, "site-worker": str(worker.folder)})
    _same_answer(here, handed)
    assert handed.content["metrics"]["site-worker"] == 1.0
    assert here.content["metrics"]["site-worker"] == 0.0
    assert worker.tasks == 1


def test_a_worker_builds_the_network_once_and_copies_it_for_every_round(overrides, worker):
    node_config = {"partition-id": 0, "site-worker": str(worker.folder)}
    first = _train(overrides, node_config)
    second = _train(overrides, node_config)
    _same_answer(first, second)
    assert worker.tasks == 2
    assert worker.cache.builds == 1


def test_the_clientapp_does_the_task_itself_when_no_worker_runs(overrides, tmp_path):
    folder = tmp_path / "stopped"
    folder.mkdir(mode=0o700)
    reply = _train(overrides, {"partition-id": 0, "site-worker": str(folder)})
    assert not reply.has_error()
    assert reply.content["metrics"]["site-worker"] == 0.0


def test_the_clientapp_does_the_task_itself_when_the_worker_dies_mid_task(overrides, tmp_path):
    folder = tmp_path / "dying"
    listener = impostor(folder)

    def accept_and_die():
        connection, _ = listener.accept()
        receive_frame(connection)  # the hello
        send_frame(connection, {"welcome": True})
        receive_frame(connection)  # the task
        connection.close()  # a worker killed while the task was running

    thread = threading.Thread(target=accept_and_die, daemon=True)
    thread.start()
    reply = _train(overrides, {"partition-id": 0, "site-worker": str(folder)})
    thread.join(10)
    listener.close()
    assert not reply.has_error()
    assert reply.content["metrics"]["site-worker"] == 0.0


def test_a_restarted_worker_takes_the_next_task_with_its_new_token(overrides, tmp_path):
    folder = tmp_path / "restarted"
    first = SiteWorker(folder, worker_handler(ModelCache()))
    first.start()
    old_token = (folder / TOKEN_NAME).read_text()
    first.close()
    second = SiteWorker(folder, worker_handler(ModelCache()))
    second.start()
    assert (folder / TOKEN_NAME).read_text() != old_token
    thread = threading.Thread(target=second.serve_forever, daemon=True)
    thread.start()
    try:
        reply = _train(overrides, {"partition-id": 0, "site-worker": str(folder)})
    finally:
        second.stop()
        thread.join(10)
    assert reply.content["metrics"]["site-worker"] == 1.0


def test_the_socket_token_and_folder_are_private_to_the_worker_user(worker):
    assert stat.S_IMODE(worker.folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((worker.folder / SOCKET_NAME).stat().st_mode) == 0o600
    assert stat.S_IMODE((worker.folder / TOKEN_NAME).stat().st_mode) == 0o600


def test_a_request_without_the_token_is_refused(worker):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.connect(str(worker.folder / SOCKET_NAME))
        send_frame(connection, {"kind": "query", "token": "guess"})
        reply, _ = receive_frame(connection)
    assert "wrong token" in reply["refused"]
    assert worker.tasks == 0


def test_a_worker_refuses_a_folder_others_can_enter(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o755)
    with pytest.raises(WorkerFolderError, match="mode 755; only its owner may enter it"):
        SiteWorker(folder, worker_handler(ModelCache()))


def test_the_clientapp_does_not_hand_tasks_to_a_folder_others_can_enter(tmp_path):
    folder = tmp_path / "shared"
    folder.mkdir()
    os.chmod(folder, 0o750)
    with pytest.raises(WorkerUnavailableError, match="mode 750"):
        submit(folder, {"kind": "query"}, {})


def test_a_second_worker_on_a_folder_in_use_is_refused(worker):
    with pytest.raises(WorkerFolderError, match="another site worker is listening"):
        SiteWorker(worker.folder, worker_handler(ModelCache())).start()


def test_a_worker_replaces_the_socket_a_killed_worker_left(tmp_path):
    folder = tmp_path / "stale"
    folder.mkdir(mode=0o700)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(folder / SOCKET_NAME))
    stale.close()  # the file stays, nobody listens
    worker = SiteWorker(folder, worker_handler(ModelCache()))
    worker.start()
    worker.close()
    assert not (folder / SOCKET_NAME).exists() and not (folder / TOKEN_NAME).exists()


def test_the_clientapp_imports_no_torch_unless_it_does_a_task_itself():
    probe = "import sys, client.app; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120
    )
    assert result.stdout.strip() == "False", result.stderr
