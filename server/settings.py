"""The ServerApp's settings, read once from the composed Hydra config.

Every config key the server reads is named here (and only here), with the default used when
``configs/federation.yaml`` leaves it out, so the rest of ``server/`` works on typed fields;
the ``strategy`` section is read and checked by strategies/settings.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cardiomm.privacy import PrivacySettings
from federation.config import select
from federation.reply_checks import ReplyLimits
from federation.transport import TransportSettings
from strategies.settings import StrategySettings
from strategies.update_validation import ValidationSettings


@dataclasses.dataclass(frozen=True)
class FederationSettings:
    """What the round loop, the strategy, checkpoints and tracking need.

    Attributes:
        num_rounds: last round to run (a resumed run continues up to it).
        local_steps: optimiser steps per site and round (``local-steps``).
        learning_rate: the sites' learning rate (``learning-rate``).
        seed: sent to the sites with the round so their training is reproducible.
        fraction_train / fraction_evaluate: share of connected sites sampled per round.
        min_sites: minimum sites to sample and to wait for.
        timeout: seconds to wait for replies (None: wait for every reply).
        resume: False, True (latest checkpoint in ``output_dir``) or a checkpoint path.
        initial_checkpoint: a CardioMM model checkpoint to start from (None: fresh weights).
        aggregation: the ``strategy`` section (strategies/settings.py: the builder, vendor
            weighting, reducer, personalisation, server optimiser).
        validation: checks on every update before aggregation (``federation.validation``).
        replies: the bounds on every reply's fields (``federation.replies``).
        sites: the consortium's sites and their vendors (``federation.sites``; empty: any
            site may join, bound to its node and vendor at its first reply).
        privacy: DP-SGD, central DP and secure aggregation (``privacy``).
        transport: what the weights travel as (``federation.transport``,
            federation/transport.py).
        zero_shot_every: the evaluation-only sites score the global model every this many
            rounds and after the last (``federation.zero_shot_every``; 0: only after the last).
        cross_site: after the last round, score every model at every site that allows it
            (``federation.cross_site.enabled``, server/cross_site.py).
        cross_site_models: more models for that matrix, ``{name: checkpoint path}``
            (``federation.cross_site.models``).
        pack_arrays: a deployment sends the weights as one array per dtype
            (``federation.pack_arrays``, federation/array_packing.py); the secure-aggregation
            path and simulations never pack.
        reply_poll_seconds: how often a deployment looks for replies
            (``federation.reply_poll_seconds``, server/deployed_grid.py).
        global_evaluation: evaluate the global model on the server after each round
            (``federation.global_evaluation``; simulation only: the server reads the data).
        evaluation_splits: ``held-out`` and / or manifest splits (``test``) to evaluate
            (``federation.eval_splits``).
        evaluation_max_items: images per split (``federation.max_eval_items``; 0: all).
        mlflow_enabled: track the run in MLflow.
        mlflow_uri: tracking URI (None: ``sqlite:///<output_dir>/mlflow.db``).
        experiment: MLflow experiment name.
        log_round_checkpoints: upload every round's checkpoint as an artifact (else latest).
        output_dir: where checkpoints and the embedded MLflow store go.
        method: what reports call the trained model.
        mlflow_parent_run_id: make the MLflow run a child of this run
            (``tracking.parent_run_id``; a study's parent run), or None.
        mlflow_run_name: the MLflow run's name (``tracking.run_name``; None: the
            output folder's name).
    """

    num_rounds: int
    local_steps: int
    learning_rate: float
    seed: int
    fraction_train: float
    fraction_evaluate: float
    min_sites: int
    timeout: float | None
    resume: bool | str
    initial_checkpoint: str | None
    aggregation: StrategySettings
    validation: ValidationSettings
    replies: ReplyLimits
    sites: dict[str, str]
    privacy: PrivacySettings
    transport: TransportSettings
    zero_shot_every: int
    cross_site: bool
    cross_site_models: dict[str, str]
    pack_arrays: bool
    reply_poll_seconds: float
    global_evaluation: bool
    evaluation_splits: tuple[str, ...]
    evaluation_max_items: int
    mlflow_enabled: bool
    mlflow_uri: str | None
    experiment: str
    log_round_checkpoints: bool
    output_dir: Path
    method: str
    mlflow_parent_run_id: str | None = None
    mlflow_run_name: str | None = None

    @classmethod
    def from_config(cls, config: DictConfig) -> FederationSettings:
        """Read the settings, with clear errors for values that cannot work."""
        timeout = OmegaConf.select(config, "federation.timeout", default=None)
        resume = select(config, "federation.resume", False)
        if isinstance(resume, str) and resume.lower() in ("true", "false", ""):
            resume = resume.lower() == "true"
        settings = cls(
            num_rounds=int(select(config, "federation.num_rounds", 3)),
            local_steps=int(select(config, "federation.local_steps", config.train.max_steps)),
            learning_rate=float(config.train.learning_rate),
            seed=int(config.seed),
            fraction_train=float(select(config, "federation.fraction_train", 1.0)),
            fraction_evaluate=float(select(config, "federation.fraction_evaluate", 1.0)),
            min_sites=int(select(config, "federation.min_sites", 2)),
            # 0 or null both mean "no limit": Flower's grid waits for every reply.
            timeout=float(timeout) if timeout else None,
            resume=resume if isinstance(resume, bool) else str(resume),
            initial_checkpoint=OmegaConf.select(
                config, "federation.initial_checkpoint", default=None
            ),
            aggregation=StrategySettings.from_config(config),
            validation=ValidationSettings(
                enabled=bool(select(config, "federation.validation.enabled", True)),
                max_norm_ratio=float(select(config, "federation.validation.max_norm_ratio", 10.0)),
                clip_norm_ratio=_optional_float(
                    OmegaConf.select(config, "federation.validation.clip_norm_ratio", default=3.0)
                ),
                min_accepted=int(select(config, "federation.validation.min_accepted", 1)),
            ),
            replies=ReplyLimits(
                max_examples=int(select(config, "federation.replies.max_examples", 10_000_000)),
                max_site_share=_optional_float(
                    OmegaConf.select(config, "federation.replies.max_site_share", default=None)
                ),
                max_text=int(select(config, "federation.replies.max_text", 256)),
                max_bad_files=int(select(config, "federation.replies.max_bad_files", 100)),
                max_breakdown_groups=int(
                    select(config, "federation.replies.max_breakdown_groups", 64)
                ),
            ),
            sites={
                str(site): str(vendor)
                for site, vendor in (select(config, "federation.sites", {}) or {}).items()
            },
            privacy=PrivacySettings.from_config(config),
            transport=TransportSettings(
                precision=str(select(config, "federation.transport.precision", "float32")),
                trainable_only=bool(select(config, "federation.transport.trainable_only", False)),
            ),
            zero_shot_every=int(select(config, "federation.zero_shot_every", 1)),
            cross_site=bool(select(config, "federation.cross_site.enabled", False)),
            cross_site_models={
                str(name): str(path)
                for name, path in (select(config, "federation.cross_site.models", {}) or {}).items()
            },
            pack_arrays=bool(select(config, "federation.pack_arrays", True)),
            reply_poll_seconds=float(select(config, "federation.reply_poll_seconds", 0.25)),
            global_evaluation=bool(select(config, "federation.global_evaluation", False)),
            evaluation_splits=tuple(select(config, "federation.eval_splits", ["held-out", "test"])),
            evaluation_max_items=int(select(config, "federation.max_eval_items", 0)),
            mlflow_enabled=bool(select(config, "tracking.enabled", True)),
            mlflow_uri=OmegaConf.select(config, "tracking.mlflow_uri", default=None),
            experiment=str(select(config, "tracking.experiment", "cardiomm-fl")),
            log_round_checkpoints=bool(select(config, "tracking.log_round_checkpoints", True)),
            output_dir=Path(str(config.output_dir)),
            method=str(select(config, "method", "cardiomm")),
            mlflow_parent_run_id=OmegaConf.select(config, "tracking.parent_run_id", default=None),
            mlflow_run_name=OmegaConf.select(config, "tracking.run_name", default=None),
        )
        settings.validate()
        return settings

    def zero_shot_due(self, server_round: int) -> bool:
        """Whether the evaluation-only sites score the global model after ``server_round``."""
        every = self.zero_shot_every
        return server_round == self.num_rounds or (every > 0 and server_round % every == 0)

    @property
    def strategy(self) -> str:
        """The strategy's name in reports (``strategy.name``, e.g. ``fedavg``)."""
        return self.aggregation.name

    def validate(self) -> None:
        """Raise ValueError for settings no run could use."""
        if self.num_rounds < 1:
            raise ValueError(f"federation.num_rounds must be >= 1, got {self.num_rounds}")
        self.aggregation.validate(self.num_rounds)
        self.validation.validate()
        self.replies.validate()
        if self.privacy.central_dp.enabled and self.aggregation.personalised:
            raise ValueError(
                "privacy.central_dp adds noise to one aggregate; it cannot cover per-vendor "
                "parameters (strategy.personalised); use one or the other"
            )
        if not 0.0 < self.fraction_train <= 1.0:
            raise ValueError(
                f"federation.fraction_train must be in (0, 1], got {self.fraction_train}"
            )
        if not 0.0 <= self.fraction_evaluate <= 1.0:
            raise ValueError(
                f"federation.fraction_evaluate must be in [0, 1], got {self.fraction_evaluate}"
            )
        if self.min_sites < 1:
            raise ValueError(f"federation.min_sites must be >= 1, got {self.min_sites}")
        if self.zero_shot_every < 0:
            raise ValueError(f"federation.zero_shot_every must be >= 0, got {self.zero_shot_every}")
        if self.local_steps < 1:
            raise ValueError(f"federation.local_steps must be >= 1, got {self.local_steps}")


def _optional_float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
