"""What differential privacy costs per training step: plain training, slice-level DP-SGD
(Opacus' per-sample gradients) and patient-level DP-SGD (one backward pass per sampled
patient, cardiomm/privacy/patient_dp.py), side by side in one run on the same data.

    .venv/bin/python benchmarks/dp_step_cost.py                 # tiny model, 12 steps each
    .venv/bin/python benchmarks/dp_step_cost.py --model small --steps 20 --patients 1 4

Each case trains a fresh network (same seed) for ``--steps`` steps with the site trainer
(``cardiomm.train.train_model``) on the training patients of the synthetic ``tiny`` set's
Center001 (made on first use) and reports seconds per step and per slice reconstructed
(median of ``--repeats`` runs); the network is built outside the timing.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def run_case(config: Any, data: Any, privacy: Any, steps: int, repeats: int) -> tuple[float, float]:
    """(median seconds per step, median seconds per slice) of one setting."""
    import torch

    from cardiomm.model.factory import network_from_config
    from cardiomm.privacy.accountant import SiteAccountant
    from cardiomm.train import TrainConfig, TrainingRun, train_model

    per_step, per_slice = [], []
    for _ in range(repeats):
        torch.manual_seed(0)
        private = privacy is not None and privacy.enabled
        network, encoder = network_from_config(
            config, coil_batching=False if private and privacy.unit == "slice" else None
        )
        began = time.perf_counter()
        result = train_model(
            TrainingRun(
                network,
                encoder,
                data,
                TrainConfig(max_steps=steps, learning_rate=1e-4, device="cpu", bf16=False),
                show_progress=False,
                privacy=privacy,
                accountant=SiteAccountant() if private else None,
            )
        )
        seconds = time.perf_counter() - began
        per_step.append(seconds / result.steps)
        per_slice.append(seconds / max(1, result.examples))
    return statistics.median(per_step), statistics.median(per_slice)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="tiny", help="tiny | small | paper")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--patients", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--threads", type=int, default=1)
    arguments = parser.parse_args(argv)

    import torch

    from cardiomm.cohort.data_root import load_partition
    from cardiomm.cohort.manifest import internal_sites, site_files
    from cardiomm.config import load_config
    from cardiomm.data.builders import training_dataset
    from cardiomm.privacy.patient_dp import patient_groups
    from cardiomm.privacy.settings import DPSGDSettings

    torch.set_num_threads(arguments.threads)
    config = load_config([f"model={arguments.model}", "text=none", "data.synthetic_preset=tiny"])
    manifest = load_partition(config.data, int(config.seed), show_progress=False)
    site = internal_sites(manifest)[0]
    data = training_dataset(site_files(manifest, site, "train"), config, seed=0)
    patients = len(patient_groups(data))
    cases: list[tuple[str, Any]] = [
        ("plain (batch 1)", None),
        ("DP-SGD per slice, Opacus (batch 1)", DPSGDSettings(enabled=True, unit="slice")),
    ]
    cases += [
        (
            f"DP-SGD per patient ({count:g} patient(s) per step, 1 slice each)",
            DPSGDSettings(enabled=True, unit="patient", patients_per_step=count),
        )
        for count in arguments.patients
    ]
    print(
        f"model {arguments.model}, {site['site']}: {len(data)} training slices of {patients} "
        f"patients; {arguments.steps} steps x {arguments.repeats} runs, "
        f"{arguments.threads} thread(s), CPU"
    )
    rows = []
    for name, privacy in cases:
        step, image = run_case(config, data, privacy, arguments.steps, arguments.repeats)
        rows.append((name, step, image))
    baseline = rows[0][2]
    print("| case | s / step | s / slice | per slice vs plain |\n|---|---|---|---|")
    for name, step, image in rows:
        print(f"| {name} | {step:.3f} | {image:.3f} | {image / baseline:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
