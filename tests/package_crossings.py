"""Count the calls between the project's packages along one real piece of work.

A *crossing* is a call into a function of one top-level package (``client``, ``federation``,
``cardiomm``, ...) whose nearest calling project frame belongs to another: calls through
torch or the standard library count for the project frame that made them, and calls inside
one package do not count. A crossing goes *down* when the callee's package sits below the
caller's in the layering (tests/test_layering.py) and *up* otherwise (a callback, or an
object of a higher package that the lower one was handed). Every Python call counts once
(``sys.setprofile``'s ``call`` events, generator resumptions included), so a loop that
crosses on every pass counts every pass; :attr:`Crossings.edges` holds the distinct
(caller, callee) functions.

    PYTHONPATH=$PWD .venv/bin/python -m tests.package_crossings

prints the crossings of a site's DP-SGD train task with a privacy policy and a target
epsilon (policy check, calibration, budget, ledger, training, validation), run from
:func:`client.tasks.run_task` on the tests' tiny consortium.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

# Lower index: lower layer (tests/test_layering.py).
LAYERS = ("cardiomm", "federation", "strategies", "client", "server")


@dataclasses.dataclass
class Crossings:
    """The crossings seen: ``down`` and ``up`` counts, and each distinct edge's count."""

    down: int = 0
    up: int = 0
    edges: collections.Counter = dataclasses.field(default_factory=collections.Counter)

    @property
    def total(self) -> int:
        return self.down + self.up

    def between(self, first: str, second: str) -> tuple[int, int]:
        """(calls from ``first`` into ``second``, calls back) over the edges."""
        there = sum(
            n for (a, b), n in self.edges.items() if (_package(a), _package(b)) == (first, second)
        )
        back = sum(
            n for (a, b), n in self.edges.items() if (_package(a), _package(b)) == (second, first)
        )
        return there, back


def _package(qualified: str) -> str:
    return qualified.split(".", 1)[0]


def _project_package(frame: FrameType) -> str | None:
    name = frame.f_globals.get("__name__", "")
    top = name.split(".", 1)[0]
    return top if top in LAYERS else None


def _where(frame: FrameType) -> str:
    return f"{frame.f_globals.get('__name__', '?')}.{frame.f_code.co_qualname}"


@contextlib.contextmanager
def counting() -> Iterator[Crossings]:
    """Count the crossings of the calls made inside the ``with`` block (this thread)."""
    seen = Crossings()

    def profile(frame: FrameType, event: str, _: Any) -> None:
        if event != "call":
            return
        callee = _project_package(frame)
        if callee is None:
            return
        caller_frame = frame.f_back
        while caller_frame is not None and _project_package(caller_frame) is None:
            caller_frame = caller_frame.f_back
        if caller_frame is None:
            return
        caller = _project_package(caller_frame)
        if caller == callee:
            return
        if LAYERS.index(callee) < LAYERS.index(caller):
            seen.down += 1
        else:
            seen.up += 1
        seen.edges[(_where(caller_frame), _where(frame))] += 1

    previous = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield seen
    finally:
        sys.setprofile(previous)


POLICY = """\
max_epsilon_per_run: 100.0
max_epsilon_total: 1000.0
delta: 1.0e-5
min_noise_multiplier: 0.1
allowed_mechanisms: [dp_sgd, secure_aggregation]
required_mechanisms: [dp_sgd]
ledger: ledger.json
"""


def private_train_task(folder: Path) -> Any:
    """A round-1 train task (two local steps) of a DP-SGD site with a privacy policy and a
    target epsilon, on the tests' two-site consortium written under ``folder``."""
    from tests.builders import write_consortium
    from tests.client.test_site_worker_ledger import _task

    root = folder / "consortium"
    root.mkdir()
    write_consortium(root)
    policy = folder / "policy.yaml"
    policy.write_text(POLICY)
    return _task(
        f"data.root={root} data.synthetic_preset=null data.val_fraction=0.2 text=none "
        f"privacy=dp_sgd privacy.policy={policy} privacy.dp_sgd.target_epsilon=50"
    )


def private_train_crossings() -> tuple[Crossings, Any]:
    """(the crossings of :func:`private_train_task` run by ``run_task`` as a warm site
    worker runs it: networks from its cache (client/model_cache.py), a ``confirm_charge``
    callback before the ledger's charge; the task's outcome)."""
    from client.model_cache import ModelCache
    from client.tasks import run_task

    cache = ModelCache()
    with tempfile.TemporaryDirectory() as folder:
        task = private_train_task(Path(folder))
        run_task(task, cache, lambda: None)  # warm: imports and caches out of the count
        with counting() as seen:
            outcome = run_task(task, cache, lambda: None)
    return seen, outcome


def main() -> None:
    seen, outcome = private_train_crossings()
    assert outcome.error_code == 0, outcome.reason
    there, back = seen.between("client", "cardiomm")
    print(f"crossings: {seen.total} ({seen.down} down, {seen.up} up)")
    print(f"client -> cardiomm: {there}, cardiomm -> client: {back}")
    print(f"distinct edges: {len(seen.edges)}")
    for (caller, callee), count in sorted(seen.edges.items()):
        print(f"  {count:4d}  {caller} -> {callee}")


if __name__ == "__main__":
    main()
