"""MLflow helpers shared by a federated run's tracker (server/tracking.py) and a study's
(simulations/study/tracking.py): the embedded store, experiment creation, batched logging
within MLflow's limits, and key sanitising.

Only MLflow's client API is used (never ``mlflow.start_run``): it keeps no global active run,
so code sharing a process with a ServerApp cannot log into the wrong run.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

# MLflow's limits: characters per parameter value, parameters and metrics per batch call.
PARAM_VALUE_LIMIT = 6000
PARAM_BATCH = 100
METRIC_BATCH = 1000
# The tag that makes a run another's child in MLflow's UI (a study's experiments).
PARENT_RUN_TAG = "mlflow.parentRunId"
STORE_FILE = "mlflow.db"
ARTIFACT_FOLDER = "mlartifacts"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def embedded_uri(folder: Path) -> str:
    """The default tracking URI: an SQLite store inside a run's or a study's folder."""
    return f"sqlite:///{Path(folder).resolve() / STORE_FILE}"


def mlflow_key(name: str) -> str:
    """``name`` with the characters MLflow refuses in metric and parameter keys replaced."""
    return _UNSAFE.sub("_", name)


def run_exists(client: Any, run_id: str) -> bool:
    """Whether the MLflow store behind ``client`` holds the run (e.g. one to resume)."""
    try:
        client.get_run(run_id)
    except Exception:  # MLflow raises MlflowException for unknown runs
        return False
    return True


def experiment_id(client: Any, name: str, artifact_dir: Path | None) -> str:
    """The id of the experiment called ``name``, created when missing.

    ``artifact_dir`` is where a newly created experiment keeps its artifacts (an embedded
    store keeps them beside itself, not in ./mlruns of whatever folder the process runs in);
    None leaves the choice to the tracking server.
    """
    found = client.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = Path(artifact_dir).resolve().as_uri() if artifact_dir is not None else None
    return str(client.create_experiment(name, artifact_location=location))


def resume_run(client: Any, run_id: str | None) -> bool:
    """Mark ``run_id`` running again and tagged resumed; False when there is no such run."""
    if run_id is None or not run_exists(client, run_id):
        return False
    client.update_run(run_id, status="RUNNING")
    client.set_tag(run_id, "resumed", "true")
    return True


def log_params(client: Any, run_id: str, params: Mapping[str, Any]) -> None:
    """Parameters in batches, values cut to MLflow's limit.

    Keys the run already has are skipped: MLflow refuses to change a logged parameter, and a
    resumed run logs the same ones again.
    """
    from mlflow.entities import Param

    existing = client.get_run(run_id).data.params
    values = [
        Param(mlflow_key(key), str(value)[:PARAM_VALUE_LIMIT])
        for key, value in params.items()
        if mlflow_key(key) not in existing
    ]
    for start in range(0, len(values), PARAM_BATCH):
        client.log_batch(run_id, params=values[start : start + PARAM_BATCH])


def log_metrics(client: Any, run_id: str, metrics: Mapping[str, float], step: int = 0) -> None:
    """``metrics`` at ``step``, in batches (the caller chooses which values are worth logging)."""
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    values = [Metric(mlflow_key(key), float(value), stamp, step) for key, value in metrics.items()]
    for start in range(0, len(values), METRIC_BATCH):
        client.log_batch(run_id, metrics=values[start : start + METRIC_BATCH])


def log_files(client: Any, run_id: str, paths: Iterable[Path], folder: str | None = None) -> None:
    """The files among ``paths`` that exist, as artifacts under ``folder``."""
    for path in paths:
        if Path(path).is_file():
            client.log_artifact(run_id, str(path), folder)


def flatten(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, leaf) of a nested mapping: ``{"a": {"b": 1}}`` -> ``("a.b", 1)``."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value
