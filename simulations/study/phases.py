"""Where a study's wall time goes: the seconds of each phase of one invocation.

The quick and standard presets have time budgets (docs/study.md); the report's timing line and
``study.json`` say how much of an invocation each phase took (preparing the data, training,
scoring the models and the classical references, learning curves, the clinical check, the
report), so that a missed budget names what to cut.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from simulations.study.progress import format_seconds


class PhaseClock:
    """Wall seconds since the clock was made, and per named phase, in the order the phases
    first ran.

    A phase that runs again (e.g. per fold) adds to its total; one that raised still counts
    the time it took.
    """

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._seconds: dict[str, float] = {}

    @property
    def elapsed(self) -> float:
        """Seconds since the clock was made."""
        return time.monotonic() - self._started

    @contextlib.contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count the time inside the ``with`` block towards ``name``."""
        started = time.monotonic()
        try:
            yield
        finally:
            elapsed = time.monotonic() - started
            self._seconds[name] = self._seconds.get(name, 0.0) + elapsed

    @property
    def seconds(self) -> dict[str, float]:
        """name -> seconds, a copy."""
        return dict(self._seconds)

    def describe(self) -> str:
        """``data 3 min 2 s, training 27 min 1 s, ...``; empty when nothing was timed."""
        return ", ".join(f"{name} {format_seconds(value)}" for name, value in self._seconds.items())
