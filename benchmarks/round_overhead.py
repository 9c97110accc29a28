"""Where a federated round's time goes: the sites' work against start-up and Flower's messaging.

Runs a small consortium (3 training sites of the tiny synthetic set; model small, 20 local
steps by default) as a Flower simulation (`flwr run .`, Ray workers), as a loopback
deployment (TLS SuperLink and one authenticated SuperNode per site as separate processes,
started with the deploy/ scripts) three ways, before and after in one run:
`deployment-before` is Flower 1.42 as it comes: weights one array per tensor
(`federation.pack_arrays=false`), replies looked for every 3 s, the SuperExec's 1 s poll, and
each ClientApp process doing its own work; `deployment` packs them into one array per
dtype (federation/array_packing.py); `deployment-warm` also hands each message's work to a
warm site worker beside every SuperNode (`cardiomm site-worker`, client/worker.py).
Every round's wall time is broken down by cause, from the round's history.json and the
per-site figures each reply carries (client/startup.py):

- process start: the ClientApp process's start until the project's imports (interpreter,
  Flower, pulling the message and the app bundle);
- imports: the project's stack, torch included;
- setup: configuration and the site's data index;
- model build: the network and its text encoder (a warm worker: copying its network);
- handoff: the ClientApp handing the task to the warm worker and taking the outcome back;
- compute: training (train phase) or evaluation (evaluate phase);
- Flower messaging and polling: the rest of the phase (delivery, the SuperNodes' and the
  ServerApp's polling, the transfers).

Each phase waits for its slowest site: per phase, the causes are that site's, and the rest is
Flower's. The overhead is everything but compute, as a share of the round.

    .venv/bin/python benchmarks/round_overhead.py                  # all four, 2 rounds each
    .venv/bin/python benchmarks/round_overhead.py --mode simulation --model paper --local-steps 1
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from federation.protocol import (
    BUILD_SECONDS,
    EVAL_SECONDS,
    HANDOFF_SECONDS,
    IMPORT_SECONDS,
    PROCESS_SECONDS,
    SETUP_SECONDS,
    SITE_WORKER_ANSWERED,
    TRAIN_SECONDS,
)
from federation.records import RoundRecord, read_history

_POLL_ENV = "FLWR_SUPEREXEC_TASK_POLL_INTERVAL"
MODES = ("simulation", "deployment-before", "deployment", "deployment-warm")
CAUSES = ("process", "imports", "setup", "build", "handoff", "compute", "messaging")
_SITE_KEYS = {
    "process": PROCESS_SECONDS,
    "imports": IMPORT_SECONDS,
    "setup": SETUP_SECONDS,
    "build": BUILD_SECONDS,
    "handoff": HANDOFF_SECONDS,
}
_COMPUTE = {"train": TRAIN_SECONDS, "evaluate": EVAL_SECONDS}
_PHASE = {"train": "train-phase-seconds", "evaluate": "evaluate-phase-seconds"}


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mode",
        nargs="+",
        default=list(MODES),
        choices=MODES,
    )
    parser.add_argument("--model", default="small", help="configs/model size (default small)")
    parser.add_argument("--local-steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sites", type=int, default=3)
    parser.add_argument("--text", default="minilm", help="text encoder (default minilm)")
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        help="one more Hydra override of every run (repeatable), e.g. federation.pack_arrays=false",
    )
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--workdir", type=Path, help="keep the runs here (default: temporary)")
    return parser.parse_args()


def main() -> int:
    args = _parse()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="round-overhead-"))
    overrides = [
        f"model={args.model}",
        f"text={args.text}",
        f"federation.num_rounds={args.rounds}",
        f"federation.local_steps={args.local_steps}",
        f"federation.min_sites={args.sites}",
        "federation.global_evaluation=false",
        "federation.cross_site.enabled=false",
        "tracking.enabled=false",
        *args.override,
    ]
    figures: dict[str, Any] = {"settings": vars(args) | {"workdir": str(workdir)}}
    for mode in args.mode:
        output = workdir / mode
        began = time.monotonic()
        run_overrides = [*overrides, f"output_dir={output}"]
        if mode == "deployment-before":
            run_overrides += ["federation.pack_arrays=false", "federation.reply_poll_seconds=3"]
        if mode == "simulation":
            history = _simulate(run_overrides, output, args.sites, args.rounds)
        else:
            # Flower's default SuperExec poll for "before", deploy/supernode.sh's otherwise.
            os.environ[_POLL_ENV] = "1.0" if mode == "deployment-before" else "0.2"
            history = _deploy(run_overrides, output, args.sites, warm=mode == "deployment-warm")
        figures[mode] = {
            "wall-seconds": time.monotonic() - began,
            "rounds": [breakdown(record) for record in history],
            "warm-replies": warm_replies(history),
        }
        _print(mode, figures[mode]["rounds"], args)
        served, replies = figures[mode]["warm-replies"]
        print(f"answered by a warm site worker: {served} of {replies} replies")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


def _simulate(overrides: list[str], output: Path, sites: int, rounds: int) -> list[RoundRecord]:
    from simulations.study.flower_run import FlowerRun, run_flower_simulation

    result = run_flower_simulation(
        FlowerRun(output_dir=output, overrides=tuple(overrides), num_sites=sites, rounds=rounds)
    )
    return read_history(result.history)


def _deploy(overrides: list[str], output: Path, sites: int, warm: bool) -> list[RoundRecord]:
    from cardiomm.cohort.data_root import resolve_data_root
    from federation.config import compose_overrides
    from simulations.loopback_deployment import Deployment, wait_for

    data = resolve_data_root(compose_overrides(" ".join(overrides)).data, show_progress=False)
    centres = sorted(path.name for path in data.rglob("Center*") if path.is_dir())
    centres = list(dict.fromkeys(centres))[:sites]
    with Deployment(output.parent / f"{output.name}-processes", num_keys=sites) as deployment:
        # In-memory state: SQLite's file lock made the SuperLink answer 500 under load
        # ("database is locked" on push-object), failing the run; timing is what is measured.
        deployment.start_superlink(database=":flwr-in-memory:")
        node_ids = deployment.register(*range(1, sites + 1))
        for index, centre in enumerate(centres, start=1):
            worker = deployment.start_site_worker(index)[1] if warm else None
            deployment.start_supernode(index, centre, data, site_worker=worker)
        wait_for(
            lambda: deployment.online_nodes() >= set(node_ids),
            120,
            "SuperNodes online",
            interval=1.0,
            details=deployment.log_tails,
        )
        run_id, status, _ = deployment.run_app(" ".join(overrides), timeout=3600)
        if status != "finished:completed":
            raise RuntimeError(f"run {run_id} ended {status}\n{deployment.run_log(run_id)}")
    return read_history(output / "history.json")


def breakdown(record: RoundRecord) -> dict[str, float]:
    """Seconds per cause of one round (the slowest site's per phase, the rest Flower's)."""
    causes = dict.fromkeys(CAUSES, 0.0)
    for phase in ("train", "evaluate"):
        wall = float(record.timing.get(_PHASE[phase], 0.0))
        sites = [getattr(site, phase) for site in record.sites.values() if getattr(site, phase)]
        if not sites:
            causes["messaging"] += wall
            continue
        slowest = max(sites, key=lambda metrics: _site_total(metrics, phase))
        for cause, key in _SITE_KEYS.items():
            causes[cause] += _finite(slowest.get(key))
        causes["compute"] += _finite(slowest.get(_COMPUTE[phase]))
        causes["messaging"] += max(0.0, wall - _site_total(slowest, phase))
    causes["round"] = float(record.timing.get("round-seconds", sum(causes.values())))
    causes["overhead-share"] = (
        1.0 - causes["compute"] / causes["round"] if causes["round"] else math.nan
    )
    return causes


def warm_replies(history: list[RoundRecord]) -> list[int]:
    """[replies a warm site worker answered, replies] over the run's train and evaluate
    phases."""
    replies = [
        metrics
        for record in history
        for site in record.sites.values()
        for metrics in (site.train, site.evaluate)
        if metrics
    ]
    return [
        sum(_finite(metrics.get(SITE_WORKER_ANSWERED)) == 1.0 for metrics in replies),
        len(replies),
    ]


def _site_total(metrics: dict[str, Any], phase: str) -> float:
    return sum(_finite(metrics.get(key)) for key in (*_SITE_KEYS.values(), _COMPUTE[phase]))


def _finite(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else 0.0


def _print(mode: str, rounds: list[dict[str, float]], args: argparse.Namespace) -> None:
    print(
        f"\n{mode}: {args.sites} sites, model {args.model}, text {args.text}, "
        f"{args.local_steps} local steps, {len(rounds)} rounds (seconds per round)"
    )
    header = ["round", "wall", *CAUSES, "overhead"]
    print(" | ".join(f"{name:>9}" for name in header))
    for number, causes in enumerate(rounds, start=1):
        cells = [str(number), f"{causes['round']:.1f}"]
        cells += [f"{causes[cause]:.2f}" for cause in CAUSES]
        cells.append(f"{100 * causes['overhead-share']:.0f} %")
        print(" | ".join(f"{cell:>9}" for cell in cells))
    if len(rounds) > 1:  # the first round pays one-off start-up (Ray, indexes) in simulation
        later = rounds[1:]
        share = statistics.mean(causes["overhead-share"] for causes in later)
        print(f"overhead after round 1: {100 * share:.0f} % of the round")


if __name__ == "__main__":
    sys.exit(main())
