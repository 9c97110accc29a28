"""A study's progress across experiments, with an estimate of the time left.

The estimate for an experiment still to run is the mean wall time of the finished
experiments of its kind (local, centralised, federated), else of all finished ones; the
durations of experiments finished by an earlier, interrupted invocation count too. On a
terminal a rich progress bar shows it live; elsewhere (logs, CI) one plain line per
experiment does.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rich.progress import ProgressColumn
from rich.text import Text

if TYPE_CHECKING:
    from rich.console import Console


def format_seconds(seconds: float) -> str:
    """``42 s``, ``3 min 5 s`` or ``1 h 12 min``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


class TimeLeft:
    """Estimates the time left from the durations of finished experiments.

    Args:
        kinds: the kind of every experiment of the study, in order.
    """

    def __init__(self, kinds: Sequence[str]) -> None:
        self.kinds = list(kinds)
        self.durations: dict[str, list[float]] = defaultdict(list)
        self.done = 0
        self.current_started: float | None = None

    def record(self, kind: str, seconds: float | None) -> None:
        """An experiment finished (or was skipped); ``seconds``: its wall time, if known."""
        self.done += 1
        self.current_started = None
        if seconds is not None and seconds > 0:
            self.durations[kind].append(seconds)

    def start(self) -> None:
        self.current_started = time.monotonic()

    def estimate(self, kind: str) -> float | None:
        if self.durations.get(kind):
            return sum(self.durations[kind]) / len(self.durations[kind])
        everything = [value for values in self.durations.values() for value in values]
        return sum(everything) / len(everything) if everything else None

    def seconds_left(self) -> float | None:
        """None until one experiment has finished."""
        remaining = self.kinds[self.done :]
        estimates = [self.estimate(kind) for kind in remaining]
        if not remaining:
            return 0.0
        if any(value is None for value in estimates):
            return None
        left = sum(estimates)
        if self.current_started is not None:
            # The running experiment has already used part of its estimate.
            elapsed = time.monotonic() - self.current_started
            left -= min(elapsed, estimates[0])
        return left

    def describe(self) -> str:
        left = self.seconds_left()
        return "estimating" if left is None else f"about {format_seconds(left)} left"


class StudyProgress:
    """Progress display over the study's experiments (a context manager).

    Args:
        labels: each experiment's label, in order.
        kinds: each experiment's kind, in order.
        console: where to show it.
        enabled: False: show nothing at all.
    """

    def __init__(
        self, labels: Sequence[str], kinds: Sequence[str], console: Console, enabled: bool = True
    ) -> None:
        self.labels = list(labels)
        self.time_left = TimeLeft(kinds)
        self.console = console
        self.enabled = enabled
        self.live = enabled and console.is_terminal
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> StudyProgress:
        if self.live:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TimeLeftColumn(self.time_left),
                console=self.console,
            )
            self._progress.start()
            self._task = self._progress.add_task("study", total=len(self.labels))
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def skipped(self, label: str, kind: str, seconds: float | None) -> None:
        """An experiment finished by an earlier invocation."""
        self.time_left.record(kind, seconds)
        self._say(f"{self._counter()} {label}: finished earlier, skipped")
        self._advance(label)

    def started(self, label: str) -> None:
        self.time_left.start()
        if self._progress is not None:
            self._progress.update(self._task, description=label)
        else:
            self._say(f"{self._counter(1)} {label}: started; {self.time_left.describe()}")

    def finished(self, label: str, kind: str, seconds: float) -> None:
        self.time_left.record(kind, seconds)
        self._say(
            f"{self._counter()} {label}: done in {format_seconds(seconds)}; "
            f"{self.time_left.describe()}"
        )
        self._advance(label)

    def failed(self, label: str, kind: str, error: str) -> None:
        self.time_left.record(kind, None)
        self._say(f"{self._counter()} {label}: [red]failed[/red]: {error.splitlines()[0]}")
        self._advance(label)

    def _counter(self, ahead: int = 0) -> str:
        return f"[{self.time_left.done + ahead}/{len(self.labels)}]"

    def _advance(self, label: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=1, description=label)

    def _say(self, text: str) -> None:
        if self.enabled:
            self.console.print(text, highlight=False)


class TimeLeftColumn(ProgressColumn):
    """The estimate, re-computed at every refresh, so the running experiment counts down."""

    def __init__(self, time_left: TimeLeft) -> None:
        super().__init__()
        self.time_left = time_left

    def render(self, task: Any) -> Text:
        return Text(self.time_left.describe(), style="progress.remaining")
