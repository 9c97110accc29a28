"""A real site-worker process with a stand-in task handler, so that it starts in a fraction
of a second (no model stack): ``python -m tests.client.stand_in_worker FOLDER TIMEOUT MODE``.

MODE ``echo`` answers every task with an empty outcome; ``charge-then-stop`` asks its
ClientApp to charge the privacy ledger and, once let, stops itself (SIGSTOP), as a worker
frozen in the middle of a DP-SGD round would. :func:`worker_process` starts one for a test;
:func:`impostor` holds a worker folder's socket without being a worker.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from client.worker import SOCKET_NAME, TOKEN_NAME, SiteWorker

REPOSITORY = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def worker_process(folder: Path, mode: str = "echo", timeout: float = 30.0):
    """A real worker process serving ``folder``, yielded once it listens; always continued
    and killed afterwards."""
    log, ready = _log(folder), _ready(folder)
    with open(log, "w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.client.stand_in_worker", str(folder), str(timeout), mode],
            cwd=REPOSITORY,
            stdout=output,
            stderr=output,
            stdin=subprocess.DEVNULL,
        )
    try:
        started = time.monotonic()
        while not ready.exists():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() - started < 20, f"no worker after 20 s: {log.read_text()}"
            time.sleep(0.02)
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.kill()
        process.wait(10)


def impostor(folder: Path) -> socket.socket:
    """A listener on the socket of a new worker folder (with a token, as a worker leaves):
    it accepts nothing and says nothing unless the test makes it."""
    folder.mkdir(mode=0o700)
    (folder / TOKEN_NAME).write_text("token")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(folder / SOCKET_NAME))
    listener.listen(1)
    return listener


def main() -> None:
    folder, timeout, mode = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]

    def handle(header, arrays, confirm_charge):
        if mode == "charge-then-stop":
            confirm_charge()
            os.kill(os.getpid(), signal.SIGSTOP)
        return {"metrics": {"stand-in": 1.0}}, {}

    worker = SiteWorker(folder, handle, timeout)
    worker.start()
    _ready(folder).touch()  # listening: a connection from now on waits in the backlog
    worker.serve_forever()


def _log(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.log"


def _ready(folder: Path) -> Path:
    return folder.parent / f"{folder.name}.ready"


if __name__ == "__main__":
    main()
