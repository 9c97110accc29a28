"""Fixtures of the ClientApp's tests."""

import threading

import pytest

from client.model_cache import ModelCache
from client.tasks import worker_handler
from client.worker import SiteWorker


@pytest.fixture
def worker(tmp_path):
    """A worker serving ``tmp_path/worker`` from a thread of this process."""
    cache = ModelCache()
    running = SiteWorker(tmp_path / "worker", worker_handler(cache))
    running.start()
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    running.cache = cache
    yield running
    running.stop()
    thread.join(10)
