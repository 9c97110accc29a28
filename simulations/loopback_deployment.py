"""A real Flower deployment on loopback, for the deployment test and the round-overhead
benchmark: SuperLink, SuperNodes and the `flwr` CLI.

Every process is started through the scripts in ``deploy/`` with its own ``FLWR_HOME``,
on free ports, with stdout/stderr captured to a log file; :meth:`Deployment.close` stops
each started process and the children it spawned (SuperExec, ServerApp, ClientApps) by
process id, so use it as a context manager (or in a ``finally``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulations.study.flower_run import ANSI_COLOUR, free_port, log_tail

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent  # the virtualenv's bin: flower-superlink, flwr, ...


class DeploymentError(RuntimeError):
    """A process or CLI call did not do what was expected; the message holds log tails."""


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def wait_for(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    interval: float = 0.5,
    details: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``condition`` until it returns something truthy; raise with ``details()`` else."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DeploymentError(
                f"timed out after {timeout:.0f} s waiting for {what}\n{details()}"
            )
        time.sleep(interval)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM this process when the test process dies (killed, timed out)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _children() -> dict[int, list[int]]:
    """Parent pid -> child pids, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # The command name in parentheses may hold spaces; fields follow the last ')'.
        fields = stat[stat.rfind(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children first seen, then theirs)."""
    tree = _children()
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].split()[0] != "Z"  # a zombie is dead


@dataclass
class ManagedProcess:
    """A started process, its log file, and the pids of everything it spawned."""

    name: str
    popen: subprocess.Popen
    log: Path
    spawned: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def remember_children(self) -> None:
        if self.running():
            self.spawned.update(descendants(self.pid))

    def log_text(self) -> str:
        return (
            ANSI_COLOUR.sub("", self.log.read_text(errors="replace")) if self.log.exists() else ""
        )

    def tail(self, lines: int = 40) -> str:
        heading = f"--- {self.name} (pid {self.pid}) log tail, {self.log} ---"
        return f"{heading}\n{log_tail(self.log, lines)}"

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process, then SIGKILL it and whatever it spawned that is still alive."""
        self.remember_children()
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(timeout=timeout)
        # Children (SuperExec, ServerApp / ClientApp) watch their parent and exit on their own;
        # give them a moment, then end the rest by pid.
        deadline = time.monotonic() + 5.0
        while any(_alive(pid) for pid in self.spawned) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in self.spawned:
            if _alive(pid):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)


