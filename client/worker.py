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
same user (``SO_PEERCRED``), and every connection must first show the token the worker wrote
to ``<folder>/token`` (0600) when it started: a new token per start, compared in constant
time. Nothing listens on the network.

One connection, one task, in frames (client/worker_wire.py):

1. ClientApp -> worker: the hello, ``{"token"}``. Until it has been checked a frame may hold
   :data:`HELLO_HEADER_BYTES` of header and no payload: a larger declared size is refused
   before a byte of it is read or reserved.
2. worker -> ClientApp: ``{"welcome": true}`` (or ``{"refused": why}``).
3. ClientApp -> worker: the task (header and weights) with its ``silence-seconds``.
4. worker -> ClientApp: ``{"alive": true}`` every quarter of ``silence-seconds`` while the
   task waits for its turn and runs; once, before a DP-SGD round charges the site's privacy
   ledger, ``{"may-charge-ledger": true}``, which the ClientApp answers
   ``{"charge-ledger": true}``; then the outcome.

No wait is unbounded, on either side. The ClientApp gives every step, the connect included,
``site-worker-timeout`` seconds (node config, default :data:`DEFAULT_TIMEOUT`); the bound is
on *silence*, not on the task: a long round keeps the connection alive with the worker's
keep-alives, while a stopped, hung or impostor worker says nothing and is given up on after
one timeout. The worker gives each connection ``--timeout`` seconds to show its token and
hand over its task, and each reply, keep-alive and ledger question the same to be taken; it
reads every connection in its own thread, so a silent peer never holds up the next one
(tasks still run one at a time).

