"""The ServerApp's settings, read once from the composed Hydra config.

The sections it reads are typed by federation/schema.py, which holds every default (the YAML
presets only override them); the values are checked here, so the rest of ``server/`` works on
typed fields. The ``strategy`` section is read and checked by strategies/settings.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cardiomm.privacy import PrivacySettings
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
        """Read the settings from the typed sections (federation/schema.py holds every
        default), with clear errors for values that cannot work."""
        federation, tracking = config.federation, config.tracking
        settings = cls(
            num_rounds=federation.num_rounds,
            local_steps=_local_steps(federation.local_steps, config.train.max_steps),
            learning_rate=float(config.train.learning_rate),
            seed=int(config.seed),
            fraction_train=federation.fraction_train,
            fraction_evaluate=federation.fraction_evaluate,
            min_sites=federation.min_sites,
            # 0 or null both mean "no limit": Flower's grid waits for every reply.
            timeout=float(federation.timeout) if federation.timeout else None,
            resume=_resume(federation.resume),
            initial_checkpoint=federation.initial_checkpoint,
            aggregation=StrategySettings.from_config(config),
            validation=ValidationSettings(**_plain(federation.validation)),
            replies=ReplyLimits(**_plain(federation.replies)),
            sites=_plain(federation.sites),
            privacy=PrivacySettings.from_config(config),
            transport=TransportSettings(**_plain(federation.transport)),
            zero_shot_every=federation.zero_shot_every,
            cross_site=federation.cross_site.enabled,
            cross_site_models=_plain(federation.cross_site.models),
            pack_arrays=federation.pack_arrays,
            reply_poll_seconds=federation.reply_poll_seconds,
            global_evaluation=federation.global_evaluation,
            evaluation_splits=tuple(federation.eval_splits),
            evaluation_max_items=federation.max_eval_items,
            mlflow_enabled=tracking.enabled,
            mlflow_uri=tracking.mlflow_uri,
            experiment=tracking.experiment,
            log_round_checkpoints=tracking.log_round_checkpoints,
            output_dir=Path(str(config.output_dir)),
            method=str(config.method),
            mlflow_parent_run_id=tracking.parent_run_id,
            mlflow_run_name=tracking.run_name,
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


def _plain(section: Any) -> Any:
    """A typed config section as plain Python values (dicts, lists, scalars)."""
    return OmegaConf.to_container(section, resolve=True)


def _local_steps(steps: int | None, max_steps: int) -> int:
    """``federation.local_steps``; null: ``train.max_steps`` (0 stays 0, which validate refuses)."""
    return int(max_steps) if steps is None else steps


def _resume(value: bool | str) -> bool | str:
    """``federation.resume``: a bool, or a checkpoint path (a Flower run config may carry
    ``"true"`` / ``"false"`` as text)."""
    if isinstance(value, str) and value.lower() in ("true", "false", ""):
        return value.lower() == "true"
    return value
