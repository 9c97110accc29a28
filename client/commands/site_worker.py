"""``cardiomm site-worker``: a site's warm worker, started beside its SuperNode."""

from __future__ import annotations

import argparse
import logging
import math
from pathlib import Path

NAME = "site-worker"
HELP = (
    "Keep torch, the text encoder, the network and the data index warm between Flower "
    "messages: the site's ClientApp (node config site-worker=FOLDER) hands its tasks here "
    "over a Unix socket in FOLDER (mode 0700, this user only, a new token per start)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "folder",
        type=Path,
        help="the worker's private folder (created 0700): the socket and token live there",
    )
    parser.add_argument(
        "--networks",
        type=int,
        default=2,
        help="model settings kept built at once (default 2: DP-SGD builds its own)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        help=(
            "seconds a connection has to show its token and hand over its task, and a "
            "ClientApp to take each reply (default 30); a silent one is dropped"
        ),
    )


def _seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return seconds


def run(args: argparse.Namespace) -> int:
    """Serve until SIGTERM / SIGINT. A folder or socket that cannot be used is a
    WorkerFolderError (a ValueError): the CLI prints its one line and exits with code 2."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    from client.worker import DEFAULT_TIMEOUT, check_folder, serve

    timeout = args.timeout or DEFAULT_TIMEOUT
    # Checked before the model stack is imported: a wrong folder is said at once.
    check_folder(args.folder, timeout)
    # Imported before the first task: the point of the worker is to pay this once.
    from client.model_cache import ModelCache
    from client.tasks import worker_handler

    worker = serve(args.folder, worker_handler(ModelCache(args.networks)), timeout)
    logging.getLogger(__name__).info("site worker stopped after %d task(s)", worker.tasks)
    return 0
