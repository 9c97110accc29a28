"""The model-speed benchmark's smoke run on the CPU (what CI has): it says there is no GPU and
prints the CPU figures with the work per step and images per second; and the bf16 peaks it
divides by."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "model_speed.py"


@pytest.fixture(scope="module")
def smoke_json(tmp_path_factory):
    return tmp_path_factory.mktemp("model_speed") / "speed.json"


@pytest.fixture(scope="module")
def smoke_output(smoke_json):
    arguments = [
        "--json",
        str(smoke_json),
        "--sizes",
        "tiny",
        "--device",
        "cpu",
        "--matrix",
        "32",
        "32",
        "--coils",
        "4",
    ]
    arguments += ["--acs-width", "8", "--warmup", "0", "--repeats", "1", "--threads", "1"]
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), *arguments],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_the_cpu_smoke_run_says_there_is_no_gpu(smoke_output):
    assert "no GPU" in smoke_output


def test_the_cpu_smoke_run_prints_the_work_per_step_and_images_per_second(smoke_output):
    assert "Achieved compute" in smoke_output
    assert "GFLOP / step" in smoke_output and "images / s" in smoke_output


def test_the_smoke_run_without_a_baseline_writes_each_case_result_to_its_json_file(
    smoke_output, smoke_json
):
    written = json.loads(smoke_json.read_text())
    assert [entry["case"]["mode"] for entry in written["results"]] == ["train", "infer"]
    for entry in written["results"]:
        assert entry["median_s"] > 0 and entry["parameters"]["total"] > 0
    assert written["baseline_results"] == []


def test_known_gpus_have_their_dense_bf16_peak_and_others_none():
    sys.path.insert(0, str(BENCHMARK.parent))
    try:
        from model_speed import bf16_peak_tflops
    finally:
        sys.path.remove(str(BENCHMARK.parent))
    assert bf16_peak_tflops("NVIDIA H200") == 989.0
    assert bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert bf16_peak_tflops("NVIDIA L40S") == 362.0
    assert bf16_peak_tflops("Some Future GPU") is None
