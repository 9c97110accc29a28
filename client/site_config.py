"""A site's configuration: the coordinator's training recipe, the site's own paths and budget.

The run config (``overrides``) comes from whoever submits the run. A site takes from it only
what a coordinator may decide (:data:`COORDINATOR_SETTABLE`: the model, the training recipe,
the strategy, the federation's protocol); what belongs to the site (:data:`SITE_OWNED`: where
its data lives, its device and threads, its DP-SGD budget, local file locations) comes from
the site's own YAML file, named by the node config key ``site-config`` or, for a simulated
consortium whose sites share one operator, the ``CARDIOMM_SITE_CONFIG`` environment variable.
An override the site does not take is logged once with the value the site uses instead.

The site file is a nested mapping of site-owned keys only, e.g.::

    data: {root: /data/cmr, manifest: null}
    train: {device: cuda, devices: 2, num_threads: 4}
    privacy: {dp_sgd: {epsilon_budget: 8.0, noise_multiplier: 1.1},
              policy: /etc/cardiomm/privacy_policy.yaml}
    sharing: {cross_site_evaluation: false}
"""

from __future__ import annotations

import functools
import logging
import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from federation.config import compose_overrides, run_config_overrides
from federation.protocol import NODE_SITE_CONFIG

logger = logging.getLogger(__name__)

SITE_CONFIG_VARIABLE = "CARDIOMM_SITE_CONFIG"
# Keys (and groups) a coordinator's run config may set at a site.
COORDINATOR_SETTABLE = (
    "model",
    "text",
    "masks",
    "train",
    "strategy",
    "federation",
    "privacy",
    "seed",
    "method",
    "tracking",
    "output_dir",
    "data.remove_oversampling",  # the network's input format: the same everywhere
    # A simulated consortium's design: which centres are held out and how patients split
    # (a deployed site partitions its own data-path and does not read these).
    "data.hold_out",
    "data.hold_out_count",
    "data.val_fraction",
    "data.test_fraction",
    "data.sites",
    "privacy.dp_sgd.enabled",  # a request; the budget stays the site's
)
# Keys only the site sets: which data and where (root, manifest, synthetic preset, index
# cache), its hardware, its privacy budget, local file locations, and what it shares.
SITE_OWNED = (
    "data",
    "train.device",
    "train.num_threads",
    "train.num_workers",
    "train.devices",
    "train.distributed_backend",
    "text.path",
    "text.cache_dir",
    "privacy.dp_sgd",
    "privacy.policy",
    "sharing",
)


class SiteConfigError(ValueError):
    """The site's own configuration file cannot be used; the message says why."""


def decided_by(key: str) -> str:
    """``coordinator``, ``site`` or ``nobody`` (an unknown key): the longest matching entry of
    :data:`COORDINATOR_SETTABLE` and :data:`SITE_OWNED` decides."""
    matches = [
        (len(prefix), owner)
        for owner, prefixes in (("coordinator", COORDINATOR_SETTABLE), ("site", SITE_OWNED))
        for prefix in prefixes
        if key == prefix or key.startswith(f"{prefix}.")
    ]
    return max(matches)[1] if matches else "nobody"


def split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """(overrides a site takes, overrides it leaves) of a coordinator's override list."""
    taken, left = [], []
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        (taken if decided_by(key) == "coordinator" else left).append(override)
    return taken, left


def site_config_path(node_config: Mapping[str, Any]) -> Path | None:
    """The site's own YAML file: node config ``site-config``, else $CARDIOMM_SITE_CONFIG."""
    named = node_config.get(NODE_SITE_CONFIG) or os.environ.get(SITE_CONFIG_VARIABLE)
    return Path(str(named)).expanduser() if named else None


def compose_site_config(
    run_config: Mapping[str, Any], node_config: Mapping[str, Any]
) -> DictConfig:
    """configs/federation.yaml with the coordinator's settable overrides, then the site's own
    file on top (see the module docstring)."""
    path = site_config_path(node_config)
    stamp = _stamp(path) if path is not None else None
    return _compose(run_config_overrides(run_config), str(path) if path else "", stamp)


@functools.lru_cache(maxsize=8)
def _compose(overrides: str, path: str, stamp: tuple[int, int] | None) -> DictConfig:
    # Cached per (run config, site file and its version): a simulated site composes once.
    taken, left = split_overrides(shlex.split(overrides))
    config = compose_overrides(shlex.join(taken))
    if path:
        own = read_site_file(Path(path))
        config = OmegaConf.merge(config, own)
    _warn_left(left, overrides, config)
    return config


def read_site_file(path: Path) -> DictConfig:
    """The site's YAML of site-owned keys, or SiteConfigError naming the file and the key."""
    if not path.is_file():
        raise SiteConfigError(f"site config {path}: no such file")
    try:
        own = OmegaConf.load(path)
    except Exception as error:  # YAML syntax errors come in several types
        raise SiteConfigError(f"site config {path}: not valid YAML ({error})") from error
    if not isinstance(own, DictConfig):
        raise SiteConfigError(f"site config {path}: expected a mapping of settings")
    for key in _leaf_keys(OmegaConf.to_container(own, resolve=False)):
        if decided_by(key) != "site":
            raise SiteConfigError(
                f"site config {path}: {key} is not the site's to set (the coordinator decides "
                f"it); a site sets {', '.join(SITE_OWNED)}"
            )
    return own


def site_owned_settings(config: DictConfig) -> dict[str, Any]:
    """The site-owned part of a composed config, as a site file holds it (keys the config
    does not have are left out): what a simulated consortium's operator gives every site."""
    owned: dict[str, Any] = {}
    for key in SITE_OWNED:
        if OmegaConf.select(config, key, default="???") == "???":
            continue  # absent, or mandatory and unset (text.path without CLIP)
        value = _plain(OmegaConf.select(config, key))
        node = owned
        *parents, last = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
        node[last] = _only_site_owned(value, key)
    return owned


def _only_site_owned(value: Any, key: str) -> Any:
    """``value`` without the entries under ``key`` that the coordinator decides."""
    if not isinstance(value, dict):
        return value
    return {
        name: _only_site_owned(item, f"{key}.{name}")
        for name, item in value.items()
        if decided_by(f"{key}.{name}") == "site"
    }


def write_site_file(config: DictConfig, path: Path) -> Path:
    """Write :func:`site_owned_settings` of ``config`` as a site file at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(site_owned_settings(config))))
    return path


def _warn_left(left: list[str], overrides: str, config: DictConfig) -> None:
    if not left:
        return
    wanted = compose_overrides(overrides)  # what the coordinator asked for, all of it
    for override in left:
        key = override.split("=", 1)[0].lstrip("+~")
        if decided_by(key) == "nobody":
            logger.warning("ignoring the run config's %r: not a setting a site takes", override)
            continue
        asked = OmegaConf.select(wanted, key, default=None)
        used = OmegaConf.select(config, key, default=None)
        if _plain(asked) != _plain(used):
            logger.warning(
                "ignoring the run config's %r: %s is the site's to set; using %r",
                override,
                key,
                _plain(used),
            )


def _plain(value: Any) -> Any:
    if isinstance(value, DictConfig) or OmegaConf.is_list(value):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _leaf_keys(value: Any, prefix: str = "") -> list[str]:
    if isinstance(value, dict) and value:
        return [
            key
            for name, item in value.items()
            for key in _leaf_keys(item, f"{prefix}.{name}" if prefix else str(name))
        ]
    return [prefix]


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_size, status.st_mtime_ns
