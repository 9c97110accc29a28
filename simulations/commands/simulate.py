"""``cardiomm simulate``: the held-out-centre study (plan, train, evaluate, report)."""

from __future__ import annotations

import argparse

NAME = "simulate"
HELP = (
    "Run the held-out-centre study: local-only, centralised and federated experiments (Flower "
    "simulation) on the same budget, scored on centres never seen; resumes an interrupted "
    "study. Hydra overrides of configs/simulate.yaml, e.g. experiment=quick or experiment=paper."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "overrides",
        nargs="*",
        help="Hydra overrides, e.g. experiment=quick study.rounds=5 output_dir=runs/study",
    )
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress display (plain output only)"
    )
    parser.add_argument(
        "--no-clinical",
        action="store_true",
        help="skip the clinical check (segmenter, LV / RV volumes and LVEF of every method); "
        "the same as study.clinical.enabled=false",
    )


def run(args: argparse.Namespace) -> int:
    import logging

    from cardiomm.progress import make_console
    from simulations.study.composition import load_study_config
    from simulations.study.progress import format_seconds
    from simulations.study.runner import run_study

    # The study's own warnings (a failed experiment, a missing MLflow run) on stderr.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if args.no_clinical:
        overrides.append("study.clinical.enabled=false")
    config = load_study_config(overrides)
    console = make_console()
    console.print(f"study {config.study.name}: output in {config.output_dir}")
    result = run_study(config, show_progress=not args.no_progress, console=console)
    console.print(
        f"{len(result.ran)} experiment(s) run, {len(result.skipped)} finished earlier, "
        f"{len(result.failed)} failed; {format_seconds(result.wall_seconds)}"
    )
    for label, error in result.failed.items():
        console.print(f"[red]failed[/red] {label}: {error}", highlight=False)
    files = [path.name for name, path in result.report.items() if name != "report"]
    if files:
        console.print(f"in {result.study_dir}: {', '.join(files)}", highlight=False)
    report = result.report.get("report")
    if report is not None:
        console.print(f"report: {report}", highlight=False)
    return 1 if result.failed else 0
