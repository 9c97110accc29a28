"""The calibration benchmark's smoke run: a small cine, one coil model, every map set in the
table with its error, SENSE PSNR and seconds."""

import subprocess
import sys
from pathlib import Path

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "calibration_accuracy.py"


def test_the_calibration_benchmark_prints_a_row_per_mask_and_map_set():
    arguments = ["--matrix", "48", "56", "--frames", "3", "--coils", "4", "--coil-models"]
    arguments += ["blobs", "--sense-frames", "1", "--sense-iterations", "2", "--repeats", "1"]
    done = subprocess.run(
        [sys.executable, str(BENCHMARK), *arguments], capture_output=True, text=True, timeout=600
    )

    assert done.returncode == 0, done.stderr
    table = [line for line in done.stdout.splitlines() if " dB" in line]
    assert len(table) == 3 * 7, done.stdout
    for mask in ("Uniform 8x", "ktGaussian 16x", "ktRadial 24x"):
        assert any(line.startswith(mask) and "new: frames, ESPIRiT" in line for line in table)
