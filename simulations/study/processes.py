"""Find and stop the processes a study started, by process id, from /proc (Linux).

`flwr run` starts a detached SuperLink that outlives it, and the SuperLink starts the
simulation, which starts Ray. None of them is ever looked up by name: the study marks every
process it starts with an environment variable whose value is unique to one experiment
(:data:`MARKER`), and only processes carrying that exact value are stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

MARKER = "CARDIOMM_STUDY_RUN"
PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may hold spaces; fields follow the last ')'.
    return stat[stat.rfind(")") + 2 :].split()


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def _pids() -> list[int]:
    return [int(entry.name) for entry in PROC.iterdir() if entry.name.isdigit()]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``."""
    children: dict[int, list[int]] = {}
    for child in _pids():
        fields = _stat_fields(child)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(child)
    found, stack = [], list(children.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(children.get(child, []))
    return found


def marked(value: str) -> list[int]:
    """Processes of this user whose environment has ``MARKER=value`` (not this process)."""
    needle = f"{MARKER}={value}".encode()
    found = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            environ = (PROC / str(pid) / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if needle in environ.split(b"\0"):
            found.append(pid)
    return found


def command_line(pid: int) -> str:
    try:
        return (
            (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def stop(pids: Iterable[int], grace: float = 10.0) -> list[int]:
    """SIGTERM ``pids``, wait up to ``grace`` seconds, SIGKILL what is left.

    Returns:
        the pids that had to be killed.
    """
    pids = [pid for pid in dict.fromkeys(pids) if alive(pid)]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    killed = [pid for pid in pids if alive(pid)]
    for pid in killed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    return killed


def die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: SIGTERM this process when the process that started it dies."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
