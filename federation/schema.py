"""The typed schema of a federated run's configuration: every default of the ``federation``,
``strategy`` and ``tracking`` sections, stated here once.

The dataclasses are Hydra structured configs (:func:`register_schemas` stores them in Hydra's
ConfigStore); ``configs/federation.yaml`` and ``configs/strategy/*.yaml`` start from them in
their defaults lists and state only what they change, so a YAML value that restates a default
here is refused by tests/federation/test_schema.py. Hydra checks the types when it composes
(``federation.num_rounds=abc`` is refused with the key's name), the settings objects check the
values (server/settings.py, strategies/settings.py).

They live in federation/ because both apps compose the same config: a deployed site composes
``configs/federation.yaml`` (strategy section included) with cardiomm/ and federation/ alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

# ConfigStore names, as configs/ selects them in defaults lists.
FEDERATION_SCHEMA = "federation_schema"
TRACKING_SCHEMA = "tracking_schema"
STRATEGY_GROUP = "strategy"
STRATEGY_SCHEMA = "schema"

# OmegaConf reads these annotations at runtime: typing's Optional / Union, not ``X | None``.
# ruff: noqa: UP007, UP045


@dataclasses.dataclass
class StrategyConfig:
    """``strategy``: how the server aggregates (strategies/settings.py documents each key).

    A registered strategy's own keys are added with ``++strategy.<key>=...`` and read with
    ``StrategySettings.option``.
    """

    name: str = "fedavg"  # what reports call it
    server_optimizer: str = "none"  # a registered builder: none | fedadam | fedyogi | ...
    vendor_weighting: str = "examples"  # examples (FedAvg) | equal | sqrt: the vendors' shares
    reducer: str = "mean"  # mean | median | trimmed_mean over the weighted sites
    trim_fraction: float = 0.2  # weight cut from each tail by trimmed_mean
    proximal_mu: float = 0.0  # FedProx term at the sites (0: none)
    personalised: list[str] = dataclasses.field(default_factory=list)  # fnmatch patterns
    # eta of fedadam / fedyogi: Flower's FedOpt default; the presets set what server-lr chose.
    server_learning_rate: float = 0.01
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 0.001  # adaptivity of fedadam / fedyogi
    personalise_from_round: int = 1  # first round that keeps `personalised` per vendor


@dataclasses.dataclass
class CrossSiteConfig:
    """``federation.cross_site``: after the last round, every model at every site that allows
    it (server/cross_site.py; cross_site.csv and cross_site.png)."""

    enabled: bool = True
    models: dict[str, str] = dataclasses.field(default_factory=dict)  # name: checkpoint path


@dataclasses.dataclass
class TransportConfig:
    """``federation.transport``: what the weights travel as (federation/transport.py); the
    server keeps float32 master weights, sites send half-precision updates."""

    precision: str = "float32"  # float32 | bfloat16 | float16 (2 bytes per parameter each way)
    trainable_only: bool = False  # send only what train.trainable trains (the rest once)


@dataclasses.dataclass
class ValidationConfig:
    """``federation.validation``: checks on every site's update before aggregation
    (strategies/update_validation.py)."""

    enabled: bool = True
    max_norm_ratio: float = 10.0  # reject an update > this x its vendor's median update norm
    clip_norm_ratio: Optional[float] = 3.0  # scale down to this x the others' median (null: off)
    min_accepted: int = 1  # fewest accepted replies a round needs to update the model


@dataclasses.dataclass
class RepliesConfig:
    """``federation.replies``: checks on every reply's fields (federation/reply_checks.py)."""

    max_examples: int = 10_000_000  # largest num-examples a site may report
    max_site_share: Optional[float] = None  # most of a round's examples one site counts for
    max_text: int = 256  # characters kept of a free-text field
    max_bad_files: int = 100  # skipped files kept per reply
    max_breakdown_groups: int = 64  # groups (modality.view.setting) an evaluation site scores


@dataclasses.dataclass
class FederationConfig:
    """``federation``: the rounds, the consortium and what the server checks and evaluates
    (server/settings.py documents each field)."""

    num_rounds: int = 3
    local_steps: Optional[int] = 20  # optimiser steps per site and round (null: train.max_steps)
    fraction_train: float = 1.0  # share of connected sites asked to train each round
    fraction_evaluate: float = 1.0
    min_sites: int = 2  # wait for at least this many sites
    timeout: Optional[Union[int, float]] = 3600  # seconds to wait for replies (0 / null: all)
    resume: Union[bool, str] = False  # true: output_dir/checkpoints/latest.pt; or a path
    initial_checkpoint: Optional[str] = None  # start from a CardioMM checkpoint
    # Evaluation-only sites (role=evaluate) score the global model every this many rounds and
    # after the last (0: the last only).
    zero_shot_every: int = 1
    cross_site: CrossSiteConfig = dataclasses.field(default_factory=CrossSiteConfig)
    reply_poll_seconds: float = 0.25  # a deployment looks for replies this often
    # A deployment sends the weights as one array per dtype, not one per tensor (Flower moves
    # each with its own request per hop).
    pack_arrays: bool = True
    transport: TransportConfig = dataclasses.field(default_factory=TransportConfig)
    # Server-side evaluation (a simulation's server holds the data); a deployment sets false,
    # and the server turns it off when it finds no data (server/rounds.py).
    global_evaluation: bool = True
    eval_splits: list[str] = dataclasses.field(default_factory=lambda: ["held-out", "test"])
    max_eval_items: int = 0  # cap per method and mask in the global evaluation (0 = all)
    validation: ValidationConfig = dataclasses.field(default_factory=ValidationConfig)
    replies: RepliesConfig = dataclasses.field(default_factory=RepliesConfig)
    sites: dict[str, str] = dataclasses.field(default_factory=dict)  # site-id: vendor


@dataclasses.dataclass
class TrackingConfig:
    """``tracking``: the run's MLflow tracking (server/tracking.py)."""

    enabled: bool = True
    mlflow_uri: Optional[str] = None  # null: embedded SQLite store under output_dir
    experiment: str = "cardiomm-fl"
    log_round_checkpoints: bool = True  # every round's checkpoint (false: latest + final)
    parent_run_id: Optional[str] = None  # a child of this run (a study's parent run)
    run_name: Optional[str] = None  # null: the output folder's name


# (ConfigStore name, group, package) -> node: what configs/ may select.
SCHEMAS: dict[tuple[str, Optional[str], Optional[str]], type[Any]] = {
    (FEDERATION_SCHEMA, None, "federation"): FederationConfig,
    (TRACKING_SCHEMA, None, "tracking"): TrackingConfig,
    (STRATEGY_SCHEMA, STRATEGY_GROUP, None): StrategyConfig,
}


def register_schemas() -> None:
    """Store the schema in Hydra's ConfigStore (again is harmless: it replaces the entries)."""
    from hydra.core.config_store import ConfigStore  # here: the settings import no Hydra

    store = ConfigStore.instance()
    for (name, group, package), node in SCHEMAS.items():
        store.store(name=name, group=group, package=package, node=node)


def schema_defaults(node: type[Any]) -> dict[str, Any]:
    """The defaults of a schema dataclass as plain values, nested sections as dicts."""
    return dataclasses.asdict(node())
