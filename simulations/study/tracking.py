"""MLflow for a study: one parent run (the study), one child run per experiment.

Federated experiments create their child run themselves (the ServerApp's tracker, with
``tracking.parent_run_id`` and ``tracking.run_name``); local-only and centralised ones get
theirs here. After the evaluation every child receives its headline held-out scores. The
store defaults to ``sqlite:///<study_dir>/mlflow.db`` with artifacts in
``<study_dir>/mlartifacts``; look at it with
``mlflow ui --backend-store-uri sqlite:///<study_dir>/mlflow.db``.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from federation.mlflow_store import (
    ARTIFACT_FOLDER,
    PARENT_RUN_TAG,
    embedded_uri,
    experiment_id,
    log_files,
    log_metrics,
    log_params,
    resume_run,
)
from simulations.study.composition import hydra_value
from simulations.study.machine import describe_machine
from simulations.study.plan import FEDERATED, PlannedExperiment
from simulations.study.settings import StudySettings

if TYPE_CHECKING:
    from simulations.study.outcome import ExperimentOutcome

logger = logging.getLogger(__name__)


def study_store_uri(study_dir: Path, configured: str | None) -> str:
    """``tracking.mlflow_uri``, or the embedded SQLite store in the study folder."""
    return configured or embedded_uri(study_dir)


class StudyTracker:
    """The study's MLflow runs (client API only: no global active run in this process).

    Args:
        uri: tracking URI.
        experiment: MLflow experiment name (``tracking.experiment``).
        artifact_dir: artifact location when the experiment is created in an embedded store.
        parent_run_id: continue this parent run (a resumed study), if it still exists.
        name: the parent run's name.
    """

    def __init__(
        self,
        uri: str,
        experiment: str,
        artifact_dir: Path | None,
        parent_run_id: str | None,
        name: str,
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.uri = uri
        self.experiment_name = experiment
        self.client = MlflowClient(tracking_uri=uri)
        # Created here, before any ServerApp looks for it, so that the artifacts of every
        # child run land in the study folder rather than in ./mlruns of the app's folder.
        self.experiment_id = experiment_id(self.client, experiment, artifact_dir)
        if resume_run(self.client, parent_run_id):
            self.parent_run_id = parent_run_id
        else:
            run = self.client.create_run(self.experiment_id, run_name=name)
            self.parent_run_id = run.info.run_id

    def log_study_params(self, params: Mapping[str, Any]) -> None:
        self._log_params(self.parent_run_id, params)

    def child_run(self, name: str, params: Mapping[str, Any], tags: Mapping[str, str]) -> str:
        """A finished child run of the parent (local-only and centralised experiments)."""
        run = self.client.create_run(
            self.experiment_id,
            run_name=name,
            tags={PARENT_RUN_TAG: self.parent_run_id, **tags},
        )
        self._log_params(run.info.run_id, params)
        self.client.set_terminated(run.info.run_id, status="FINISHED")
        return run.info.run_id

    def find_child(self, name: str) -> str | None:
        """The child run called ``name`` (made by a federated experiment's ServerApp)."""
        runs = self.client.search_runs(
            [self.experiment_id],
            filter_string=f"tags.`{PARENT_RUN_TAG}` = '{self.parent_run_id}'",
            max_results=1000,
        )
        matches = [run for run in runs if run.info.run_name == name]
        return matches[0].info.run_id if matches else None

    def log_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        """The finite numbers among ``metrics`` (anything else is left out)."""
        finite = {
            key: value
            for key, value in metrics.items()
            if isinstance(value, int | float) and math.isfinite(value)
        }
        log_metrics(self.client, run_id, finite)

    def log_artifacts(self, paths: Iterable[Path]) -> None:
        log_files(self.client, self.parent_run_id, paths, "report")

    def end(self, failed: bool) -> None:
        self.client.set_terminated(self.parent_run_id, status="FAILED" if failed else "FINISHED")

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        log_params(self.client, run_id, params)


def headline_metrics(rows: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Held-out scores of one run from its per-file rows (file_scores.csv).

    ``held-out/<mask>/<metric>`` and ``held-out/<metric>``: means over the held-out files
    (and over the site models of a local-only experiment) with full metadata, ranking view;
    ``held-out/<model>/<metric>`` per model when there are several.
    """
    values: dict[str, list[float]] = defaultdict(list)
    models = set()
    for row in rows:
        if row.get("split") != "held-out" or row.get("metadata", "full") != "full":
            continue
        if row.get("view", "ranking") != "ranking":
            continue
        models.add(str(row.get("model")))
        for metric in ("psnr", "ssim", "nmse"):
            score = _number(row.get(metric))
            if score is None:
                continue
            values[f"held-out/{row.get('mask')}/{metric}"].append(score)
            values[f"held-out/{metric}"].append(score)
            values[f"held-out/model-{row.get('model')}/{metric}"].append(score)
    if len(models) <= 1:
        values = {key: items for key, items in values.items() if "/model-" not in key}
    return {key: sum(items) / len(items) for key, items in values.items() if items}


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# -- the study's runs -------------------------------------------------------------------------


def open_study_tracker(
    config: DictConfig, settings: StudySettings, study_dir: Path, state: dict[str, Any]
) -> StudyTracker | None:
    """The study's tracker (None with ``tracking.enabled=false``), continuing the parent run
    that ``study.json`` names when the study is resumed."""
    if not config.tracking.enabled:  # typed by federation/schema.py, TrackingConfig
        return None
    configured = config.tracking.mlflow_uri
    tracker = StudyTracker(
        uri=study_store_uri(study_dir, configured),
        experiment=config.tracking.experiment,
        artifact_dir=None if configured else study_dir / ARTIFACT_FOLDER,
        parent_run_id=state.get("mlflow_parent_run_id"),
        name=settings.name,
    )
    tracker.log_study_params(
        {
            "study.name": settings.name,
            "study.folds": settings.folds,
            "study.rounds": settings.rounds,
            "study.local_steps": settings.local_steps,
            "study.experiments": ",".join(spec.name for spec in settings.experiments),
            "study.seeds": ",".join(str(seed) for seed in settings.seeds),
            "model": str(config.model.name),
            "text": str(config.text.name),
            "data.root": str(config.data.root),
            "machine": describe_machine(),
        }
    )
    return tracker


def federated_tracking(config: DictConfig, tracker: StudyTracker | None) -> tuple[str, ...]:
    """Tracking overrides of a federated experiment: the study's store, as a child run."""
    if tracker is None:
        return ("tracking.enabled=false",)
    return (
        "tracking.enabled=true",
        f"tracking.mlflow_uri={hydra_value(tracker.uri)}",
        f"tracking.experiment={hydra_value(tracker.experiment_name)}",
        # The final and latest models are enough in a study's store.
        "tracking.log_round_checkpoints=false",
        f"++tracking.parent_run_id={hydra_value(tracker.parent_run_id)}",
    )


def track_experiment(
    tracker: StudyTracker | None, item: PlannedExperiment, outcome: ExperimentOutcome
) -> None:
    """The experiment's child run: made here, or found (a federation makes its own)."""
    if tracker is None:
        return
    tags = {
        "fold": item.fold.name,
        "experiment": item.spec.name,
        "kind": item.spec.kind,
        "seed": str(item.seed),
    }
    params = {
        "kind": item.spec.kind,
        "fold": item.fold.name,
        "seed": item.seed,
        "overrides": " ".join(item.spec.overrides),
        "steps_per_model": item.budget.steps_per_model,
        "total_steps": item.budget.total_steps,
        "sites": ",".join(item.fold.internal),
        "held_out": ",".join(item.fold.held_out),
        "wall_seconds": round(outcome.wall_seconds, 1),
    }
    if item.spec.kind == FEDERATED:
        run_id = tracker.find_child(item.label)
        if run_id is None:
            logger.warning("no MLflow run of %s found in %s", item.label, tracker.uri)
            return
        for key, value in tags.items():
            tracker.client.set_tag(run_id, key, value)
    else:
        run_id = tracker.child_run(item.label, params, tags)
    tracker.log_metrics(run_id, {"wall-seconds": outcome.wall_seconds})
    outcome.details["mlflow_run_id"] = run_id


def track_results(
    tracker: StudyTracker,
    outcomes: list[ExperimentOutcome],
    rows: list[dict[str, Any]],
    report: dict[str, Path],
    wall: float,
    failed: dict[str, str],
) -> None:
    for outcome in outcomes:
        run_id = outcome.details.get("mlflow_run_id")
        if not run_id:
            continue
        own = [
            row
            for row in rows
            if row.get("fold") == outcome.fold
            and row.get("experiment") == outcome.experiment
            and row.get("seed") == str(outcome.seed)
        ]
        tracker.log_metrics(run_id, headline_metrics(own))
    tracker.log_metrics(tracker.parent_run_id, {"study-wall-seconds": wall})
    tracker.log_artifacts(report.values())
    tracker.end(failed=bool(failed))
