"""A study folder's state: ``study.json`` and each experiment's recorded definition.

An experiment is defined by its kind, Hydra overrides, folds and budget
(:func:`simulations.study.experiments.definition`). Its ``definition.json`` is written when it
starts and its ``outcome.json`` holds the same when it finished; a resumed study that would
define it differently is refused, so old results and partial checkpoints are never mixed
into a different experiment.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simulations.study.outcome import ExperimentOutcome
from simulations.study.plan import PlannedExperiment
from simulations.study.settings import StudySettings
from simulations.study.tracking import StudyTracker

STUDY_FILE = "study.json"
OUTCOME_FILE = "outcome.json"
DEFINITION_FILE = "definition.json"
ERROR_FILE = "error.txt"


def check_unchanged(run_dir: Path, wanted: dict[str, Any]) -> None:
    """Raise when a finished or started experiment in ``run_dir`` was defined differently
    (its results, or its partial checkpoints, would be mixed into the new experiment)."""
    outcome_path = run_dir / OUTCOME_FILE
    if outcome_path.is_file():
        details = ExperimentOutcome.read(outcome_path).details
        recorded = {key: details.get(key) for key in wanted}
        if recorded != wanted:
            raise ValueError(_changed(outcome_path, recorded, wanted))
    definition_path = run_dir / DEFINITION_FILE
    if definition_path.is_file():
        recorded = json.loads(definition_path.read_text())
        if recorded != wanted:
            raise ValueError(_changed(definition_path, recorded, wanted))


def claim(run_dir: Path, wanted: dict[str, Any]) -> None:
    """Record the definition of an experiment about to run (checked on resume)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / DEFINITION_FILE).write_text(json.dumps(wanted, indent=2))
    error = run_dir / ERROR_FILE
    if error.is_file():
        error.unlink()


def _changed(path: Path, recorded: dict[str, Any], wanted: dict[str, Any]) -> str:
    keys = sorted(key for key in wanted if recorded.get(key) != wanted[key])
    return (
        f"{path} records an experiment defined differently ({', '.join(keys)} changed: "
        f"{ {key: recorded.get(key) for key in keys} } -> { {key: wanted[key] for key in keys} }); "
        f"resume with the same settings, or choose another output_dir, or delete "
        f"{path.parent} to run it again"
    )


def read_state(study_dir: Path) -> dict[str, Any]:
    path = study_dir / STUDY_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def write_state(
    study_dir: Path,
    state: dict[str, Any],
    settings: StudySettings,
    planned: Sequence[PlannedExperiment],
    tracker: StudyTracker | None,
    config: DictConfig,
) -> None:
    state.update(
        {
            "name": settings.name,
            "created": state.get("created") or _now(),
            "invoked": _now(),
            "plan": [
                {
                    "fold": item.fold.name,
                    "experiment": item.spec.name,
                    "kind": item.spec.kind,
                    "steps_per_model": item.budget.steps_per_model,
                    "total_steps": item.budget.total_steps,
                }
                for item in planned
            ],
            "mlflow_uri": tracker.uri if tracker is not None else None,
            "mlflow_parent_run_id": tracker.parent_run_id if tracker is not None else None,
        }
    )
    _save(study_dir / STUDY_FILE, state)
    (study_dir / "config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))


def finish_state(
    study_dir: Path,
    ran: list[str],
    skipped: list[str],
    failed: dict[str, str],
    report: dict[str, Path],
    wall: float,
    phases: dict[str, float] | None = None,
) -> None:
    """Record the invocation's end in study.json: what ran, was skipped or failed, the
    report's files, the wall seconds and (``phases``) the seconds of each phase."""
    state = read_state(study_dir)
    state.update(
        {
            "finished": _now(),
            "ran": ran,
            "skipped": skipped,
            "failed": failed,
            "report": {name: str(path) for name, path in report.items()},
            "wall_seconds": wall,
            "phase_seconds": dict(phases or {}),
        }
    )
    _save(study_dir / STUDY_FILE, state)


def _save(path: Path, values: dict[str, Any]) -> None:
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(json.dumps(values, indent=2))
    partial.replace(path)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
