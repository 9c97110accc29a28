"""Run a held-out-centre study: plan, experiments, evaluation, report (``cardiomm simulate``).

Layout of the study folder (``output_dir``)::

    study.json                      the plan, the MLflow parent run, failures, wall time
    mlflow.db, mlartifacts/         the embedded MLflow store (tracking.mlflow_uri=null)
    <fold>/manifest.json            the fold's partition (held-out centres, patient splits)
    <fold>/<experiment>/seed-<s>/   the experiment's run with training seed s (checkpoints,
                                    logs, history.json)
    <fold>/<experiment>/seed-<s>/outcome.json  written when that run finished
    <fold>/evaluation/              the fold's evaluation (simulations/study/scoring.py)
    report files                    simulations/study/report.py (results.csv, report.md, ...)

Resuming: an experiment with an ``outcome.json`` is skipped; an unfinished one starts again,
where a federation continues from its last checkpointed round and local-only training reuses
the sites already trained. A changed experiment definition (overrides, budget, folds) is
refused rather than mixed with the old results.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, open_dict

from simulations.study.experiments import ExperimentContext, definition, run_experiment
from simulations.study.flower_run import FlowerRunError
from simulations.study.machine import describe_machine
from simulations.study.outcome import ExperimentOutcome
from simulations.study.phases import PhaseClock
from simulations.study.plan import Fold, PlannedExperiment, plan_folds, plan_study
from simulations.study.progress import StudyProgress, format_seconds
from simulations.study.settings import StudySettings
from simulations.study.state import (
    ERROR_FILE,
    OUTCOME_FILE,
    check_unchanged,
    claim,
    finish_state,
    read_state,
    write_state,
)
from simulations.study.tracking import (
    StudyTracker,
    federated_tracking,
    open_study_tracker,
    track_experiment,
    track_results,
)

logger = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.json"


@dataclasses.dataclass
class StudyResult:
    """What one invocation of the study did.

    Attributes:
        study_dir: the study folder.
        outcomes: every finished run, one per experiment and seed (this invocation's and
            earlier ones').
        ran: labels of the experiments run now.
        skipped: labels of the experiments finished by an earlier invocation.
        failed: label -> error of the experiments that failed now.
        rows: the evaluation's per-file scores (file_scores.csv rows).
        report: the report's files by name.
        wall_seconds: this invocation's wall time.
    """

    study_dir: Path
    outcomes: list[ExperimentOutcome]
    ran: list[str]
    skipped: list[str]
    failed: dict[str, str]
    rows: list[dict[str, Any]]
    report: dict[str, Path]
    wall_seconds: float


@dataclasses.dataclass(frozen=True)
class _Prepared:
    """The study laid out: folder, folds with their manifests, experiments, definitions."""

    study_dir: Path
    folds: list[Fold]
    manifests: dict[Fold, Path]
    planned: list[PlannedExperiment]
    definitions: dict[PlannedExperiment, dict[str, Any]]


def run_study(config: DictConfig, show_progress: bool = True, console: Any = None) -> StudyResult:
    """Run (or resume) the study that ``config`` (``configs/simulate.yaml``) describes.

    Args:
        config: from :func:`simulations.study.composition.load_study_config`.
        show_progress: progress display (live on a terminal, plain lines elsewhere).
        console: a rich console to print to (default: a new one).
    """
    import torch

    clock = PhaseClock()
    settings = StudySettings.from_config(config)
    threads = torch.get_num_threads()
    # In-process training and evaluation use the cores of one simulated site: more OpenMP
    # threads than free cores stall for seconds per convolution beside other processes.
    torch.set_num_threads(settings.site_threads)
    try:
        return _run(config, settings, clock, show_progress, console)
    finally:
        torch.set_num_threads(threads)


def _run(
    config: DictConfig,
    settings: StudySettings,
    clock: PhaseClock,
    show_progress: bool,
    console: Any,
) -> StudyResult:
    from cardiomm.progress import make_console

    console = console or make_console()
    study_dir = Path(str(config.output_dir)).expanduser().resolve()
    study_dir.mkdir(parents=True, exist_ok=True)
    with clock.phase("data"):
        folds, manifests = _prepare_folds(config, settings, study_dir, show_progress)
    planned = plan_study(
        folds, settings.experiments, settings.rounds, settings.local_steps, settings.seeds
    )
    # Refuse a changed definition before anything is written or tracked.
    wanted = {item: definition(item, config, settings) for item in planned}
    for item in planned:
        check_unchanged(study_dir / item.fold.slug / item.folder, wanted[item])
    state = read_state(study_dir)
    tracker = open_study_tracker(config, settings, study_dir, state)
    write_state(study_dir, state, settings, planned, tracker, config)
    prepared = _Prepared(study_dir, folds, manifests, planned, wanted)
    try:
        return _run_planned(config, settings, prepared, tracker, clock, show_progress, console)
    except BaseException:  # interrupted or broken: the parent run must not stay RUNNING
        if tracker is not None:
            tracker.end(failed=True)
        raise


def _run_planned(
    config: DictConfig,
    settings: StudySettings,
    prepared: _Prepared,
    tracker: StudyTracker | None,
    clock: PhaseClock,
    show_progress: bool,
    console: Any,
) -> StudyResult:
    """The experiments (skipping finished ones), then the evaluation, report and tracking;
    ``clock``: the invocation's, started with it."""
    study_dir, folds, manifests = prepared.study_dir, prepared.folds, prepared.manifests
    with clock.phase("training"):
        runs = _run_experiments(config, settings, prepared, tracker, show_progress, console)
    outcomes, ran, skipped, failed = runs.outcomes, runs.ran, runs.skipped, runs.failed
    # After the display has closed: the evaluation shows progress bars of its own, and rich
    # allows one live display at a time.
    if show_progress and settings.held_out_evaluation:
        console.print(f"evaluating {len(outcomes)} run(s) on the test and held-out centres")
    rows, curves = _evaluate(
        config, settings, folds, manifests, outcomes, study_dir, show_progress, clock
    )
    with clock.phase("clinical check"):
        clinical = _clinical(config, settings, folds, manifests, outcomes, study_dir, show_progress)
    with clock.phase("report"):
        report = _report(
            config,
            settings,
            study_dir,
            rows,
            curves,
            outcomes,
            clock,
            failed,
            manifests,
            clinical,
        )
    wall = clock.elapsed
    if tracker is not None:
        track_results(tracker, outcomes, rows, report, wall, failed)
    finish_state(study_dir, ran, skipped, failed, report, wall, clock.seconds)
    if settings.publish_dir is not None:
        publish_report(report, study_dir, Path(settings.publish_dir))
    return StudyResult(study_dir, outcomes, ran, skipped, failed, rows, report, wall)


@dataclasses.dataclass
class _Runs:
    """The planned experiments' outcomes (finished earlier or now), the labels of those run
    now and of those skipped as finished, and the failed ones' errors by label."""

    outcomes: list[ExperimentOutcome] = dataclasses.field(default_factory=list)
    ran: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


def _run_experiments(
    config: DictConfig,
    settings: StudySettings,
    prepared: _Prepared,
    tracker: StudyTracker | None,
    show_progress: bool,
    console: Any,
) -> _Runs:
    """Run every planned experiment that has no outcome yet, in plan order, under the study's
    progress display; a failed one is recorded (its error file written) and the rest go on."""
    study_dir, manifests = prepared.study_dir, prepared.manifests
    planned, wanted = prepared.planned, prepared.definitions
    tracking = federated_tracking(config, tracker)
    gpus = _client_gpus(settings, prepared.folds)
    backbone = _public_backbone(config, settings, study_dir, show_progress, console)

    runs = _Runs()
    labels = [item.label for item in planned]
    kinds = [item.spec.kind for item in planned]
    with StudyProgress(labels, kinds, console, enabled=show_progress) as progress:
        for item in planned:
            run_dir = study_dir / item.fold.slug / item.folder
            outcome_path = run_dir / OUTCOME_FILE
            if outcome_path.is_file():
                outcome = ExperimentOutcome.read(outcome_path)
                runs.outcomes.append(outcome)
                runs.skipped.append(item.label)
                progress.skipped(item.label, item.spec.kind, outcome.wall_seconds)
                continue
            claim(run_dir, wanted[item])
            progress.started(item.label)
            context = ExperimentContext(
                study=config,
                settings=settings,
                manifest=manifests[item.fold],
                run_dir=run_dir,
                tracking=tracking,
                client_gpus=gpus,
                backbone=backbone,
            )
            try:
                outcome = run_experiment(item, context)
            except Exception as error:  # one failed experiment must not lose the others
                # A failed Flower run says why in its log; anything else is a bug: traceback.
                logger.error(
                    "%s failed: %s",
                    item.label,
                    error,
                    exc_info=not isinstance(error, FlowerRunError),
                )
                runs.failed[item.label] = f"{type(error).__name__}: {error}"
                (run_dir / ERROR_FILE).write_text(runs.failed[item.label] + "\n")
                progress.failed(item.label, item.spec.kind, runs.failed[item.label])
                continue
            track_experiment(tracker, item, outcome)
            outcome.write(outcome_path)
            runs.outcomes.append(outcome)
            runs.ran.append(item.label)
            progress.finished(item.label, item.spec.kind, outcome.wall_seconds)
    return runs


def _public_backbone(
    config: DictConfig,
    settings: StudySettings,
    study_dir: Path,
    show_progress: bool,
    console: Any,
) -> Path | None:
    from simulations.study.backbone import public_backbone

    if settings.public_backbone is not None and show_progress:
        preset, steps = settings.public_backbone
        console.print(f"public backbone: {steps} steps on the synthetic {preset} set (once)")
    return public_backbone(config, settings, study_dir)


# -- folds and manifests ---------------------------------------------------------------------


def _prepare_folds(
    config: DictConfig, settings: StudySettings, study_dir: Path, show_progress: bool
) -> tuple[list[Fold], dict[Fold, Path]]:
    """Partition the data: the folds and each fold's manifest file (kept across resumes)."""
    from cardiomm.cohort.data_root import resolve_data_root
    from cardiomm.cohort.manifest import (
        SplitFractions,
        partition_dataset,
        read_manifest,
        write_manifest,
    )

    data = config.data
    fractions = SplitFractions(val=float(data.val_fraction), test=float(data.test_fraction))
    seed = int(config.seed)
    if data.manifest:
        base = read_manifest(data.manifest)
        root = Path(base["root"])
    else:
        root = resolve_data_root(data, show_progress)
        base = partition_dataset(
            root,
            hold_out=list(data.hold_out),
            hold_out_count=int(data.hold_out_count),
            seed=seed,
            fractions=fractions,
            show_progress=show_progress,
        )
    centres = [site["site"] for site in base["sites"]]
    folds = plan_folds(centres, settings.folds, base["held_out"], settings.leave_one_out_centres)
    manifests = {}
    for fold in folds:
        path = study_dir / fold.slug / MANIFEST_FILE
        if not path.is_file():
            if list(fold.held_out) == sorted(base["held_out"]):
                manifest = base
            else:
                # Patient splits depend only on the seed and the centre, so an internal site
                # keeps the same patients in every fold.
                manifest = partition_dataset(
                    root,
                    hold_out=list(fold.held_out),
                    seed=seed,
                    fractions=fractions,
                    show_progress=show_progress,
                )
            write_manifest(manifest, path)
        manifests[fold] = path
    return folds, manifests


# -- resume ----------------------------------------------------------------------------------


# -- evaluation and report -------------------------------------------------------------------


def _evaluate(
    config: DictConfig,
    settings: StudySettings,
    folds: list[Fold],
    manifests: dict[Fold, Path],
    outcomes: list[ExperimentOutcome],
    study_dir: Path,
    show_progress: bool,
    clock: PhaseClock,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per-file scores of every run and reference, and the learning curves, of every fold
    (none for a study that does not score the held-out centres), timed as ``evaluation``
    and ``learning curves``."""
    from cardiomm.cohort.manifest import read_manifest
    from simulations.study.scoring import curve_rows, evaluate_outcomes

    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    if not settings.held_out_evaluation:
        return rows, curves
    for fold in folds:
        own = [outcome for outcome in outcomes if outcome.fold == fold.name]
        if not own:
            continue
        fold_config = _fold_config(config, fold, manifests[fold])
        manifest = read_manifest(manifests[fold])
        output = study_dir / fold.slug / "evaluation"
        with clock.phase("evaluation"):
            rows += evaluate_outcomes(own, fold_config, manifest, output, show_progress)
        with clock.phase("learning curves"):
            curves += curve_rows(
                own,
                fold_config,
                manifest,
                settings.curve_experiments,
                settings.curve_eval_items,
                output,
                show_progress,
            )
    return rows, curves


def _clinical(
    config: DictConfig,
    settings: StudySettings,
    folds: list[Fold],
    manifests: dict[Fold, Path],
    outcomes: list[ExperimentOutcome],
    study_dir: Path,
    show_progress: bool,
) -> dict[str, Any] | None:
    """Each fold's clinical check (simulations/study/clinical.py); None when the study does
    not run it (``study.clinical.enabled=false``) or scores no held-out centre."""
    from cardiomm.cohort.manifest import read_manifest
    from simulations.study.clinical import ClinicalCheck, ClinicalSettings, clinical_check

    if not settings.held_out_evaluation or not ClinicalSettings.from_config(config).enabled:
        return None
    checks = {}
    for fold in folds:
        own = [outcome for outcome in outcomes if outcome.fold == fold.name]
        fold_config = _fold_config(config, fold, manifests[fold])
        output = study_dir / fold.slug / "clinical"
        try:
            checks[fold.name] = clinical_check(
                own,
                fold_config,
                read_manifest(manifests[fold]),
                output,
                fold.name,
                show_progress,
                classical_folder=_classical_folder(study_dir, fold),
            )
        except Exception as error:  # the check must never cost the study its report
            logger.error("the clinical check of fold %s failed", fold.name, exc_info=True)
            checks[fold.name] = ClinicalCheck([], {}, [], f"the check failed ({error})")
    return checks


def _fold_config(config: DictConfig, fold: Fold, manifest: Path) -> DictConfig:
    fold_config = config.copy()
    with open_dict(fold_config):
        fold_config.data.manifest = str(manifest)
        fold_config.data.hold_out = list(fold.held_out)
        fold_config.data.hold_out_count = 0
    return fold_config


def _report(
    config: DictConfig,
    settings: StudySettings,
    study_dir: Path,
    rows: list[dict[str, Any]],
    curves: list[dict[str, Any]],
    outcomes: list[ExperimentOutcome],
    clock: PhaseClock,
    failed: dict[str, str],
    manifests: dict[Fold, Path],
    clinical: dict[str, Any] | None = None,
) -> dict[str, Path]:
    """The report's files; ``clock``: the invocation's, for its wall time and phases."""
    from cardiomm.cohort.manifest import read_manifest
    from simulations.classical_baselines import TUNING_TABLE
    from simulations.study.clinical import ClinicalSettings
    from simulations.study.design import StudyDesign
    from simulations.study.report import write_report
    from simulations.study.results import Comparison
    from simulations.study.scoring import SECONDS_TABLE, acceleration_rows
    from simulations.study.vendor_skew import vendor_training_images

    wall = clock.elapsed
    training = sum(outcome.wall_seconds for outcome in outcomes)
    # write_report prints it as "Timings measured on: <note>."
    note = (
        f"{describe_machine()}; study wall time {format_seconds(wall)} in this invocation "
        f"before the report ({clock.describe()}), the runs' training "
        f"{format_seconds(training)} in all (this invocation's and earlier ones')"
    )
    if failed:
        note += "; failed, so not in the tables: " + "; ".join(
            f"{label} ({error.splitlines()[0]})" for label, error in failed.items()
        )
    fold = next(iter(manifests))
    design = StudyDesign(
        title=f"Held-out-centre study `{settings.name}` ({config.model.name} model)",
        machine_note=note,
        description=tuple(_design_lines(config, settings, fold)),
        accelerations=tuple(
            acceleration_rows(
                _fold_config(config, fold, manifests[fold]), read_manifest(manifests[fold])
            )
        ),
        comparisons=tuple(Comparison(a, b) for a, b in settings.comparisons),
        selection_groups=settings.selection_groups,
        held_out_evaluation=settings.held_out_evaluation,
        clinical_experiment=ClinicalSettings.from_config(config).experiment,
        vendor_training_images={
            fold.name: vendor_training_images(read_manifest(manifest))
            for fold, manifest in manifests.items()
        }
        if settings.per_vendor
        else {},
        classical_tuning=_fold_tables(study_dir, manifests, TUNING_TABLE),
        classical_seconds=_fold_tables(study_dir, manifests, SECONDS_TABLE),
    )
    return write_report(study_dir, rows, outcomes, design, curves, clinical)


def _fold_tables(study_dir: Path, manifests: dict[Fold, Path], name: str) -> dict[str, str]:
    """Fold name -> the markdown table ``name`` its classical folder holds (where it has one)."""
    return {
        fold.name: table.read_text()
        for fold in manifests
        if (table := _classical_folder(study_dir, fold) / name).is_file()
    }


def _classical_folder(study_dir: Path, fold: Fold) -> Path:
    """Where the fold's evaluation keeps its classical tuning record and result store."""
    from simulations.study.scoring import CLASSICAL_FOLDER

    return study_dir / fold.slug / "evaluation" / CLASSICAL_FOLDER


def _design_lines(config: DictConfig, settings: StudySettings, fold: Fold) -> list[str]:
    """What the study trained, on what, for how long (the report's design section)."""
    sites = len(fold.internal)
    total = sites * settings.rounds * settings.local_steps
    data = (
        f"the synthetic `{config.data.synthetic_preset}` set"
        if config.data.get("synthetic_preset")
        else f"`{config.data.root}`"
    )
    return [
        f"- Data: {data}; {sites} internal sites ({', '.join(fold.internal)}), each split by "
        f"patient into train / validation / test ({config.data.val_fraction:g} validation, "
        f"{config.data.test_fraction:g} test).",
        f"- Model: `{config.model.name}` with the `{config.text.name}` text encoder; AdamW, "
        f"learning rate {config.train.learning_rate:g}, batch {config.train.batch_size}.",
        f"- Budget: every experiment takes {total} optimiser steps in all: a federation "
        f"{settings.rounds} rounds x {settings.local_steps} local steps at each of {sites} "
        f"sites, centralised training {total} steps on the pooled data, local-only "
        f"{settings.rounds * settings.local_steps} steps per site model.",
    ]


def publish_report(report: dict[str, Path], study_dir: Path, target: Path) -> list[Path]:
    """Copy the report, its CSV files and figures (not checkpoints or the MLflow store) to
    ``target`` (e.g. docs/results/quick-study), replacing what an earlier study put there."""
    import shutil

    target = target.expanduser().resolve()
    target.mkdir(parents=True, exist_ok=True)
    for old in target.iterdir():
        if old.is_file() and old.suffix in (".md", ".csv", ".png"):
            old.unlink()
    copied = []
    for path in report.values():
        destination = target / path.relative_to(study_dir)
        destination.parent.mkdir(parents=True, exist_ok=True)
        copied.append(Path(shutil.copy2(path, destination)))
    return copied


def _client_gpus(settings: StudySettings, folds: list[Fold]) -> float:
    """Each simulated site's GPU share: as configured, or GPUs / sites (0 without CUDA)."""
    if settings.client_gpus is not None:
        return settings.client_gpus
    import torch

    if not torch.cuda.is_available():
        return 0.0
    sites = max(len(fold.internal) for fold in folds)
    return min(1.0, torch.cuda.device_count() / sites)