class Deployment:
    """A SuperLink, SuperNodes and a researcher's `flwr` CLI under one working folder.

    Layout of ``workdir``: ``certs/`` (CA, server certificate, node keys), ``logs/``,
    ``superlink/`` (its FLWR_HOME and state.db), ``supernode-<i>/`` (each node's FLWR_HOME),
    ``researcher/`` (the CLI's FLWR_HOME with ``config.toml``).
    """

    CONNECTION = "cardiomm-test"

    def __init__(self, workdir: Path, num_keys: int = 4) -> None:
        self.workdir = Path(workdir)
        self.certs = self.workdir / "certs"
        self.logs = self.workdir / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.processes: list[ManagedProcess] = []
        self.superlink: ManagedProcess | None = None
        self.superlink_port: int | None = None
        self.researcher_home = self.workdir / "researcher"
        self.researcher_home.mkdir(parents=True, exist_ok=True)
        self.run_command(
            [str(DEPLOY / "make_dev_certificates.sh"), str(self.certs), str(num_keys)],
            timeout=120,
        )

    # -- processes ---------------------------------------------------------------------------

    def env(self, flwr_home: Path) -> dict[str, str]:
        env = dict(os.environ)
        env["FLWR_HOME"] = str(flwr_home)
        env["FLWR_BIN"] = str(BIN)
        env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONUNBUFFERED"] = "1"
        # Fixed local-SuperLink ports of `flwr run` would collide between concurrent jobs.
        env["FLWR_LOCAL_SUPERLINK_HTTP_API_PORT"] = str(free_port())
        env["FLWR_LOCAL_CONTROL_API_PORT"] = str(free_port())
        # One thread per process: several processes share few cores.
        env.setdefault("OMP_NUM_THREADS", "1")
        env.setdefault("MKL_NUM_THREADS", "1")
        return env

    def start(
        self, name: str, command: Sequence[str], flwr_home: Path, cwd: Path
    ) -> ManagedProcess:
        flwr_home.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{name}.log"
        handle = open(log, "wb")  # noqa: SIM115  (kept open for the child's lifetime)
        try:
            popen = subprocess.Popen(
                list(command),
                cwd=cwd,
                env=self.env(flwr_home),
                stdout=handle,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                # If pytest itself is killed, the SuperLink / SuperNodes go too (their SuperExec
                # children watch their parent's pid and follow).
                preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            )
        finally:
            handle.close()  # the child holds its own descriptor
        process = ManagedProcess(name, popen, log)
        self.processes.append(process)
        return process

    def start_superlink(
        self, port: int | None = None, timeout: float = 60.0, database: str | None = None
    ) -> ManagedProcess:
        """Start the SuperLink; ``database``: its state (default an SQLite file in its
        folder; ``:flwr-in-memory:`` keeps it in memory)."""
        home = self.workdir / "superlink"
        self.superlink_port = port or free_port()
        self.superlink = self.start(
            "superlink",
            [
                str(DEPLOY / "superlink.sh"),
                "--certs",
                str(self.certs),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.superlink_port),
                "--database",
                database or str(home / "state.db"),
            ],
            home,
            cwd=home.parent,
        )
        process = self.superlink
        wait_for(
            lambda: not process.running() or "Starting Flower SuperExec" in process.log_text(),
            timeout,
            "the SuperLink to start",
            details=self.log_tails,
        )
        if not process.running():
            raise DeploymentError(
                f"the SuperLink exited ({process.popen.returncode})\n{process.tail()}"
            )
        wait_for(
            lambda: port_open(self.superlink_port),
            timeout,
            "the SuperLink port",
            details=self.log_tails,
        )
        self.write_connection()
        return process

    def start_supernode(
        self,
        index: int,
        site_id: str,
        data_path: Path,
        key: Path | None = None,
        max_wait_time: float | None = None,
        role: str = "train",
        site_worker: Path | None = None,
    ) -> ManagedProcess:
        """Start a SuperNode for ``site_id``; ``site_worker``: the folder of a warm worker
        (:meth:`start_site_worker`) its ClientApp hands the work to."""
        assert self.superlink_port is not None, "start the SuperLink first"
        home = self.workdir / f"supernode-{index}"
        home.mkdir(parents=True, exist_ok=True)
        command = [
            str(DEPLOY / "supernode.sh"),
            "--superlink",
            f"127.0.0.1:{self.superlink_port}",
            "--root-certificates",
            str(self.certs / "ca.crt"),
            "--key",
            str(key or self.key(index)),
            "--site-id",
            site_id,
            "--data-path",
            str(data_path),
            "--port",
            str(free_port()),
            "--role",
            role,
        ]
        if max_wait_time is not None:
            command += ["--max-wait-time", str(max_wait_time)]
        if site_worker is not None:
            command += ["--site-worker", str(site_worker)]
        # The ClientApp runs with the SuperNode's working folder: the project root, so that
        # relative config paths behave as in `flwr run`.
        return self.start(f"supernode-{index}", command, home, cwd=REPO)

    def start_site_worker(self, index: int, timeout: float = 120.0) -> tuple[ManagedProcess, Path]:
        """Start ``cardiomm site-worker`` for SuperNode ``index``; (the process, its folder)
        once it listens."""
        home = self.workdir / f"site-worker-{index}"
        folder = home / "socket"
        process = self.start(
            f"site-worker-{index}",
            [str(BIN / "cardiomm"), "site-worker", str(folder)],
            home,
            cwd=REPO,
        )
        wait_for(
            lambda: not process.running() or (folder / "worker.sock").exists(),
            timeout,
            f"site worker {index} to listen",
            details=process.tail,
        )
        if not process.running():
            raise DeploymentError(f"site worker {index} exited\n{process.tail()}")
        return process, folder

    def key(self, index: int) -> Path:
        return self.certs / f"supernode_{index}"

    # -- researcher CLI ----------------------------------------------------------------------

    def write_connection(self) -> Path:
        """The researcher's $FLWR_HOME/config.toml with one TLS connection to the SuperLink."""
        config = self.researcher_home / "config.toml"
        config.write_text(
            "[superlink]\n"
            f'default = "{self.CONNECTION}"\n\n'
            f"[superlink.{self.CONNECTION}]\n"
            f'address = "127.0.0.1:{self.superlink_port}"\n'
            f'root-certificates = "{self.certs / "ca.crt"}"\n'
        )
        return config

    def run_command(
        self,
        command: Sequence[str],
        timeout: float,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
        check: bool = True,
    ) -> subprocess.CompletedProcess:
        try:
            result = subprocess.run(
                list(command),
                cwd=cwd or REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as error:
            raise DeploymentError(
                f"{' '.join(command)} timed out after {timeout} s\n{error.stdout}\n{error.stderr}\n"
                f"{self.log_tails()}"
            ) from error
        if check and result.returncode != 0:
            raise DeploymentError(
                f"{' '.join(command)} exited {result.returncode}\nstdout:\n{result.stdout}\n"
                f"stderr:\n{result.stderr}\n{self.log_tails()}"
            )
        return result

    def flwr(
        self, *args: str, timeout: float = 120.0, check: bool = True, cwd: Path | None = None
    ) -> subprocess.CompletedProcess:
        """Run the researcher's `flwr` CLI (own FLWR_HOME) and return its output."""
        return self.run_command(
            [str(BIN / "flwr"), *args],
            timeout,
            self.env(self.researcher_home),
            cwd=cwd,
            check=check,
        )

    def flwr_json(self, *args: str, timeout: float = 120.0, cwd: Path | None = None) -> dict:
        result = self.flwr(*args, "--format", "json", timeout=timeout, cwd=cwd)
        try:
            return json.loads(result.stdout[result.stdout.index("{") :])
        except ValueError as error:
            raise DeploymentError(f"flwr {' '.join(args)}: no JSON in\n{result.stdout}") from error

    def register(self, *indices: int) -> list[int]:
        """Register node keys with deploy/register_supernodes.sh; returns their node ids."""
        result = self.run_command(
            [
                str(DEPLOY / "register_supernodes.sh"),
                self.CONNECTION,
                *(f"{self.key(i)}.pub" for i in indices),
            ],
            timeout=120,
            env=self.env(self.researcher_home),
        )
        ids = [int(match) for match in re.findall(r"SuperNode (\d+) registered", result.stdout)]
        if len(ids) != len(indices):
            raise DeploymentError(f"expected {len(indices)} registrations in\n{result.stdout}")
        return ids

    def nodes(self) -> list[dict]:
        return self.flwr_json("supernode", "list", self.CONNECTION)["nodes"]

    def online_nodes(self) -> set[int]:
        return {int(node["node-id"]) for node in self.nodes() if node["status"] == "online"}

    def runs(self) -> list[dict]:
        return self.flwr_json("list", self.CONNECTION).get("runs", [])

    def run_app(self, overrides: str, timeout: float) -> tuple[int, str, float]:
        """Submit the project's Flower app with ``overrides`` (`flwr run .`) and wait until
        the run ends; returns (run id, final status, seconds from submission).

        Raises:
            DeploymentError: the submission failed, or the run did not end in ``timeout``
                (the message holds `flwr log` and the processes' log tails).
        """
        started = time.monotonic()
        submitted = self.flwr_json(
            "run",
            ".",
            self.CONNECTION,
            "--run-config",
            f'overrides="{overrides}"',
            timeout=300,
            cwd=REPO,
        )
        if not submitted.get("success"):
            raise DeploymentError(f"flwr run refused: {submitted}\n{self.log_tails()}")
        run_id = int(submitted["run-id"])

        def finished() -> str | None:
            self.remember_children()  # ServerApp / ClientApp pids, to stop them at the end
            runs = self.flwr_json("list", self.CONNECTION, "--run-id", str(run_id))
            status = runs["runs"][0]["status"]
            return status if status.startswith("finished") else None

        status = wait_for(
            finished,
            timeout,
            f"run {run_id} to finish",
            interval=2.0,
            details=lambda: self.run_log(run_id),
        )
        return run_id, status, time.monotonic() - started

    def run_log(self, run_id: int) -> str:
        """`flwr log` of a run and the processes' log tails (for error messages)."""
        log = self.flwr("log", str(run_id), self.CONNECTION, "--show", check=False)
        return f"flwr log {run_id}:\n{log.stdout[-6000:]}\n{self.log_tails(60)}"

    # -- clean-up ----------------------------------------------------------------------------

    def log_tails(self, lines: int = 30) -> str:
        return "\n".join(process.tail(lines) for process in self.processes)

    def remember_children(self) -> None:
        for process in self.processes:
            process.remember_children()

    def close(self) -> None:
        """Stop SuperNodes first, then the SuperLink, each with its spawned children."""
        self.remember_children()
        errors = []
        for process in reversed(self.processes):
            try:
                process.stop()
            except Exception as error:  # keep stopping the others
                errors.append(f"{process.name}: {error}")
        if errors:
            raise DeploymentError("could not stop: " + "; ".join(errors))

    def leftover_pids(self) -> list[int]:
        pids = {process.pid for process in self.processes}
        for process in self.processes:
            pids |= process.spawned
        return sorted(pid for pid in pids if _alive(pid))

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextlib.contextmanager
def deployment(workdir: Path, num_keys: int = 4) -> Iterator[Deployment]:
    """A :class:`Deployment` that is always closed, even when the test fails."""
    deployed = Deployment(workdir, num_keys)
    try:
        yield deployed
    finally:
        deployed.close()
