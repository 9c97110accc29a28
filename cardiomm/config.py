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


class ConfigError(ValueError):
    """An override that names no config key or option; the message is one line that names it
    and the nearest valid ones."""


def load_config(
    overrides: Sequence[str] = (), config_name: str = ROOT_CONFIG, with_hydra: bool = False
) -> DictConfig:
    """Compose the config with Hydra's command-line override syntax, e.g. ``["seed=3"]``
    (``with_hydra``: with Hydra's own ``hydra`` node, whose ``runtime.choices`` name the
    chosen group options).

    Raises:
        ConfigError: an unknown key (``train.lerning_rate=1``), an unknown option of a config
            group (``strategy=fedavgg``) or an override Hydra cannot parse.
    """
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    overrides = list(overrides)
    register_library_schemas()
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        try:
            return compose(
                config_name=config_name, overrides=overrides, return_hydra_config=with_hydra
            )
        except MissingConfigException as error:
            if "schema'" not in str(error):
                raise ConfigError(_explain(error, overrides, [])) from None
            # A typed schema (Hydra structured config) is registered by the package that owns
            # it, which the library does not import.
            raise ConfigError(
                f"{config_name}.yaml selects a typed schema no module has registered; compose "
                "it through its package (federation.config.compose_overrides for "
                "federation.yaml, simulations.study.composition.load_study_config for "
                "simulate.yaml) or call federation.schema.register_schemas() and "
                "simulations.study.schema.register_study_schema() first"
            ) from None
        except (HydraException, OmegaConfBaseException) as error:
            known = _known_keys(compose(config_name=config_name))
            raise ConfigError(_explain(error, overrides, known)) from None


def register_library_schemas() -> None:
    """Store the library's typed schemas in Hydra's ConfigStore (again is harmless): the
    ``privacy`` block (cardiomm/privacy/schema.py), which configs/privacy/none.yaml selects,
    and the ``train`` block (cardiomm/train/schema.py), which configs/train/default.yaml
    selects."""
    from hydra.core.config_store import ConfigStore

    from cardiomm.privacy.schema import PRIVACY_GROUP, PRIVACY_SCHEMA, PrivacyConfig
    from cardiomm.train.schema import TRAIN_GROUP, TRAIN_SCHEMA, TrainSchema

    store = ConfigStore.instance()
    store.store(name=PRIVACY_SCHEMA, group=PRIVACY_GROUP, node=PrivacyConfig)
    store.store(name=TRAIN_SCHEMA, group=TRAIN_GROUP, node=TrainSchema)


def _known_keys(config: DictConfig) -> list[str]:
    keys: list[str] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                path = f"{prefix}.{key}" if prefix else str(key)
                keys.append(path)
                walk(value, path)

    walk(OmegaConf.to_container(config, resolve=False), "")
    return keys


def _explain(error: Exception, overrides: list[str], known: list[str]) -> str:
    """One line: the override at fault and the nearest valid keys or options."""
    import difflib

    text = str(error)
    first = text.strip().splitlines()[0] if text.strip() else type(error).__name__
    cause = str(error.__cause__ or "").strip()
    if cause.startswith("Value ") and "full_key: " in cause:
        # A value the typed schema refuses (federation/schema.py): the key and why.
        key = cause.split("full_key: ", 1)[1].split()[0]
        return f"cannot set {key}: {cause.splitlines()[0]}"
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if f"'{key}'" not in text and f"'{key}/" not in text:
            continue
        group = config_dir() / key.replace(".", "/")
        if group.is_dir():
            options = sorted(path.stem for path in group.glob("*.yaml"))
            value = override.split("=", 1)[1] if "=" in override else ""
            near = difflib.get_close_matches(value, options, n=1)
            hint = f"; did you mean {key}={near[0]}?" if near else ""
            return f"unknown {key} {value!r}: choose one of {', '.join(options)}{hint}"
        if key in known:
            return (
                f"cannot set {key} with {override!r} ({first}); to replace a whole mapping "
                f"write ++{key}={{...}}"
            )
        near = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
        hint = f"; did you mean {' or '.join(near)}?" if near else ""
        return f"unknown config key {key!r} in override {override!r}{hint}"
    return f"invalid config override ({first})"


def config_section(config: Any, key: str) -> dict[str, Any]:
    """The plain, resolved dict of ``config.<key>`` (empty when the config or the section is
    absent): how the library reads a section without depending on OmegaConf types."""
    if config is None:
        return {}
    block = OmegaConf.select(config, key, default=None)
    return dict(OmegaConf.to_container(block, resolve=True)) if block else {}


def config_value(config: Any, key: str, default: Any = None) -> Any:
    """The value at the dotted ``key`` of ``config`` (``default`` when it or the config is
    absent): how the library reads one setting without depending on OmegaConf types."""
    if config is None:
        return default
    return OmegaConf.select(config, key, default=default)


def read_yaml_file(path: str | Path) -> Any:
    """The plain content of a YAML file (dicts, lists, scalars), interpolations unresolved.

    Raises:
        OSError: the file cannot be read.
        ValueError: it is not valid YAML (the message names the file).
    """
    try:
        return OmegaConf.to_container(OmegaConf.load(Path(path)), resolve=False)
    except OSError:
        raise
    except Exception as error:  # YAML syntax errors come in several types
        raise ValueError(f"{path}: not valid YAML ({error})") from error
