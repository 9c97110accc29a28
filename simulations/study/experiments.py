"""Run one planned experiment of a study and describe what it left (an ExperimentOutcome).

- local-only: ``simulations.training.run_training`` once per internal site
  (``data.sites=[<site>]``), each model for the per-site budget;
- centralised: ``run_training`` on the pooled internal sites for the federation's total;
- federated: `flwr run .` through :mod:`simulations.study.flower_run` (Flower's simulation
  engine with the project's ServerApp and ClientApp), one simulated site per internal centre.

Every experiment composes its root config from the study's (:mod:`.composition`), with the
fold's partition manifest (``data.manifest``) so that all experiments of a fold see exactly
the same patients in the same splits.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from cardiomm.privacy import PrivacySettings
from client.site_config import write_site_file
from federation.protocol import (
    DP_EPSILON,
    TRAIN_SECONDS,
)
from federation.records import RoundRecord, read_history
from simulations.study.backbone import backbone_override
from simulations.study.composition import compose, experiment_overrides, hydra_value
from simulations.study.flower_run import FlowerRun, FlowerRunResult, run_flower_simulation
from simulations.study.outcome import ExperimentOutcome
from simulations.study.plan import CENTRALISED, FEDERATED, LOCAL, PlannedExperiment
from simulations.study.settings import StudySettings

FINAL = Path("checkpoints") / "final.pt"
LATEST = Path("checkpoints") / "latest.pt"
# The simulated sites' own settings (client/site_config.py), written per experiment.
SITE_FILE = "site_config.yaml"


@dataclasses.dataclass(frozen=True)
class ExperimentContext:
    """What every experiment of a study shares.

    Attributes:
        study: the study config (``configs/simulate.yaml`` composed).
        settings: its ``study`` block.
        manifest: the fold's partition manifest file.
        run_dir: the experiment's folder.
        tracking: the ``tracking.*`` overrides of a federated run (the study's store and
            parent run, or ``tracking.enabled=false``).
        client_gpus: GPU share per simulated site, resolved.
        backbone: the public backbone's checkpoint (simulations/study/backbone.py) that
            experiments marked ``public_backbone`` start from.
    """

    study: DictConfig
    settings: StudySettings
    manifest: Path
    run_dir: Path
    tracking: tuple[str, ...]
    client_gpus: float
    backbone: Path | None = None


def root_config(kind: str) -> str:
    """The config an experiment of ``kind`` composes."""
    return "federation" if kind == FEDERATED else "config"


def definition(planned: PlannedExperiment, study: DictConfig, settings: StudySettings) -> dict:
    """What makes the experiment what it is; a resumed study re-runs nothing whose
    definition changed without saying so (the runner compares it with the outcome's)."""
    spec = planned.spec
    extra = [*settings.federated_overrides] if spec.kind == FEDERATED else []
    return {
        "kind": spec.kind,
        "seed": planned.seed,
        "overrides": experiment_overrides(study, root_config(spec.kind), [*extra, *spec.overrides]),
        "held_out": list(planned.fold.held_out),
        "sites": list(planned.fold.internal),
        "steps_per_model": planned.budget.steps_per_model,
        "total_steps": planned.budget.total_steps,
        "rounds": planned.budget.rounds,
        "local_steps": planned.budget.local_steps,
        # The backbone's preset and steps: another backbone is another experiment.
        **(
            {"public_backbone": [*(settings.public_backbone or ()), "held-out names excluded"]}
            if spec.public_backbone
            else {}
        ),
    }


def run_experiment(planned: PlannedExperiment, context: ExperimentContext) -> ExperimentOutcome:
    """Run ``planned`` into ``context.run_dir`` and return its outcome (not yet written)."""
    runners = {LOCAL: _run_local, CENTRALISED: _run_centralised, FEDERATED: _run_federated}
    return runners[planned.spec.kind](planned, context)


def _run_local(planned: PlannedExperiment, context: ExperimentContext) -> ExperimentOutcome:
    began = time.monotonic()
    checkpoints, steps, reused_seconds = {}, {}, 0.0
    for site in planned.fold.internal:
        site_dir = context.run_dir / site
        summary, reused = _train(planned, context, site_dir, [site], f"{planned.spec.name}-{site}")
        reused_seconds += reused
        checkpoints[site] = site_dir / FINAL
        steps[site] = int(summary["metrics"]["steps"])
    return _outcome(
        planned,
        context,
        checkpoints,
        None,
        time.monotonic() - began + reused_seconds,
        {"steps_taken": steps},
    )


def _run_centralised(planned: PlannedExperiment, context: ExperimentContext) -> ExperimentOutcome:
    began = time.monotonic()
    summary, reused = _train(planned, context, context.run_dir, [], planned.spec.name)
    return _outcome(
        planned,
        context,
        {"global": context.run_dir / FINAL},
        None,
        time.monotonic() - began + reused,
        {"steps_taken": {"pooled": int(summary["metrics"]["steps"])}},
    )


def _train(
    planned: PlannedExperiment,
    context: ExperimentContext,
    output_dir: Path,
    sites: list[str],
    method: str,
) -> tuple[dict[str, Any], float]:
    """``run_training`` for one model; a model finished by an earlier attempt is reused.

    Returns:
        the training summary (metrics.json) and the seconds of a reused model (else 0).
    """
    from simulations.training import run_training

    metrics = output_dir / "metrics.json"
    if metrics.is_file() and (output_dir / FINAL).is_file():
        summary = json.loads(metrics.read_text())
        return summary, float(summary["metrics"].get(TRAIN_SECONDS, 0.0))
    # Centralised training keeps a checkpoint every federated round's worth of steps (the
    # learning curve); a local-only site model needs none.
    every = planned.budget.total_steps // context.settings.rounds if not sites else 0
    fixed = [
        f"data.manifest={hydra_value(str(context.manifest))}",
        f"data.sites={hydra_value(sites)}",
        f"train.max_steps={planned.budget.steps_per_model}",
        # The training seed; the patients come from the fold's manifest whatever the seed.
        f"seed={planned.seed}",
        f"checkpoint_every={every}",
        # The cores of one simulated site: the same compute per model as in a federation, and
        # no OpenMP threads stalling on cores that other processes hold.
        f"train.num_threads={context.settings.site_threads}",
        f"output_dir={hydra_value(str(output_dir))}",
        f"method={hydra_value(method)}",
    ]
    overrides = experiment_overrides(context.study, "config", planned.spec.overrides, fixed)
    config = compose("config", overrides)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "overrides.txt").write_text("\n".join(overrides) + "\n")
    return run_training(config, show_progress=False), 0.0


