"""A warm site worker: one long-lived process per SuperNode that keeps torch, the text
encoder, the network and the site's data index between Flower messages.

Flower 1.42 starts a fresh ``flwr-clientapp`` process for every message of a deployment
(``run_clientapp`` pulls one task, answers it and exits, whichever isolation mode), and that
process would import torch, load the text encoder, index the data and build the network
again. With a worker (node config ``site-worker="<folder>"``) the ClientApp imports none of
that: it hands the task (:class:`~client.tasks.SiteTask`) to the worker over a Unix socket
and turns the outcome into its reply. Flower's message flow, TLS and SuperNode
authentication are untouched: the worker only ever talks to the ClientApp on the same
machine.

Who may talk to the worker: the socket lives in a folder of mode 0700 owned by the worker's
user (refused otherwise), the socket file is 0600, every connection's peer must run as that
same user (``SO_PEERCRED``), and every request must carry the token the worker wrote to
``<folder>/token`` (0600) when it started: a new token per start, compared in constant
time. Nothing listens on the network.

When the worker is missing, restarting or dies mid-task, :func:`submit` raises
:class:`WorkerUnavailableError` and the ClientApp does the task itself (client/app.py): a round
never fails because the worker is down, it is only slower.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import signal
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from client.worker_wire import WireError, receive_frame, send_frame

logger = logging.getLogger(__name__)

SOCKET_NAME = "worker.sock"
TOKEN_NAME = "token"
# A request arrives right after the connection; a peer that sends nothing is dropped.
REQUEST_TIMEOUT = 120.0


class WorkerUnavailableError(RuntimeError):
    """The worker cannot take the task (not running, refused, died); the ClientApp falls back."""


class WorkerFolderError(RuntimeError):
    """The worker's folder is not private to its user; the message says what to fix."""


def private_folder(folder: Path, create: bool) -> Path:
    """``folder``, checked to be a directory owned by this user with no group or other
    access (created so when ``create``)."""
    folder = Path(folder)
    if create and not folder.exists():
        folder.mkdir(mode=0o700, parents=True)
    try:
        status = folder.lstat()
    except FileNotFoundError as error:
        raise WorkerFolderError(f"site-worker folder {folder} does not exist") from error
    if not stat.S_ISDIR(status.st_mode):
        raise WorkerFolderError(f"site-worker folder {folder} is not a directory")
    if status.st_uid != os.getuid():
        raise WorkerFolderError(
            f"site-worker folder {folder} belongs to uid {status.st_uid}, not to this user "
            f"({os.getuid()})"
        )
    if status.st_mode & 0o077:
        raise WorkerFolderError(
            f"site-worker folder {folder} has mode {stat.S_IMODE(status.st_mode):o}; "
            f"only its owner may enter it: chmod 700 {folder}"
        )
    return folder


def peer_uid(connection: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (Linux)."""
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _, uid, _ = struct.unpack("3i", credentials)
    return uid


# -- the ClientApp's side ------------------------------------------------------------------


def submit(folder: str | Path, header: dict[str, Any], arrays: dict) -> tuple[dict, dict]:
    """Hand a task to the worker in ``folder`` and wait for its outcome.

    Args:
        folder: the worker's folder (node config ``site-worker``).
        header: the task's plain values (client/app.py); the token is added here.
        arrays: the global weights, name -> numpy array.

    Returns:
        (the reply header, the reply's arrays).

    Raises:
        WorkerUnavailableError: no worker there, a folder or peer that is not private, a refused
            token, or a connection that broke before the outcome was complete.
    """
    try:
        folder = private_folder(Path(folder), create=False)
        token = (folder / TOKEN_NAME).read_text().strip()
    except (OSError, WorkerFolderError) as error:
        raise WorkerUnavailableError(str(error)) from error
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            connection.connect(str(folder / SOCKET_NAME))
            if peer_uid(connection) != os.getuid():
                raise WorkerUnavailableError(f"the socket in {folder} is served by another user")
            send_frame(connection, {**header, "token": token}, arrays)
            reply, reply_arrays = receive_frame(connection)
        except (OSError, WireError) as error:
            raise WorkerUnavailableError(f"site worker in {folder}: {error}") from error
    if "refused" in reply:
        refusal = reply["refused"]
        raise WorkerUnavailableError(f"site worker in {folder} refused the task: {refusal}")
    return reply, reply_arrays


# -- the worker's side ---------------------------------------------------------------------

# header, arrays -> reply header, reply arrays
TaskHandler = Callable[[dict[str, Any], dict], tuple[dict[str, Any], dict]]


class SiteWorker:
    """Serves tasks on ``<folder>/worker.sock``, one at a time (a SuperNode sends one)."""

    def __init__(self, folder: Path, handle: TaskHandler) -> None:
        self.folder = private_folder(Path(folder), create=True)
        self.socket_path = self.folder / SOCKET_NAME
        self.token_path = self.folder / TOKEN_NAME
        self.handle = handle
        self.tasks = 0
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._token = ""

    def start(self) -> None:
        """Write a new token and listen; refuses when another worker serves the folder."""
        if self.socket_path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(str(self.socket_path)) == 0:
                    raise WorkerFolderError(
                        f"another site worker is listening on {self.socket_path}"
                    )
            self.socket_path.unlink()  # left by a worker that was killed
        self._token = secrets.token_hex(32)
        with contextlib.suppress(FileNotFoundError):
            self.token_path.unlink()
        descriptor = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(self._token)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o177)  # the socket file is created 0600
        try:
            listener.bind(str(self.socket_path))
        finally:
            os.umask(old_mask)
        listener.listen(4)
        listener.settimeout(0.5)  # to notice stop() between connections
        self._listener = listener
        logger.info("site worker listening on %s", self.socket_path)

    def serve_forever(self) -> None:
        """Answer connections until :meth:`stop` (or SIGTERM / SIGINT via :func:`serve`)."""
        assert self._listener is not None, "start() first"
        try:
            while not self._stopping.is_set():
                try:
                    connection, _ = self._listener.accept()
                except TimeoutError:
                    continue
                except OSError:
                    if self._stopping.is_set():
                        break
                    raise
                with connection:
                    self._answer(connection)
        finally:
            self.close()

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        """Stop listening; remove the socket and the token (nobody can submit any more)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        for path in (self.socket_path, self.token_path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

    def _answer(self, connection: socket.socket) -> None:
        connection.settimeout(REQUEST_TIMEOUT)
        try:
            uid = peer_uid(connection)
            if uid != os.getuid():
                logger.warning("refused a connection from uid %d", uid)
                return
            header, arrays = receive_frame(connection)
            if not hmac.compare_digest(str(header.pop("token", "")), self._token):
                logger.warning("refused a task with a wrong token")
                send_frame(connection, {"refused": "wrong token (was the worker restarted?)"})
                return
            began = time.perf_counter()
            reply, reply_arrays = self.handle(header, arrays)
            self.tasks += 1
            logger.info(
                "task %d (%s) answered in %.2f s",
                self.tasks,
                header.get("kind"),
                time.perf_counter() - began,
            )
            connection.settimeout(None)
            send_frame(connection, reply, reply_arrays)
        except (OSError, WireError) as error:
            logger.warning("dropped a connection: %s", error)
        except Exception:  # a bug answering one task must not stop the site's worker
            logger.exception("failed to answer a task; the ClientApp will do it itself")


def serve(folder: Path, handle: TaskHandler) -> SiteWorker:
    """Run a worker in this process until SIGTERM or SIGINT; returns it once stopped."""
    worker = SiteWorker(folder, handle)
    worker.start()

    def stop(signum: int, frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve_forever()
    return worker
