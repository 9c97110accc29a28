"""The study's estimate of the time left, and its plain (off-terminal) progress lines."""

import io

from rich.console import Console

from simulations.study.progress import StudyProgress, TimeLeft, format_seconds


def test_nothing_is_estimated_before_an_experiment_finished():
    assert TimeLeft(["local", "federated"]).seconds_left() is None
    assert TimeLeft(["local"]).describe() == "estimating"


def test_estimate_uses_the_mean_of_finished_experiments_of_the_same_kind():
    time_left = TimeLeft(["local", "federated", "federated", "federated", "centralised"])
    time_left.record("local", 10.0)
    time_left.record("federated", 30.0)
    # Two federations left at 30 s each; centralised has no measurement of its own yet: the
    # mean of all finished experiments (20 s) stands in.
    assert time_left.seconds_left() == 30.0 + 30.0 + 20.0


def test_durations_of_earlier_invocations_count_and_unknown_ones_do_not():
    time_left = TimeLeft(["federated", "federated"])
    time_left.record("federated", None)  # skipped, its duration unknown
    assert time_left.seconds_left() is None
    time_left = TimeLeft(["federated", "federated"])
    time_left.record("federated", 40.0)  # finished by an earlier invocation
    assert time_left.seconds_left() == 40.0


def test_the_running_experiment_counts_down():
    time_left = TimeLeft(["federated", "federated"])
    time_left.record("federated", 40.0)
    time_left.start()
    time_left.current_started -= 15.0  # it started 15 s ago
    assert abs(time_left.seconds_left() - 25.0) < 1.0


def test_times_read_naturally():
    assert format_seconds(42.4) == "42 s"
    assert format_seconds(185) == "3 min 5 s"
    assert format_seconds(4320) == "1 h 12 min"


def test_off_a_terminal_each_experiment_gets_plain_lines():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False, width=200)
    labels = ["f / local-only", "f / fedavg"]
    with StudyProgress(labels, ["local", "federated"], console) as progress:
        progress.skipped(labels[0], "local", 12.0)
        progress.started(labels[1])
        progress.finished(labels[1], "federated", 30.0)
    lines = buffer.getvalue().splitlines()
    assert lines == [
        "[1/2] f / local-only: finished earlier, skipped",
        "[2/2] f / fedavg: started; about 12 s left",
        "[2/2] f / fedavg: done in 30 s; about 0 s left",
    ]


def test_disabled_progress_prints_nothing():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=False)
    with StudyProgress(["a"], ["local"], console, enabled=False) as progress:
        progress.started("a")
        progress.finished("a", "local", 1.0)
    assert buffer.getvalue() == ""
