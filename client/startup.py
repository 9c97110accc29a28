"""How long a ClientApp process took before the site's work began.

Flower 1.42 starts a fresh ``flwr-clientapp`` process for every message of a deployment (a
simulation reuses its workers), and the process pays, before any training: the
interpreter's and Flower's start with the message and the app bundle (``process-seconds``),
then the imports of this project's stack, torch included (``import-seconds``). This module
is imported by client/app.py before anything heavy, so the clock splits the two; a process
that already served a message reports both as 0 (it is warm).
"""

from __future__ import annotations

import math
import os
import time

from federation.protocol import (
    IMPORT_SECONDS,
    PROCESS_SECONDS,
)

_IMPORTS_BEGAN = time.time()


class StartupClock:
    """The start-up of this process, reported once (by the first message it serves)."""

    def __init__(self) -> None:
        self.imports_done: float | None = None
        self.reported = False

    def imported(self) -> None:
        """Mark the end of the ClientApp module's imports."""
        self.imports_done = time.time()

    def take(self) -> dict[str, float]:
        """``process-seconds`` and ``import-seconds`` of this process (0 once reported)."""
        if self.reported:
            return {PROCESS_SECONDS: 0.0, IMPORT_SECONDS: 0.0}
        self.reported = True
        done = self.imports_done if self.imports_done is not None else time.time()
        started = process_start_time()
        return {
            PROCESS_SECONDS: max(0.0, _IMPORTS_BEGAN - started) if started else math.nan,
            IMPORT_SECONDS: max(0.0, done - _IMPORTS_BEGAN),
        }


def process_start_time() -> float | None:
    """When this process started (seconds since the epoch), from /proc; None elsewhere."""
    try:
        with open("/proc/self/stat") as handle:
            # The command name (field 2) may hold spaces: fields are counted after its ')'.
            fields = handle.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as handle:
            boot = next(int(line.split()[1]) for line in handle if line.startswith("btime"))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


CLOCK = StartupClock()
