"""Run one federated experiment through Flower's simulation engine (`flwr run .`).

The experiment runs exactly as a user's simulation does: the project's ServerApp and
ClientApp (pyproject.toml's ``[tool.flwr.app.components]``) under `flwr run . --stream`,
a subprocess started in the project root with

- its own ``FLWR_HOME`` (the experiment's ``flwr-home/``) and free ports for the local
  SuperLink that `flwr run` starts, so it never meets another job's SuperLink;
- ``FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1``: the apps run in this environment
  (otherwise Flower builds a fresh one per run with ``uv sync``);
- the Hydra overrides in a run-config TOML file (``overrides = "..."``), which keeps any
  quoting intact (an inline ``--run-config`` value cannot hold a double quote);
- the output in ``flwr.log`` and a time limit.

`flwr run` leaves its SuperLink running; it is always stopped afterwards, with everything it
started (simulation, Ray), by process id: every process of the experiment carries
``CARDIOMM_STUDY_RUN=<the experiment's folder>`` in its environment
(:mod:`simulations.study.processes`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from client.site_config import SITE_CONFIG_VARIABLE
from federation.records import HISTORY_FILE, read_history
from simulations.study import processes

logger = logging.getLogger(__name__)

RUN_CONFIG_FILE = "run_config.toml"
LOG_FILE = "flwr.log"
FINAL_CHECKPOINT = Path("checkpoints") / "final.pt"
ANSI_COLOUR = re.compile(r"\x1b\[[0-9;]*m")


class FlowerRunError(RuntimeError):
    """`flwr run` failed, timed out or left no final model; the message holds the log tail."""


@dataclasses.dataclass(frozen=True)
class FlowerRun:
    """One `flwr run .` of a federated experiment.

    Attributes:
        output_dir: the experiment's folder (the federation's ``output_dir``).
        overrides: Hydra overrides of ``configs/federation.yaml`` for both apps.
        num_sites: simulated SuperNodes (the fold's internal sites).
        rounds: rounds the federation must have completed.
        client_cpus: CPU cores reserved per simulated site.
        client_gpus: share of a GPU per simulated site (0 on CPU).
        timeout: seconds before the run is stopped as failed.
        site_config: the simulated sites' own settings file (their data, threads, DP-SGD
            budget: client/site_config.py), given to them as $CARDIOMM_SITE_CONFIG.
    """

    output_dir: Path
    overrides: tuple[str, ...]
    num_sites: int
    rounds: int
    client_cpus: float = 1.0
    client_gpus: float = 0.0
    timeout: float = 7200.0
    site_config: Path | None = None


@dataclasses.dataclass(frozen=True)
class FlowerRunResult:
    """What the run left: the final model, the history, its log, its wall time, and the
    processes it left running that were stopped (the SuperLink at least), and of those the
    ones that needed SIGKILL."""

    final_checkpoint: Path
    history: Path
    log: Path
    wall_seconds: float
    stopped: tuple[int, ...]
    killed: tuple[int, ...]


def app_root() -> Path:
    """The Flower app's folder: the project root holding pyproject.toml and server/app.py."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "pyproject.toml").is_file() or not (root / "server" / "app.py").is_file():
        raise FileNotFoundError(
            f"{root}: no pyproject.toml with server/app.py; federated experiments run the "
            "project's Flower app with `flwr run .`, so install it from its source tree "
            "(pip install -e .)"
        )
    return root


def flwr_executable() -> Path:
    """The `flwr` CLI of this environment (beside the Python running the study)."""
    beside = Path(sys.executable).parent / "flwr"
    if beside.is_file():
        return beside
    found = shutil.which("flwr")
    if found is None:
        raise FileNotFoundError(
            "no `flwr` command beside the Python running the study nor on PATH; install the "
            "project with its Flower extra (pip install -e .)"
        )
    return Path(found)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_run_config(path: Path, overrides: Sequence[str]) -> Path:
    """The run-config TOML file: ``overrides`` as the one string the apps split with shlex."""
    text = shlex.join(overrides)
    # A JSON string of ASCII is a valid TOML basic string (same escapes).
    path.write_text(f"overrides = {json.dumps(text, ensure_ascii=True)}\n")
    return path