def _run_federated(planned: PlannedExperiment, context: ExperimentContext) -> ExperimentOutcome:
    settings, budget, run_dir = context.settings, planned.budget, context.run_dir
    sites = planned.fold.internal
    # Simulated nodes beyond the internal sites play the held-out centres, evaluation only
    # (client/site.py); a tuning study never lets them in.
    evaluation_sites = (
        planned.fold.held_out if settings.evaluation_sites and settings.held_out_evaluation else ()
    )
    overrides = _federation_overrides(planned, context)
    config = compose("federation", overrides)
    _check_federation(config)  # a bad setting fails here, not minutes later inside Flower
    run_dir.mkdir(parents=True, exist_ok=True)
    # The study operates every simulated site: their own settings (data, threads, DP-SGD
    # budget) reach them in the site file, as a deployed site's would, not via the run config.
    site_file = write_site_file(config, run_dir / SITE_FILE)
    result = run_flower_simulation(
        FlowerRun(
            output_dir=run_dir,
            overrides=tuple(overrides),
            num_sites=len(sites) + len(evaluation_sites),
            rounds=budget.rounds,
            client_cpus=settings.client_cpus,
            client_gpus=context.client_gpus,
            timeout=settings.experiment_timeout,
            site_config=site_file,
        )
    )
    return _outcome(
        planned,
        context,
        {"global": result.final_checkpoint},
        result.history,
        result.wall_seconds,
        _federation_details(config, result),
    )


def _federation_overrides(planned: PlannedExperiment, context: ExperimentContext) -> list[str]:
    """The federation config's overrides: the study's, the experiment's, then the run's own
    (data, budget, seed, resume, output, tracking, the public backbone when it starts from
    it).

    Raises:
        ValueError: the experiment starts from the public backbone and none was trained.
    """
    settings, budget, run_dir = context.settings, planned.budget, context.run_dir
    fixed = [
        f"data.manifest={hydra_value(str(context.manifest))}",
        "data.sites=[]",
        f"federation.num_rounds={budget.rounds}",
        f"federation.local_steps={budget.local_steps}",
        f"federation.min_sites={len(planned.fold.internal)}",
        "federation.fraction_train=1.0",
        # The held-out centres are scored after training, from the round checkpoints (the
        # learning curves); in the federation, only by themselves as evaluation-only sites.
        "federation.global_evaluation=false",
        f"federation.zero_shot_every={settings.zero_shot_every}",
        *_cross_site_overrides(planned, context),
        f"seed={planned.seed}",
        # An interrupted federation continues from its last round (and its MLflow run).
        f"federation.resume={'true' if (run_dir / LATEST).is_file() else 'false'}",
        f"output_dir={hydra_value(str(run_dir))}",
        f"method={hydra_value(planned.spec.name)}",
        f"train.num_threads={settings.site_threads}",
        *context.tracking,
        f"++tracking.run_name={hydra_value(planned.label)}",
    ]
    if planned.spec.public_backbone:
        if context.backbone is None:
            raise ValueError(f"{planned.spec.name} starts from the public backbone, none trained")
        fixed.append(backbone_override(context.backbone))
    return experiment_overrides(
        context.study,
        "federation",
        [*settings.federated_overrides, *planned.spec.overrides],
        fixed,
    )