When the worker is missing, restarting, stopped or dies mid-task, :func:`submit` raises
:class:`WorkerUnavailableError` and the ClientApp does the task itself (client/app.py): a round
never fails because the worker is down, it is only slower. The one exception is the privacy
ledger: once the ClientApp has let the worker charge it, a lost worker is
:class:`WorkerLostAfterChargeError` and the round is an error reply, not trained a second
time here (which would charge the site twice for one update); the worker asks first, so a
worker whose ClientApp has given up never charges (:class:`ClientAppGoneError`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hmac
import logging
import math
import os
import secrets
import select
import signal
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from client.worker_wire import WireError, WireTimeoutError, receive_frame, send_frame

logger = logging.getLogger(__name__)

SOCKET_NAME = "worker.sock"
TOKEN_NAME = "token"
# Seconds of silence either side allows (a node config or a command option overrides it).
DEFAULT_TIMEOUT = 30.0
# The hello, the welcome and the ledger's question and answer: a token and a key or two.
HELLO_HEADER_BYTES = 1024
# Connections read at once; more are closed at once (one SuperNode sends one at a time).
MAX_CONNECTIONS = 8
# sockaddr_un holds 108 bytes, the terminating NUL included.
MAX_SOCKET_PATH_BYTES = 107
# Keep-alives no more often than this, whatever silence a ClientApp asks for.
MIN_KEEP_ALIVE_SECONDS = 0.01

# The frames' keys besides the task's and the outcome's own.
TOKEN = "token"
WELCOME = "welcome"
REFUSED = "refused"
SILENCE = "silence-seconds"
KEEP_ALIVE = "alive"
MAY_CHARGE = "may-charge-ledger"
CHARGE = "charge-ledger"


class WorkerUnavailableError(RuntimeError):
    """The worker cannot take the task (not running, refused, stopped, died); the ClientApp
    falls back to doing it itself."""


class WorkerLostAfterChargeError(RuntimeError):
    """The worker was lost after the ClientApp let it charge the site's privacy ledger for
    the round: doing the round again here would charge it twice. Not a
    :class:`WorkerUnavailableError`, so that nothing falls back on it by accident."""


class ClientAppGoneError(RuntimeError):
    """The ClientApp that handed over a task has given up on it (timed out, closed): the
    worker does not charge the privacy ledger for a result nobody will receive."""


class WorkerFolderError(ValueError):
    """The worker's folder or socket cannot be used; the message names the path and what to
    fix (a ValueError: ``cardiomm site-worker`` reports it in one line, exit code 2)."""


def private_folder(folder: Path, create: bool) -> Path:
    """``folder``, checked to be a directory owned by this user with no group or other
    access (created so when ``create``)."""
    folder = Path(folder)
    if create and not folder.exists():
        try:
            folder.mkdir(mode=0o700, parents=True)
        except OSError as error:
            raise WorkerFolderError(
                f"site-worker folder {folder} cannot be created: {error.strerror}"
            ) from error
    try:
        status = folder.lstat()
    except FileNotFoundError as error:
        raise WorkerFolderError(f"site-worker folder {folder} does not exist") from error
    except OSError as error:
        raise WorkerFolderError(f"site-worker folder {folder}: {error.strerror}") from error
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


def check_folder(folder: Path, timeout: float = DEFAULT_TIMEOUT) -> Path:
    """``folder``, ready for a worker to start in (created 0700 when missing): private,
    writable, with a socket path AF_UNIX can hold and no other worker listening on it.
    Cheap: ``cardiomm site-worker`` calls it before importing the model stack.

    Raises:
        WorkerFolderError: what is wrong, naming the path.
    """
    folder = private_folder(Path(folder), create=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        mode = stat.S_IMODE(folder.stat().st_mode)
        fix = f" (mode {mode:o}): chmod 700 {folder}" if mode & 0o300 != 0o300 else ""
        raise WorkerFolderError(f"site-worker folder {folder} is not writable by this user{fix}")
    socket_path = folder / SOCKET_NAME
    length = len(os.fsencode(socket_path))
    if length > MAX_SOCKET_PATH_BYTES:
        raise WorkerFolderError(
            f"site-worker socket path {socket_path} is {length} bytes, more than the "
            f"{MAX_SOCKET_PATH_BYTES} a Unix socket's address holds: choose a shorter folder"
        )
    _socket_is_stale(socket_path, timeout)
    return folder


def _socket_is_stale(socket_path: Path, timeout: float) -> bool:
    """Whether ``socket_path`` is a socket nobody listens on (a killed worker's); False when
    there is none. Anything else there is a WorkerFolderError naming it."""
    try:
        status = socket_path.lstat()
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(status.st_mode):
        raise WorkerFolderError(
            f"site-worker socket path {socket_path} is a directory: remove it, or give the "
            "worker another folder"
        )
    if not stat.S_ISSOCK(status.st_mode):
        raise WorkerFolderError(
            f"site-worker socket path {socket_path} exists and is not a socket: remove it, "
            "or give the worker another folder"
        )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)  # a full backlog would block a plain connect
        try:
            probe.connect(str(socket_path))
        except ConnectionRefusedError:
            return True  # left by a worker that was killed
        except (TimeoutError, BlockingIOError):
            pass  # a worker too busy to accept is still a worker
        except OSError as error:
            raise WorkerFolderError(
                f"site-worker socket path {socket_path}: {error.strerror}"
            ) from error
    raise WorkerFolderError(
        f"another site worker is listening on {socket_path} (stopped or running): stop it, "
        "or give this one another folder"
    )


def peer_uid(connection: socket.socket) -> int:
    """The user id of the process at the other end of a Unix socket (Linux)."""
    credentials = connection.getsockopt(
        socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")
    )
    _, uid, _ = struct.unpack("3i", credentials)
    return uid


def _after(seconds: float) -> float:
    return time.monotonic() + seconds


def _silence(error: Exception, seconds: float) -> str:
    """What a failed exchange says: a timeout as the silence it was, else the error."""
    if isinstance(error, WireTimeoutError | TimeoutError):
        return f"no answer within {seconds:g} s (stopped, hung, or not a site worker)"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


# -- the ClientApp's side ------------------------------------------------------------------


@dataclasses.dataclass
class WorkerReply:
    """The worker's outcome frame: its header, its arrays, and whether the ClientApp let the
    worker charge the site's privacy ledger for the task."""

    header: dict[str, Any]
    arrays: dict
    ledger_charged: bool = False


def submit(
    folder: str | Path,
    header: dict[str, Any],
    arrays: dict,
    timeout: float = DEFAULT_TIMEOUT,
) -> WorkerReply:
    """Hand a task to the worker in ``folder`` and wait for its outcome, never more than
    ``timeout`` seconds without a word from the worker.

    Args:
        folder: the worker's folder (node config ``site-worker``).
        header: the task's plain values (client/app.py); the token is sent before it.
        arrays: the global weights, name -> numpy array.
        timeout: seconds each step may take: connecting, the welcome, handing over the
            task, and every frame after it (the worker's keep-alives come four times as
            often, so a long task is not cut short).

    Returns:
        the outcome.

    Raises:
        WorkerUnavailableError: no worker there, a folder or peer that is not private, a
            refused token, silence for ``timeout`` seconds, or a connection that broke
            before the outcome was complete, naming the socket and what happened; the worker
            cannot have charged the privacy ledger.
        WorkerLostAfterChargeError: the same, after the worker asked to charge the ledger
            and was let.
    """
    try:
        folder = private_folder(Path(folder), create=False)
    except WorkerFolderError as error:
        raise WorkerUnavailableError(str(error)) from error
    token = _read_token(folder / TOKEN_NAME)
    path = folder / SOCKET_NAME
    progress = _HandOver()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        try:
            _connect(connection, path, timeout)
            progress.stage = "waiting for its welcome"
            _introduce(connection, path, token, timeout)
            progress.stage = "handing over the task"
            send_frame(connection, {**header, SILENCE: timeout}, arrays, _after(timeout))
            progress.stage = "waiting for the outcome"
            return _await_outcome(connection, timeout, progress)
        except (OSError, WireError) as error:
            problem = f"site worker at {path}: {_silence(error, timeout)} while {progress.stage}"
            if progress.charged:
                raise WorkerLostAfterChargeError(problem) from error
            raise WorkerUnavailableError(problem) from error


@dataclasses.dataclass
class _HandOver:
    """How far a hand-over got: what it was doing (for the error if it breaks) and whether
    the worker was let charge the privacy ledger."""

    stage: str = "connecting"
    charged: bool = False


def _connect(connection: socket.socket, path: Path, timeout: float) -> None:
    """Connect to the worker's socket, every step within ``timeout`` seconds.

    Raises:
        WorkerUnavailableError: the socket is served by another user.
    """
    connection.settimeout(timeout)
    connection.connect(str(path))
    if peer_uid(connection) != os.getuid():
        raise WorkerUnavailableError(f"site worker at {path}: served by another user")


def _introduce(connection: socket.socket, path: Path, token: str, timeout: float) -> None:
    """Send the token and read the worker's welcome.

    Raises:
        WorkerUnavailableError: the worker refused (its reason, or "no welcome").
    """
    send_frame(connection, {TOKEN: token}, deadline=_after(timeout))
    welcome, _ = receive_frame(connection, HELLO_HEADER_BYTES, 0, _after(timeout))
    if welcome.get(WELCOME) is not True:
        refusal = welcome.get(REFUSED, "no welcome")
        raise WorkerUnavailableError(f"site worker at {path} refused the task: {refusal}")


def _await_outcome(connection: socket.socket, timeout: float, progress: _HandOver) -> WorkerReply:
    """Read frames until the outcome: keep-alives are skipped, a request to charge the
    ledger is granted (and recorded in ``progress``), anything else is the outcome."""
    while True:
        frame, frame_arrays = receive_frame(connection, deadline=_after(timeout))
        if frame.get(KEEP_ALIVE) is True:
            continue
        if frame.get(MAY_CHARGE) is True:
            progress.charged = True  # from here on the worker may have charged the ledger
            progress.stage = "waiting for the outcome, after letting it charge the privacy ledger"
            send_frame(connection, {CHARGE: True}, deadline=_after(timeout))
            continue
        return WorkerReply(frame, frame_arrays, progress.charged)


def _read_token(path: Path) -> str:
    """The worker's token; a missing one, or anything but a small plain file (a FIFO would
    block the read), is WorkerUnavailableError."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as error:
        raise WorkerUnavailableError(
            f"site worker token {path}: {error.strerror} (is the worker running?)"
        ) from error
    with os.fdopen(descriptor, "rb") as handle:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise WorkerUnavailableError(f"site worker token {path} is not a plain file")
        return handle.read(HELLO_HEADER_BYTES).decode(errors="replace").strip()


# -- the worker's side ---------------------------------------------------------------------

# header, arrays, confirm_charge -> reply header, reply arrays. The handler calls
# ``confirm_charge()`` right before it charges the site's privacy ledger; it raises
# ClientAppGoneError when the ClientApp has given up (then nothing may be charged).
TaskHandler = Callable[[dict[str, Any], dict, Callable[[], None]], tuple[dict[str, Any], dict]]


class TaskLink:
    """The worker's end of one handed-over task: keep-alives while the task waits and runs,
    the ClientApp's consent before the ledger is charged, the outcome.

    Args:
        connection: the task's connection (its token already checked).
        socket_path: the worker's socket, for the messages.
        keep_alive: seconds between keep-alives.
        timeout: seconds each frame sent, and the consent, may take.
    """

    def __init__(
        self, connection: socket.socket, socket_path: Path, keep_alive: float, timeout: float
    ) -> None:
        self.connection = connection
        self.socket_path = socket_path
        self.keep_alive = keep_alive
        self.timeout = timeout
        self.gone = False  # a keep-alive could not be sent: nobody is waiting any more
        self._sending = threading.Lock()

    def send(self, header: dict[str, Any], arrays: dict | None = None) -> None:
        # Both threads of a link give the socket the same timeout (settimeout is per socket).
        with self._sending:
            send_frame(self.connection, header, arrays, deadline=_after(self.timeout))

    @contextlib.contextmanager
    def keeping_alive(self) -> Iterator[None]:
        """Send keep-alives from a thread while the block runs."""
        done = threading.Event()

        def beat() -> None:
            while not done.wait(self.keep_alive):
                try:
                    self.send({KEEP_ALIVE: True})
                except (OSError, WireError):
                    self.gone = True
                    return

        thread = threading.Thread(target=beat, name="site-worker-keep-alive", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join()

    def peer_gone(self) -> bool:
        """Whether the ClientApp has closed its end (or a keep-alive could not reach it)."""
        if self.gone:
            return True
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            # The ClientApp sends nothing unasked: readable here means its end was closed.
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def confirm_charge(self) -> None:
        """Ask the ClientApp before the site's privacy ledger is charged for this task.

        Raises:
            ClientAppGoneError: the ClientApp has given up, or did not answer within the
                timeout: the caller must not charge (nor train).
        """
        refused = (
            f"the ClientApp on {self.socket_path} gave up on the task before the privacy "
            "ledger was charged; nothing is charged and the round is not trained here"
        )
        if self.peer_gone():
            raise ClientAppGoneError(refused)
        try:
            self.send({MAY_CHARGE: True})
            answer, _ = receive_frame(
                self.connection, HELLO_HEADER_BYTES, 0, deadline=_after(self.timeout)
            )
        except (OSError, WireError) as error:
            raise ClientAppGoneError(f"{refused} ({_silence(error, self.timeout)})") from error
        if answer.get(CHARGE) is not True:
            raise ClientAppGoneError(f"{refused} (it answered {str(answer)[:80]})")


class SiteWorker:
    """Serves tasks on ``<folder>/worker.sock``, one at a time (a SuperNode sends one);
    each connection is read in its own thread, within ``timeout`` seconds.

    Raises:
        WorkerFolderError: the folder cannot be used (:func:`check_folder`).
        ValueError: a timeout that is not a positive number of seconds.
    """

    def __init__(self, folder: Path, handle: TaskHandler, timeout: float = DEFAULT_TIMEOUT) -> None:
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"site worker timeout {timeout} is not a positive number of seconds")
        self.timeout = timeout
        self.folder = check_folder(Path(folder), timeout)
        self.socket_path = self.folder / SOCKET_NAME
        self.token_path = self.folder / TOKEN_NAME
        self.handle = handle
        self.tasks = 0
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._token = ""
        self._task_turn = threading.Lock()  # one task at a time
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self._connections: list[threading.Thread] = []

    def start(self) -> None:
        """Write a new token and listen; refuses when another worker serves the folder.

        Raises:
            WorkerFolderError: another worker listens there, something else is in the way,
                or the token or socket cannot be written; the message names the path.
        """
        if _socket_is_stale(self.socket_path, self.timeout):
            self.socket_path.unlink()
            logger.info("removed %s, left by a worker that was killed", self.socket_path)
        self._token = secrets.token_hex(32)
        try:
            with contextlib.suppress(FileNotFoundError):
                self.token_path.unlink()
            descriptor = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "w") as handle:
                handle.write(self._token)
        except OSError as error:
            raise WorkerFolderError(
                f"site worker cannot write its token {self.token_path}: {error.strerror}"
            ) from error
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_mask = os.umask(0o177)  # the socket file is created 0600
        try:
            listener.bind(str(self.socket_path))
        except OSError as error:
            listener.close()
            raise WorkerFolderError(
                f"site worker cannot listen on {self.socket_path}: {error.strerror or error}"
            ) from error
        finally:
            os.umask(old_mask)
        listener.listen(MAX_CONNECTIONS)
        listener.settimeout(0.5)  # to notice stop() between connections
        self._listener = listener
        logger.info("site worker listening on %s", self.socket_path)

    def serve_forever(self) -> None:
        """Answer connections until :meth:`stop` (or SIGTERM / SIGINT via :func:`serve`);
        then stop listening and let the connections still open finish."""
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
                self._open(connection)
        finally:
            self.close()
            for thread in self._connections:
                thread.join()

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

    def _open(self, connection: socket.socket) -> None:
        """Read ``connection`` in a thread of its own, if a slot is free."""
        if not self._slots.acquire(blocking=False):
            logger.warning(
                "closed a connection on %s: %d are open already", self.socket_path, MAX_CONNECTIONS
            )
            connection.close()
            return

        def serve_connection() -> None:
            try:
                with connection:
                    self._answer(connection)
            finally:
                self._slots.release()

        self._connections = [thread for thread in self._connections if thread.is_alive()]
        thread = threading.Thread(target=serve_connection, name="site-worker-connection")
        self._connections.append(thread)
        thread.start()

    def _answer(self, connection: socket.socket) -> None:
        try:
            uid = peer_uid(connection)
            if uid != os.getuid():
                logger.warning("refused a connection from uid %d", uid)
                return
            if not self._welcomed(connection):
                return
            header, arrays = receive_frame(connection, deadline=_after(self.timeout))
            keep_alive = _keep_alive_seconds(header.pop(SILENCE, None), self.timeout)
            link = TaskLink(connection, self.socket_path, keep_alive, self.timeout)
            with link.keeping_alive(), self._task_turn:
                if link.peer_gone():
                    logger.warning(
                        "the ClientApp on %s gave up on a %s task before its turn; not done",
                        self.socket_path,
                        header.get("kind"),
                    )
                    return
                began = time.perf_counter()
                reply, reply_arrays = self.handle(header, arrays, link.confirm_charge)
                self.tasks += 1
                logger.info(
                    "task %d (%s) answered in %.2f s",
                    self.tasks,
                    header.get("kind"),
                    time.perf_counter() - began,
                )
            link.send(reply, reply_arrays)
        except (OSError, WireError) as error:
            logger.warning("dropped a connection on %s: %s", self.socket_path, error)
        except Exception:  # a bug answering one task must not stop the site's worker
            logger.exception("failed to answer a task; the ClientApp will do it itself")

    def _welcomed(self, connection: socket.socket) -> bool:
        """Whether the connection's hello carries the token (then it is welcomed). Before
        that a frame may declare no more than a hello holds: nothing larger is read or
        reserved."""
        try:
            hello, _ = receive_frame(
                connection, HELLO_HEADER_BYTES, 0, deadline=_after(self.timeout)
            )
        except WireTimeoutError:
            raise
        except WireError as error:
            self._refuse(connection, f"not a hello: {error}")
            return False
        token = str(hello.get(TOKEN, "")).encode()
        if not hmac.compare_digest(token, self._token.encode()):
            self._refuse(connection, "wrong token (was the worker restarted?)")
            return False
        send_frame(connection, {WELCOME: True}, deadline=_after(self.timeout))
        return True

    def _refuse(self, connection: socket.socket, reason: str) -> None:
        logger.warning("refused a connection on %s: %s", self.socket_path, reason)
        with contextlib.suppress(OSError, WireError):
            send_frame(connection, {REFUSED: reason}, deadline=_after(self.timeout))


def _keep_alive_seconds(silence: Any, timeout: float) -> float:
    """A quarter of the silence the ClientApp allows (the worker's timeout if it named none
    that makes sense)."""
    if isinstance(silence, bool) or not isinstance(silence, int | float):
        silence = timeout
    if not (math.isfinite(silence) and silence > 0):
        silence = timeout
    return max(MIN_KEEP_ALIVE_SECONDS, silence / 4)


def serve(folder: Path, handle: TaskHandler, timeout: float = DEFAULT_TIMEOUT) -> SiteWorker:
    """Run a worker in this process until SIGTERM or SIGINT; returns it once stopped."""
    worker = SiteWorker(folder, handle, timeout)
    worker.start()

    def stop(signum: int, frame: Any) -> None:
        worker.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    worker.serve_forever()
    return worker
