"""Same command, config and seed, same bits: training and a federation, each run twice in
separate processes, give bitwise-identical weights and metrics."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.builders import write_consortium

REPOSITORY = Path(__file__).resolve().parents[1]
# Wall-clock figures differ between runs by nature; every other number must not.
# Wall-clock figures, which no seed fixes (the sites' start-up ones included).
TIMING_KEYS = {
    "train-seconds",
    "seconds",
    "wall-seconds",
    "process-seconds",
    "import-seconds",
    "setup-seconds",
    "build-seconds",
}
RUNS = ("first", "second")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("consortium")
    write_consortium(root)
    return root


def _run(*arguments) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.reproducibility_runs", *map(str, arguments)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _assert_identical(first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]) -> None:
    assert first.keys() == second.keys()
    differing = [key for key in first if not torch.equal(first[key], second[key])]
    assert differing == []


def _without_timings(value):
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [_without_timings(item) for item in value]
    return value


def test_training_twice_gives_identical_weights_and_metrics(root, tmp_path):
    for run in RUNS:
        _run("train", tmp_path / run, root)
    _assert_identical(
        _weights(tmp_path / "first/checkpoints/final.pt"),
        _weights(tmp_path / "second/checkpoints/final.pt"),
    )
    # The summary names its own output folder; the numbers in it must agree.
    metrics = [json.loads((tmp_path / run / "metrics.json").read_text())["metrics"] for run in RUNS]
    assert _without_timings(metrics[0]) == _without_timings(metrics[1])


def test_a_federation_twice_gives_identical_weights_whatever_the_reply_order(root, tmp_path):
    _run("federation", tmp_path / "first", root)
    _run("federation", tmp_path / "second", root, "--reverse-replies")
    _assert_identical(
        _weights(tmp_path / "first/checkpoints/final.pt"),
        _weights(tmp_path / "second/checkpoints/final.pt"),
    )
    rounds = [
        [record["train"] for record in json.loads((tmp_path / run / "history.json").read_text())]
        for run in RUNS
    ]
    assert _without_timings(rounds[0]) == _without_timings(rounds[1])
