"""A run's configuration as both apps compose it: ``configs/federation.yaml`` with the Hydra
overrides that Flower's run config carries under ``overrides``.

``flwr run . --run-config 'overrides="strategy=fedadam federation.num_rounds=5"'`` gives the
ServerApp and every ClientApp the same string, so the two sides always agree.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig, OmegaConf

from cardiomm.config import load_config
from federation.schema import register_schemas

ROOT_CONFIG = "federation"
RUN_CONFIG_OVERRIDES = "overrides"


def run_config_overrides(run_config: Mapping[str, Any]) -> str:
    """The Hydra override string of a Flower run config (empty when it has none)."""
    return str(run_config.get(RUN_CONFIG_OVERRIDES, "") or "")


def compose_run_config(run_config: Mapping[str, Any]) -> DictConfig:
    """``configs/federation.yaml`` with the run config's overrides (once per process and
    string: a simulated site keeps its config across rounds)."""
    return compose_overrides(run_config_overrides(run_config))


@functools.lru_cache(maxsize=4)
def compose_overrides(overrides: str) -> DictConfig:
    """``configs/federation.yaml`` with a Hydra override string (once per process)."""
    return load_config(shlex.split(overrides), config_name=ROOT_CONFIG)


# Before anything composes configs/federation.yaml, whose defaults list selects the schema
# (simulations and benchmarks compose it through cardiomm.config.load_config as well).
register_schemas()


def select(config: DictConfig, key: str, default: Any) -> Any:
    """``config.<key>`` (dotted), or ``default`` when absent or null."""
    value = OmegaConf.select(config, key, default=default)
    return default if value is None else value
