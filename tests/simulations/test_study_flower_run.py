"""Pieces of the `flwr run` launcher that need no Flower run: the run-config file as Flower
and the apps read it, the failure reason from a log, and stopping marked processes."""

import os
import shlex
import subprocess
import sys
import time

from flwr.common.config import parse_config_args

from federation.config import compose_run_config
from simulations.study import processes
from simulations.study.composition import hydra_value
from simulations.study.flower_run import _reason, write_run_config


def test_run_config_file_carries_the_overrides_exactly(tmp_path):
    overrides = [
        "strategy=fedavg",
        f"data.manifest={hydra_value(str(tmp_path / 'held-out=A+B' / 'manifest.json'))}",
        f"++tracking.run_name={hydra_value('held-out=A+B / fedavg')}",
        "method=" + hydra_value('it\'s "quoted" \\ here'),
        f"federation.eval_splits={hydra_value(['held-out'])}",
    ]
    path = write_run_config(tmp_path / "run_config.toml", overrides)
    # As `flwr run --run-config <file>` reads it, then as the apps split it (server/app.py).
    run_config = parse_config_args([str(path)])
    assert shlex.split(run_config["overrides"]) == overrides
    config = compose_run_config(run_config)  # what the ServerApp composes from it
    assert config.method == 'it\'s "quoted" \\ here'
    assert config.data.manifest == str(tmp_path / "held-out=A+B" / "manifest.json")
    assert list(config.federation.eval_splits) == ["held-out"]


def test_the_reason_is_the_last_exception_line_of_the_log():
    log = "INFO starting\nTraceback ...\nValueError: strategy.personalised pattern 'x' ...\n"
    assert _reason(log) == ": ValueError: strategy.personalised pattern 'x' ..."
    assert _reason("all fine\n") == ""


def test_marked_processes_are_found_and_stopped(tmp_path):
    marker = str(tmp_path / "experiment")
    env = {**os.environ, processes.MARKER: marker}
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], env=env, stdin=subprocess.DEVNULL
    )
    try:
        found = []
        for _ in range(50):  # the child's environment is readable once it has exec'd
            found = processes.marked(marker)
            if found:
                break
            time.sleep(0.1)
        assert found == [child.pid]
        assert processes.marked(marker + "-other") == []  # an exact value, not a prefix
        processes.stop(found, grace=5.0)
        assert child.wait(timeout=5) is not None
        assert processes.marked(marker) == []
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
