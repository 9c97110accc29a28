"""MLflow tracking of a federated run (the only module that talks to MLflow).

By default the store is embedded in the run's folder, so it works offline:
``sqlite:///<output_dir>/mlflow.db`` with artifacts under ``<output_dir>/mlartifacts``.
Look at it with ``mlflow ui --backend-store-uri sqlite:///<absolute output_dir>/mlflow.db``.
One MLflow run per federated run; a resumed run continues the same MLflow run.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from federation.records import RoundRecord
from server.settings import FederationSettings

logger = logging.getLogger(__name__)

# MLflow's limits: values per parameter, parameters and metrics per batch call.
PARAM_VALUE_LIMIT = 6000
PARAM_BATCH = 100
METRIC_BATCH = 1000
# The tag that makes a run another's child in MLflow's UI (a study's experiments).
PARENT_RUN_TAG = "mlflow.parentRunId"
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


def embedded_uri(output_dir: Path) -> str:
    """The default tracking URI: an SQLite store inside the run's folder."""
    return f"sqlite:///{Path(output_dir).resolve() / 'mlflow.db'}"


class Tracker:
    """Does nothing: used when ``tracking.enabled`` is false."""

    run_id: str | None = None

    def log_round(self, record: Mapping[str, Any], checkpoint: Path) -> None:
        """Metrics of one round (step = round) and its checkpoint."""

    def log_final(self, final_checkpoint: Path, history: Path) -> None:
        """The final model and the history."""

    def end(self, failed: bool) -> None:
        """Mark the run finished (or failed)."""


class MlflowTracker(Tracker):
    """Writes one federated run to an MLflow run through the client API.

    The client API (not ``mlflow.start_run``) keeps no global active run, so a ServerApp
    running in the same process as other code cannot log into the wrong run.
    """

    def __init__(
        self, settings: FederationSettings, config: DictConfig, run_id: str | None = None
    ) -> None:
        from mlflow.tracking import MlflowClient

        self.settings = settings
        uri = settings.mlflow_uri or embedded_uri(settings.output_dir)
        self.uri = uri
        self.client = MlflowClient(tracking_uri=uri)
        if run_id is not None and run_exists(self.client, run_id):
            self.run_id = run_id
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "resumed", "true")
            return
        experiment = self.client.get_experiment_by_name(settings.experiment)
        if experiment is None:
            location = None
            if settings.mlflow_uri is None:
                location = (Path(settings.output_dir).resolve() / "mlartifacts").as_uri()
            experiment_id = self.client.create_experiment(
                settings.experiment, artifact_location=location
            )
        else:
            experiment_id = experiment.experiment_id
        tags = {"strategy": settings.strategy, "method": settings.method}
        if settings.mlflow_parent_run_id:  # a child run, e.g. one experiment of a study
            tags[PARENT_RUN_TAG] = str(settings.mlflow_parent_run_id)
        run = self.client.create_run(
            experiment_id,
            run_name=settings.mlflow_run_name or Path(settings.output_dir).name,
            tags=tags,
        )
        self.run_id = run.info.run_id
        self._log_params(OmegaConf.to_container(config, resolve=True))
        logger.info("MLflow run %s in %s", self.run_id, uri)

    def _log_params(self, config: Any) -> None:
        from mlflow.entities import Param

        params = [Param(key, str(value)[:PARAM_VALUE_LIMIT]) for key, value in _flatten(config, "")]
        for start in range(0, len(params), PARAM_BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + PARAM_BATCH])

    def log_round(self, record: RoundRecord, checkpoint: Path) -> None:
        from mlflow.entities import Metric

        step = record.round
        stamp = int(time.time() * 1000)
        metrics = [
            Metric(mlflow_key(key), value, stamp, step)
            for key, value in round_metrics(record).items()
        ]
        for start in range(0, len(metrics), METRIC_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start : start + METRIC_BATCH])
        if self.settings.log_round_checkpoints:
            self.client.log_artifact(self.run_id, str(checkpoint), "checkpoints")

    def log_final(self, final_checkpoint: Path, history: Path) -> None:
        latest = final_checkpoint.parent / "latest.pt"
        if latest.is_file():
            self.client.log_artifact(self.run_id, str(latest), "checkpoints")
        self.client.log_artifact(self.run_id, str(final_checkpoint), "model")
        self.client.log_artifact(self.run_id, str(history))
        config = history.parent / "config.yaml"
        if config.is_file():
            self.client.log_artifact(self.run_id, str(config))

    def end(self, failed: bool) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def open_tracker(
    settings: FederationSettings, config: DictConfig, run_id: str | None = None
) -> Tracker:
    """An MLflow tracker (continuing ``run_id`` when it exists), or a no-op one."""
    if not settings.mlflow_enabled:
        return Tracker()
    return MlflowTracker(settings, config, run_id)


def round_metrics(record: RoundRecord) -> dict[str, float]:
    """The numbers of a round record under MLflow metric names.

    ``train/<m>`` and ``evaluate/<m>`` (aggregated), ``global/<split>/<m>``,
    ``site/<site-id>/<m>`` (training) and ``site/<site-id>/eval-<m>``, ``timing/<k>``,
    ``traffic/<k>`` and ``errors`` (failed or missing replies).
    """
    values: dict[str, Any] = {"errors": float(len(record.errors))}
    values.update({f"train/{key}": value for key, value in record.train.items()})
    values.update({f"evaluate/{key}": value for key, value in record.evaluate.items()})
    values.update({f"global/{key}": value for key, value in (record.global_scores or {}).items()})
    for site_id, site in record.sites.items():
        prefix = f"site/{site_id}"
        values.update({f"{prefix}/{key}": value for key, value in (site.train or {}).items()})
        values.update(
            {f"{prefix}/eval-{key}": value for key, value in (site.evaluate or {}).items()}
        )
        for key, value in (
            ("bytes-sent", site.bytes_sent),
            ("bytes-received", site.bytes_received),
        ):
            if value is not None:
                values[f"{prefix}/{key}"] = value
    values.update({f"timing/{key}": value for key, value in record.timing.items()})
    values.update({f"traffic/{key}": value for key, value in record.traffic.items()})
    return {key: float(value) for key, value in values.items() if _is_number(value)}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isinf(value)


def _flatten(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _flatten(item, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix, value


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
