"""``cardiomm site-worker`` on a folder it cannot serve says so in one line naming the path
and the problem, and exits with code 2: no traceback, nothing left listening."""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest

from cardiomm.cli import main
from client.worker import MAX_SOCKET_PATH_BYTES, SOCKET_NAME, TOKEN_NAME
from tests.client.stand_in_worker import REPOSITORY, worker_process
from tests.deadline import deadline


def _refused(folder, capsys) -> str:
    """The one line ``cardiomm site-worker folder`` prints before it exits with code 2."""
    with deadline(30):  # a worker that started after all would serve forever
        code = main(["site-worker", str(folder), "--timeout", "0.5"])
    error = capsys.readouterr().err
    assert code == 2
    assert error.count("\n") == 1 and "Traceback" not in error, error
    assert error.startswith("cardiomm site-worker: error: ")
    return error.strip()


@contextlib.contextmanager
def _unwritable(folder):
    """``folder`` made unwritable for this user: mode 500, or immutable for root (whom
    permissions do not stop)."""
    if os.getuid() != 0:
        folder.chmod(0o500)
        try:
            yield
        finally:
            folder.chmod(0o700)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(folder)]).returncode != 0:
        pytest.skip("running as root, and chattr +i is not available to make a folder unwritable")
    try:
        yield
    finally:
        subprocess.run([chattr, "-i", str(folder)], check=True)


def test_a_socket_path_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "worker" / SOCKET_NAME).mkdir(parents=True, mode=0o700)
    (tmp_path / "worker").chmod(0o700)
    error = _refused(tmp_path / "worker", capsys)
    assert f"socket path {tmp_path / 'worker' / SOCKET_NAME} is a directory" in error


def test_a_socket_path_that_is_a_plain_file(tmp_path, capsys):
    folder = tmp_path / "worker"
    folder.mkdir(mode=0o700)
    (folder / SOCKET_NAME).write_text("notes")
    error = _refused(folder, capsys)
    assert f"socket path {folder / SOCKET_NAME} exists and is not a socket" in error
    assert (folder / SOCKET_NAME).read_text() == "notes"  # not removed


def test_a_folder_this_user_cannot_write(tmp_path, capsys):
    folder = tmp_path / "worker"
    folder.mkdir(mode=0o700)
    with _unwritable(folder):
        error = _refused(folder, capsys)
    assert f"site-worker folder {folder} is not writable by this user" in error


def test_a_folder_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / "a-file").write_text("")
    folder = tmp_path / "a-file" / "worker"
    error = _refused(folder, capsys)
    assert f"site-worker folder {folder} cannot be created: Not a directory" in error


def test_a_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "worker").write_text("")
    error = _refused(tmp_path / "worker", capsys)
    assert f"site-worker folder {tmp_path / 'worker'} is not a directory" in error


def test_a_socket_path_too_long_for_a_unix_socket(tmp_path, capsys):
    folder = tmp_path / ("w" * MAX_SOCKET_PATH_BYTES)
    error = _refused(folder, capsys)
    assert f"socket path {folder / SOCKET_NAME} is" in error
    assert f"more than the {MAX_SOCKET_PATH_BYTES} a Unix socket's address holds" in error


def test_a_folder_another_worker_serves(worker, capsys):
    error = _refused(worker.folder, capsys)
    assert f"another site worker is listening on {worker.socket_path}" in error


def test_a_folder_a_stopped_worker_still_holds(tmp_path, capsys):
    folder = tmp_path / "worker"
    with worker_process(folder) as process:
        process.send_signal(signal.SIGSTOP)
        error = _refused(folder, capsys)
    assert f"another site worker is listening on {folder / SOCKET_NAME}" in error


def test_a_token_path_that_is_a_directory(tmp_path, capsys):
    folder = tmp_path / "worker"
    (folder / TOKEN_NAME).mkdir(parents=True)
    folder.chmod(0o700)
    error = _refused(folder, capsys)
    assert f"cannot write its token {folder / TOKEN_NAME}" in error
    assert not (folder / SOCKET_NAME).exists()  # nothing left listening


def test_the_worker_process_prints_one_line_and_exits_with_code_2(tmp_path):
    folder = tmp_path / "worker"
    (folder / SOCKET_NAME).mkdir(parents=True)
    folder.chmod(0o700)
    finished = subprocess.run(
        [sys.executable, "-m", "cardiomm.cli", "site-worker", str(folder)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2
    assert finished.stderr.splitlines() == [
        f"cardiomm site-worker: error: site-worker socket path {folder / SOCKET_NAME} is a "
        "directory: remove it, or give the worker another folder"
    ]


def test_a_stale_socket_is_not_in_the_way(tmp_path):
    from client.worker import check_folder

    folder = tmp_path / "worker"
    folder.mkdir(mode=0o700)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(folder / SOCKET_NAME))  # a killed worker's: nobody listens
    assert check_folder(folder, timeout=0.5) == folder
