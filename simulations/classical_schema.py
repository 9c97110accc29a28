"""The typed schema of the ``classical`` block (how the classical baselines are tuned and run,
simulations/classical_baselines.py): every default, stated here once.

The dataclass is a Hydra structured config (:func:`register_classical_schema` stores it as
``classical_schema``); configs/evaluate.yaml and configs/simulate.yaml select it and state only
what they change (the evaluation keeps a result store in the user's cache, the study tunes with
two processes), so a YAML value that restates a default here is refused by
tests/federation/test_schema.py.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional

from omegaconf import OmegaConf

CLASSICAL_SCHEMA = "classical_schema"
CLASSICAL_PACKAGE = "classical"

# OmegaConf reads these annotations at runtime: typing's Optional, not ``X | None``.
# ruff: noqa: UP045


@dataclasses.dataclass
class ClassicalConfig:
    """``classical``: per mask, ESPIRiT settings, each method's lambda and the best method are
    chosen on the internal validation files only (classical_tuning.{json,md})."""

    tune: bool = True  # false: every method with its default settings
    tuning_slices: int = 12  # validation slices per mask (0: all selected slices)
    workers: int = 1  # processes for the tuning grid
    # The content-addressed result store (a rerun reuses it); null: none (a study: its fold's
    # evaluation/classical/store).
    cache_dir: Optional[str] = None
    # method -> solver iterations (default: cg-sense 30, others 40).
    max_iter: dict[str, int] = dataclasses.field(default_factory=dict)
    # method -> lambda grid replacing the default one.
    lambdas: dict[str, list[float]] = dataclasses.field(default_factory=dict)


def register_classical_schema() -> None:
    """Store the schema in Hydra's ConfigStore (again is harmless)."""
    from hydra.core.config_store import ConfigStore  # here: the schema imports no Hydra

    ConfigStore.instance().store(
        name=CLASSICAL_SCHEMA, package=CLASSICAL_PACKAGE, node=ClassicalConfig
    )


def classical_config(config: Any) -> ClassicalConfig:
    """``config.classical`` as a typed :class:`ClassicalConfig`; what it lacks (or a config
    without the block: a study's scorer on a ``cardiomm train`` config) is the schema's."""
    block = OmegaConf.select(config, CLASSICAL_PACKAGE) if config is not None else None
    typed = OmegaConf.structured(ClassicalConfig)
    if block is not None:
        typed = OmegaConf.merge(typed, OmegaConf.to_container(block, resolve=True))
    return OmegaConf.to_object(typed)
