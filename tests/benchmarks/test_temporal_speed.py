"""The temporal-speed benchmark's smoke run on the CPU: both designs at equal images per
step, their seconds per step and images per second, and the window's cost against 2D."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "temporal_speed.py"


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    written = tmp_path_factory.mktemp("temporal_speed") / "speed.json"
    arguments = ["--json", str(written), "--device", "cpu", "--matrix", "32", "32"]
    arguments += ["--coils", "4", "--batch", "2", "--radius", "1", "--warmup", "0"]
    arguments += ["--repeats", "1", "--threads", "1"]
    command = [sys.executable, str(BENCHMARK), *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout, json.loads(written.read_text())


def test_the_smoke_run_times_the_2d_and_the_window_network_on_equal_images(smoke_run):
    _, written = smoke_run
    designs = [(result["radius"], result["design"]) for result in written["results"]]
    assert designs == [(0, "2D (one frame)"), (1, "window 3 frames")]
    for result in written["results"]:
        assert result["train_seconds_per_step"] > 0
        assert result["train_images_per_second"] == pytest.approx(
            2 / result["train_seconds_per_step"]
        )


def test_the_smoke_run_prints_the_windows_cost_against_2d(smoke_run):
    output, _ = smoke_run
    assert "s/step" in output and "images/s" in output and "vs 2D" in output
    assert "1.00x" in output


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is there")
def test_asking_for_cuda_without_a_gpu_says_so_and_measures_the_cpu():
    sys.path.insert(0, str(BENCHMARK.parent))
    try:
        from temporal_speed import resolve_devices
    finally:
        sys.path.remove(str(BENCHMARK.parent))
    assert resolve_devices(["cuda"]) == (["cpu"], "no GPU: the CPU figures only")


def test_on_cuda_both_designs_run_in_fp32_and_bf16_with_checkpointing():
    sys.path.insert(0, str(BENCHMARK.parent))
    try:
        from temporal_speed import parse_arguments, plan_cases
    finally:
        sys.path.remove(str(BENCHMARK.parent))
    cases = plan_cases(parse_arguments(["--radius", "2"]), ["cuda"])
    assert [(case.radius, case.bf16, case.checkpointing) for case in cases] == [
        (0, False, True),
        (2, False, True),
        (0, True, True),
        (2, True, True),
    ]
