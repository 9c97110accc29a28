"""``cardiomm site-worker``: a site's warm worker, started beside its SuperNode."""

from __future__ import annotations

import argparse
import logging
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


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Imported before the first task: the point of the worker is to pay this once.
    from client.model_cache import ModelCache
    from client.tasks import worker_handler
    from client.worker import WorkerFolderError, serve

    try:
        worker = serve(args.folder, worker_handler(ModelCache(args.networks)))
    except WorkerFolderError as error:
        logging.getLogger(__name__).error("%s", error)
        return 2
    logging.getLogger(__name__).info("site worker stopped after %d task(s)", worker.tasks)
    return 0
