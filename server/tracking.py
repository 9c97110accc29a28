"""MLflow tracking of a federated run (the only module that talks to MLflow).

By default the store is embedded in the run's folder, so it works offline:
``sqlite:///<output_dir>/mlflow.db`` with artifacts under ``<output_dir>/mlartifacts``.
Look at it with ``mlflow ui --backend-store-uri sqlite:///<absolute output_dir>/mlflow.db``.
One MLflow run per federated run; a resumed run continues the same MLflow run.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from federation.mlflow_store import (
    ARTIFACT_FOLDER,
    PARENT_RUN_TAG,
    embedded_uri,
    experiment_id,
    flatten,
    log_files,
    log_metrics,
    log_params,
    resume_run,
)
from federation.records import RoundRecord
from server.settings import FederationSettings

logger = logging.getLogger(__name__)


class Tracker:
    """Does nothing: used when ``tracking.enabled`` is false."""

    run_id: str | None = None

    def log_round(self, record: RoundRecord, checkpoint: Path) -> None:
        """Metrics of one round (step = round) and its checkpoint."""

    def log_final(self, final_checkpoint: Path, history: Path) -> None:
        """The final model and the history."""

    def log_cross_site(self, metrics: dict[str, float], files: list[Path]) -> None:
        """The cross-site matrix: its scores and its files."""

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
        if resume_run(self.client, run_id):
            self.run_id = run_id
            return
        artifact_dir = None
        if settings.mlflow_uri is None:
            artifact_dir = Path(settings.output_dir) / ARTIFACT_FOLDER
        experiment = experiment_id(self.client, settings.experiment, artifact_dir)
        tags = {"strategy": settings.strategy, "method": settings.method}
        if settings.mlflow_parent_run_id:  # a child run, e.g. one experiment of a study
            tags[PARENT_RUN_TAG] = str(settings.mlflow_parent_run_id)
        run = self.client.create_run(
            experiment,
            run_name=settings.mlflow_run_name or Path(settings.output_dir).name,
            tags=tags,
        )
        self.run_id = run.info.run_id
        params = dict(flatten(OmegaConf.to_container(config, resolve=True)))
        log_params(self.client, self.run_id, params)
        logger.info("MLflow run %s in %s", self.run_id, uri)

    def log_round(self, record: RoundRecord, checkpoint: Path) -> None:
        log_metrics(self.client, self.run_id, round_metrics(record), step=record.round)
        if self.settings.log_round_checkpoints:
            self.client.log_artifact(self.run_id, str(checkpoint), "checkpoints")

    def log_final(self, final_checkpoint: Path, history: Path) -> None:
        log_files(self.client, self.run_id, [final_checkpoint.parent / "latest.pt"], "checkpoints")
        self.client.log_artifact(self.run_id, str(final_checkpoint), "model")
        log_files(self.client, self.run_id, [history, history.parent / "config.yaml"])

    def log_cross_site(self, metrics: dict[str, float], files: list[Path]) -> None:
        log_metrics(self.client, self.run_id, metrics)
        log_files(self.client, self.run_id, files, "cross-site")

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
    ``site/<site-id>/<m>`` (training) and ``site/<site-id>/eval-<m>``,
    ``zero-shot/<site-id>/<m>`` (an evaluation-only site, per group too), ``timing/<k>``,
    ``traffic/<k>``, ``errors`` (failed or missing replies), ``rejected`` (replies or updates
    refused), ``clipped-updates`` and ``capped-examples``.
    """
    values: dict[str, Any] = {
        "errors": float(len(record.errors)),
        "rejected": float(len(record.rejected)),
        "clipped-updates": float(len(record.aggregation.get("clipped-updates", []))),
        "capped-examples": float(len(record.aggregation.get("capped-examples", []))),
    }
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
    for site_id, scores in record.zero_shot.items():
        values.update({f"zero-shot/{site_id}/{key}": value for key, value in scores.items()})
    values.update({f"timing/{key}": value for key, value in record.timing.items()})
    values.update({f"traffic/{key}": value for key, value in record.traffic.items()})
    return {key: float(value) for key, value in values.items() if _is_number(value)}


def _is_number(value: Any) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return not math.isinf(value)