def run_flower_simulation(run: FlowerRun) -> FlowerRunResult:
    """Run the federation with `flwr run . --stream`; always stop what it started.

    Raises:
        FlowerRunError: non-zero exit, time limit, or no final checkpoint / history with
            ``run.rounds`` rounds afterwards (the message holds the log's tail).
    """
    output_dir = Path(run.output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    marker = str(output_dir)
    _stop_earlier_attempt(marker)
    final, history = output_dir / FINAL_CHECKPOINT, output_dir / HISTORY_FILE
    # Written again at the end of a successful run (a resumed one restores its history from
    # the last round's checkpoint); stale copies would make a failed attempt look finished.
    final.unlink(missing_ok=True)
    history.unlink(missing_ok=True)
    config_path = write_run_config(output_dir / RUN_CONFIG_FILE, run.overrides)
    log_path = output_dir / LOG_FILE
    command = _flwr_command(run, config_path)
    env = _environment(output_dir / "flwr-home", marker, run.client_cpus)
    if run.site_config is not None:
        env[SITE_CONFIG_VARIABLE] = str(Path(run.site_config).resolve())
    started = time.monotonic()
    seen: set[int] = set()
    with open(log_path, "ab") as log:
        log.write(f"$ {shlex.join(command)}\n".encode())
        log.flush()
        popen = subprocess.Popen(
            command,
            cwd=app_root(),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            # If the study itself is killed, `flwr run` goes too (the SuperLink is detached:
            # the next attempt of this experiment stops it through the marker).
            preexec_fn=processes.die_with_parent if sys.platform.startswith("linux") else None,
        )
        timed_out = False
        try:
            while popen.poll() is None:
                seen.update(processes.descendants(popen.pid))
                if time.monotonic() - started > run.timeout:
                    timed_out = True
                    break
                time.sleep(1.0)
        finally:
            stopped, killed = _stop_everything(popen, marker, seen)
    wall = time.monotonic() - started
    _check_finished(run, timed_out, popen.returncode, final, history, log_path)
    return FlowerRunResult(final, history, log_path, wall, tuple(stopped), tuple(killed))


def _stop_earlier_attempt(marker: str) -> None:
    """Stop the processes an interrupted earlier attempt of this very experiment left (they
    carry ``marker``): they would hold the FLWR_HOME state and the checkpoint folder."""
    leftovers = processes.marked(marker)
    if leftovers:
        logger.warning("stopping %d process(es) left by an earlier attempt", len(leftovers))
        processes.stop(leftovers)


def _flwr_command(run: FlowerRun, config_path: Path) -> list[str]:
    """`flwr run . --stream` with the run config file and the simulation's nodes and their
    resources."""
    return [
        str(flwr_executable()),
        "run",
        ".",
        "--stream",
        "--run-config",
        str(config_path),
        "--federation-config",
        f"num-supernodes={run.num_sites} client-resources-num-cpus={_number(run.client_cpus)} "
        f"client-resources-num-gpus={_number(run.client_gpus)}",
    ]


def _check_finished(
    run: FlowerRun,
    timed_out: bool,
    returncode: int | None,
    final: Path,
    history: Path,
    log_path: Path,
) -> None:
    """Raise FlowerRunError (with the log's tail) unless `flwr run` exited 0 in time and left
    the final checkpoint and a history of ``run.rounds`` rounds."""
    tail = log_tail(log_path)
    reason = _reason(tail)
    if timed_out:
        raise FlowerRunError(
            f"flwr run timed out after {run.timeout:.0f} s (study.experiment_timeout); "
            f"log {log_path}:\n{tail}"
        )
    if returncode != 0:
        raise FlowerRunError(f"flwr run exited {returncode}{reason}; log {log_path}:\n{tail}")
    # `flwr run --stream` exits 0 even when the ServerApp raised: the outputs decide.
    completed = _completed_rounds(history)
    if not final.is_file() or completed < run.rounds:
        raise FlowerRunError(
            f"the federation did not finish{reason} ({completed} of {run.rounds} rounds in "
            f"{history}, {final} {'exists' if final.is_file() else 'missing'}); "
            f"log {log_path}:\n{tail}"
        )


def _environment(flwr_home: Path, marker: str, client_cpus: float) -> dict[str, str]:
    flwr_home.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    ports = set()
    while len(ports) < 2:
        ports.add(free_port())
    http_port, control_port = sorted(ports)
    bin_dir = str(Path(sys.executable).parent)
    env.update(
        {
            "FLWR_HOME": str(flwr_home),
            "FLWR_LOCAL_SUPERLINK_HTTP_API_PORT": str(http_port),
            "FLWR_LOCAL_CONTROL_API_PORT": str(control_port),
            "FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION": "1",
            # Offline machines: no update check against Flower's servers.
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            # `flwr run` starts `flower-superlink` by name: this environment's.
            "PATH": f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONUNBUFFERED": "1",
            processes.MARKER: marker,
        }
    )
    # Sites share the machine's cores: each gets the threads of its reserved cores.
    env.setdefault("OMP_NUM_THREADS", str(max(1, int(client_cpus))))
    return env


def _stop_everything(
    popen: subprocess.Popen, marker: str, seen: set[int]
) -> tuple[list[int], list[int]]:
    """Stop `flwr run` (if still running), its SuperLink and all they started.

    Returns:
        (the processes found still running and stopped, those that needed SIGKILL).
    """
    if popen.poll() is None:
        seen.update(processes.descendants(popen.pid))
        processes.stop([popen.pid])
    popen.wait()
    ours = set(processes.marked(marker)) | {pid for pid in seen if processes.alive(pid)}
    # The SuperLink first (it ends its simulation), then whatever is left of the tree.
    superlinks = [pid for pid in ours if "flower-superlink" in processes.command_line(pid)]
    for pid in superlinks:
        ours.update(processes.descendants(pid))
    stopped = sorted(pid for pid in ours if processes.alive(pid))
    if stopped:
        logger.info(
            "stopping %d process(es) of the run (SuperLink %s)", len(stopped), superlinks or "-"
        )
    killed = processes.stop(superlinks)
    killed += processes.stop(ours - set(superlinks))
    return stopped, killed


def _completed_rounds(history: Path) -> int:
    try:
        records = read_history(history)
    except (OSError, ValueError):
        return 0
    return max((record.round for record in records), default=0)


def _reason(tail: str) -> str:
    """``: <the last exception line of the log>``, or nothing when there is none."""
    errors = [
        line.strip()
        for line in tail.splitlines()
        if re.match(r"^\s*[A-Za-z_.]*(Error|Exception): ", line)
    ]
    return f": {errors[-1]}" if errors else ""


def log_tail(path: Path, lines: int = 40) -> str:
    """The last lines of a log file, without colour codes."""
    try:
        text = ANSI_COLOUR.sub("", path.read_text(errors="replace"))
    except OSError:
        return f"<{path} missing>"
    return "\n".join(text.splitlines()[-lines:])


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"
