"""Load the project's Hydra configuration from configs/ without taking over the process."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

CONFIG_DIR_VARIABLE = "CARDIOMM_CONFIG_DIR"
ROOT_CONFIG = "config"


def config_dir() -> Path:
    """The configs/ folder: ``$CARDIOMM_CONFIG_DIR`` if set, else the one beside the packages."""
    configured = os.environ.get(CONFIG_DIR_VARIABLE)
    directory = Path(configured) if configured else Path(__file__).resolve().parents[1] / "configs"
    if not (directory / f"{ROOT_CONFIG}.yaml").is_file():
        raise FileNotFoundError(
            f"no {ROOT_CONFIG}.yaml in {directory}; install the project from its source tree "
            f"(pip install -e .) or point {CONFIG_DIR_VARIABLE} at a copy of configs/"
        )
    return directory


def load_config(overrides: Sequence[str] = (), config_name: str = ROOT_CONFIG) -> DictConfig:
    """Compose the config with Hydra's command-line override syntax, e.g. ``["seed=3"]``."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides))


def config_section(config: Any, key: str) -> dict[str, Any]:
    """The plain, resolved dict of ``config.<key>`` (empty when the config or the section is
    absent): how the library reads a section without depending on OmegaConf types."""
    if config is None:
        return {}
    block = OmegaConf.select(config, key, default=None)
    return dict(OmegaConf.to_container(block, resolve=True)) if block else {}
