"""The study's phase clock: the seconds of each phase of one invocation."""

import pytest

from simulations.study import phases
from simulations.study.phases import PhaseClock


class _Ticks:
    """A monotonic clock that advances by the given steps, one per reading."""

    def __init__(self, *steps: float) -> None:
        self.now, self.steps = 0.0, list(steps)

    def __call__(self) -> float:
        value = self.now
        if self.steps:
            self.now += self.steps.pop(0)
        return value


def test_each_phase_counts_its_own_time_in_the_order_they_first_ran(monkeypatch):
    monkeypatch.setattr(phases.time, "monotonic", _Ticks(0.0, 5.0, 1.0, 120.0, 1.0))
    clock = PhaseClock()
    with clock.phase("data"):
        pass
    with clock.phase("training"):
        pass
    assert clock.seconds == {"data": 5.0, "training": 120.0}
    assert clock.describe() == "data 5 s, training 2 min 0 s"


def test_a_phase_run_again_adds_to_its_total(monkeypatch):
    monkeypatch.setattr(phases.time, "monotonic", _Ticks(0.0, 30.0, 1.0, 40.0))
    clock = PhaseClock()
    for _ in range(2):
        with clock.phase("evaluation"):
            pass
    assert clock.seconds == {"evaluation": 70.0}


def test_a_phase_that_raised_still_counts(monkeypatch):
    monkeypatch.setattr(phases.time, "monotonic", _Ticks(0.0, 9.0))
    clock = PhaseClock()
    with pytest.raises(RuntimeError), clock.phase("clinical"):
        raise RuntimeError("segmenter failed")
    assert clock.seconds == {"clinical": 9.0}


def test_elapsed_counts_from_when_the_clock_was_made(monkeypatch):
    monkeypatch.setattr(phases.time, "monotonic", _Ticks(7.0))
    assert PhaseClock().elapsed == 7.0


def test_nothing_timed_describes_as_empty():
    assert PhaseClock().describe() == ""