def _federation_details(config: DictConfig, result: FlowerRunResult) -> dict[str, Any]:
    """What the outcome records of a federated run beside its scores: strategy, privacy and
    its spent budget, text encoder, Flower's log, steps and rounds, processes stopped."""
    history = read_history(result.history)
    details = {
        "strategy": str(config.strategy.name),
        "privacy": _privacy(config),
        "text_encoder": str(config.text.name),
        "flwr_log": str(result.log),
        "steps_taken": _steps_taken(history),
        "rounds_completed": max((record.round for record in history), default=0),
        # What `flwr run` left running (its SuperLink at least), stopped by process id.
        "processes_stopped": len(result.stopped),
        "processes_killed": len(result.killed),
    }
    epsilon = _epsilon(history)
    if epsilon is not None:
        details["dp_epsilon"] = epsilon
        dp_sgd = PrivacySettings.read(config).dp_sgd
        details["dp_unit"] = dp_sgd.unit
        target = dp_sgd.target_epsilon
        if target is not None:
            details["dp_target_epsilon"] = float(target)
    central = history[-1].aggregation.get("central-dp-epsilon") if history else None
    if isinstance(central, int | float) and math.isfinite(central):
        details["central_dp_epsilon"] = float(central)
    return details


def _outcome(
    planned: PlannedExperiment,
    context: ExperimentContext,
    checkpoints: dict[str, Path],
    history: Path | None,
    wall_seconds: float,
    details: dict[str, Any],
) -> ExperimentOutcome:
    missing = [str(path) for path in checkpoints.values() if not Path(path).is_file()]
    if missing:
        raise RuntimeError(f"{planned.label}: training left no checkpoint at {', '.join(missing)}")
    return ExperimentOutcome(
        fold=planned.fold.name,
        experiment=planned.spec.name,
        kind=planned.spec.kind,
        seed=planned.seed,
        checkpoints=checkpoints,
        run_dir=context.run_dir,
        history=history,
        wall_seconds=wall_seconds,
        steps_per_site=planned.budget.steps_per_model,
        details={
            "description": planned.spec.description,
            "manifest": str(context.manifest),
            **definition(planned, context.study, context.settings),
            **details,
        },
    )


def _cross_site_overrides(planned: PlannedExperiment, context: ExperimentContext) -> list[str]:
    """The cross-site matrix for the study's chosen federations (with the fold's local-only
    models of the same seed where they were trained first), off for the others; never in a
    tuning study, which may not look at held-out centres."""
    settings = context.settings
    wanted = planned.spec.name in settings.cross_site_experiments
    if not wanted or not settings.held_out_evaluation:
        return ["federation.cross_site.enabled=false"]
    local = context.run_dir.parent.parent / "local-only" / f"seed-{planned.seed}" / "outcome.json"
    models = {}
    if local.is_file():
        outcome = ExperimentOutcome.read(local)
        models = {f"local-{site}": str(path) for site, path in sorted(outcome.checkpoints.items())}
    entries = ",".join(f"{name}:{hydra_value(path)}" for name, path in models.items())
    return ["federation.cross_site.enabled=true", f"++federation.cross_site.models={{{entries}}}"]


def _check_federation(config: DictConfig) -> None:
    from server.settings import FederationSettings

    FederationSettings.from_config(config)


def _privacy(config: DictConfig) -> str:
    privacy = PrivacySettings.read(config)
    enabled = [
        name
        for name, settings in (
            ("dp_sgd", privacy.dp_sgd),
            ("central_dp", privacy.central_dp),
            ("secure_aggregation", privacy.secure_aggregation),
        )
        if settings.enabled
    ]
    return "+".join(enabled) or "none"


def _steps_taken(history: list[RoundRecord]) -> dict[str, int]:
    """Optimiser steps each site really took over the run (DP sites may stop early)."""
    steps: dict[str, int] = {}
    for record in history:
        for site, entry in record.sites.items():
            value = (entry.train or {}).get("steps")
            if isinstance(value, int | float) and math.isfinite(value):
                steps[site] = steps.get(site, 0) + int(value)
    return steps


def _epsilon(history: list[RoundRecord]) -> float | None:
    """The largest cumulative DP-SGD epsilon any site reported (None without DP-SGD)."""
    values = [
        float(entry.train[DP_EPSILON])
        for record in history
        for entry in record.sites.values()
        if DP_EPSILON in (entry.train or {})
    ]
    finite = [value for value in values if math.isfinite(value)]
    return max(finite) if finite else None
