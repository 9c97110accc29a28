"""Quality after the same number of steps: a baseline commit and the current tree side by side.

Run from the repository root::

    .venv/bin/python benchmarks/learning_versus_baseline.py                  # 4655724, 300 steps
    .venv/bin/python benchmarks/learning_versus_baseline.py --baseline HEAD~3 --steps 100 200

For each tree (the baseline is checked out in a temporary git worktree) and each step count,
``cardiomm train`` trains the same model on the same synthetic data with the same seed, and
``cardiomm evaluate`` scores the final checkpoint on the held-out centres at the configured
evaluation masks; the table gives held-out PSNR / SSIM per tree and the difference. Both trees
run their own code through their own command line with identical Hydra overrides, so the
comparison holds whatever changed inside (network, trainer, data pipeline).

The default data set is the synthetic ``small`` set (made once under the output folder) with
the challenge's masks as both trees define them; the trees' own training settings apply.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import time
from pathlib import Path

# Run as a script, its folder is on sys.path: the worktree helper of the speed benchmark.
from model_speed import baseline_tree

DEFAULT_BASELINE = "4655724"
HELD_OUT = "[Center005,Center006]"


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, metavar="GIT_REF")
    parser.add_argument("--steps", type=int, nargs="+", default=[300])
    parser.add_argument("--model", default="small", help="configs/model preset (default small)")
    parser.add_argument("--preset", default="small", help="synthetic preset (default small)")
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--output", type=Path, default=Path("outputs/benchmarks/learning-versus-baseline")
    )
    return parser.parse_args(argv)


def run_cardiomm(tree: Path, arguments: list[str], log: Path) -> None:
    """``cardiomm <arguments>`` with ``tree``'s code (PYTHONPATH before the editable install)."""
    environment = {**os.environ, "PYTHONPATH": str(tree)}
    environment.pop("CARDIOMM_CONFIG_DIR", None)
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as handle:
        completed = subprocess.run(
            [sys.executable, "-m", "cardiomm.cli", *arguments],
            cwd=tree,
            env=environment,
            stdout=handle,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if completed.returncode != 0:
        raise SystemExit(f"cardiomm {arguments[0]} failed in {tree}; see {log}")


def held_out_scores(summary: Path) -> dict[str, tuple[float, float]]:
    """{mask: (PSNR, SSIM)} of the trained model from ``summary_overall.csv``."""
    with open(summary, newline="") as handle:
        return {
            row["mask"]: (float(row["psnr"]), float(row["ssim"])) for row in csv.DictReader(handle)
        }


def train_and_score(
    tree: Path, name: str, steps: int, arguments: argparse.Namespace, data: Path
) -> tuple[dict[str, tuple[float, float]], float]:
    folder = arguments.output.resolve() / f"{name}-{steps}"
    common = [
        f"data.root={data}",
        "data.synthetic_preset=null",
        f"data.hold_out={HELD_OUT}",
        f"seed={arguments.seed}",
    ]
    started = time.perf_counter()
    run_cardiomm(
        tree,
        [
            "train",
            *common,
            f"model={arguments.model}",
            f"train.max_steps={steps}",
            f"train.learning_rate={arguments.learning_rate}",
            f"train.num_threads={arguments.threads}",
            f"output_dir={folder / 'train'}",
        ],
        folder / "train.log",
    )
    seconds = time.perf_counter() - started
    run_cardiomm(
        tree,
        [
            "evaluate",
            *common,
            f"checkpoints=[{folder / 'train' / 'checkpoints' / 'final.pt'}]",
            "baselines=[]",
            "split=held-out",
            f"output_dir={folder / 'evaluate'}",
        ],
        folder / "evaluate.log",
    )
    return held_out_scores(folder / "evaluate" / "summary_overall.csv"), seconds


def main(argv: list[str] | None = None) -> int:
    arguments = parse_arguments(argv)
    data = (arguments.output / f"synthetic-{arguments.preset}").resolve()
    if not (data / "synthetic_manifest.json").is_file():
        run_cardiomm(
            Path(__file__).resolve().parents[1],
            ["make-synthetic", "--preset", arguments.preset, "--output", str(data)],
            arguments.output / "make-synthetic.log",
        )
    current = Path(__file__).resolve().parents[1]
    print(
        f"held-out PSNR / SSIM after the same steps: {arguments.baseline} versus the current "
        f"tree; model={arguments.model}, synthetic {arguments.preset} set, held out {HELD_OUT}, "
        f"lr {arguments.learning_rate:g}, seed {arguments.seed}, {arguments.threads} thread(s)"
    )
    lines = [
        "| steps | mask | baseline PSNR / SSIM | current PSNR / SSIM | Δ PSNR | train s |",
        "|---|---|---|---|---|---|",
    ]
    with baseline_tree(arguments.baseline) as baseline:
        for steps in arguments.steps:
            before, before_seconds = train_and_score(baseline, "baseline", steps, arguments, data)
            after, after_seconds = train_and_score(current, "current", steps, arguments, data)
            for mask in after:
                old, new = before[mask], after[mask]
                lines.append(
                    f"| {steps} | {mask} | {old[0]:.2f} / {old[1]:.3f} | {new[0]:.2f} / "
                    f"{new[1]:.3f} | {new[0] - old[0]:+.2f} | {before_seconds:.0f} / "
                    f"{after_seconds:.0f} |"
                )
            print("\n".join(lines[-len(after) :]), flush=True)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
