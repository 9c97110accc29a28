"""Compose each experiment's config from the study's, as Hydra overrides.

The study composes ``configs/simulate.yaml``; an experiment runs with another root
(``configs/config.yaml`` for ``cardiomm train``-style runs, ``configs/federation.yaml`` for a
Flower run, which receives its config only as an override string). So the study's shared
settings (the groups ``data``, ``masks``, ``model``, ``text``, ``train`` and the ``seed``)
travel as overrides: the group choices (``model=tiny``) plus every value the study changed
from those groups' files (``++train.learning_rate=0.001``), then the experiment's own
overrides, then what the runner fixes (budget, paths, tracking), so later ones win.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from cardiomm.config import load_config
from federation.schema import register_schemas
from simulations.classical_schema import register_classical_schema
from simulations.study.schema import CHOICES_KEY, register_study_schema

STUDY_ROOT = "simulate"
# Groups whose choice and values every experiment inherits from the study.
SHARED_GROUPS = ("data", "masks", "model", "text", "train")
SHARED_KEYS = ("seed",)
# Every config group an experiment may switch (a group override drops the study's values).
GROUPS = (*SHARED_GROUPS, "strategy", "privacy")
# configs/federation.yaml's defaults list selects the typed schema (federation/schema.py),
# configs/simulate.yaml the study's and the classical baselines' (simulations/study/schema.py,
# simulations/classical_schema.py); load_study_config keeps the study's group choices under
# study.<CHOICES_KEY> (Hydra forgets them after compose).
register_schemas()
register_study_schema()
register_classical_schema()
# Never forwarded: the runner replaces them with the fold's manifest and the experiment's sites.
NOT_FORWARDED = ("data.hold_out", "data.hold_out_count", "data.manifest", "data.sites")
_OVERRIDE = re.compile(r"^(?:~|\+\+|\+)?([A-Za-z0-9_.\-/@]+)=")
# Strings Hydra reads back unchanged without quotes (names, absolute paths); anything else,
# and what would read as another type (true, null, inf, ...), is quoted.
_PLAIN = re.compile(r"^[A-Za-z_/][A-Za-z0-9_./\-]*$")
_KEYWORDS = {"true", "false", "null", "inf", "nan"}


def load_study_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``configs/simulate.yaml`` with ``overrides``, remembering the chosen groups.

    The choices (``model=tiny`` ...) are kept under ``study._groups`` so that experiments
    compose their own root config with the same groups.
    """
    config = load_config(overrides, config_name=STUDY_ROOT, with_hydra=True)
    choices = {group: config.hydra.runtime.choices.get(group) for group in SHARED_GROUPS}
    with open_dict(config):
        del config["hydra"]
        config.study[CHOICES_KEY] = choices
    return config


def group_choices(study: DictConfig) -> dict[str, str]:
    """The study's group choices (from :func:`load_study_config`)."""
    choices = OmegaConf.select(study, f"study.{CHOICES_KEY}")
    if choices is None:
        raise ValueError(
            "the study config does not record its group choices: compose it with "
            "simulations.study.composition.load_study_config"
        )
    return {str(group): str(choice) for group, choice in choices.items() if choice is not None}


def experiment_overrides(
    study: DictConfig, root: str, experiment: Sequence[str], fixed: Sequence[str] = ()
) -> list[str]:
    """The overrides that compose ``root`` for one experiment of the study.

    Args:
        study: the study config (from :func:`load_study_config`).
        root: ``config`` or ``federation``.
        experiment: the experiment's overrides (its catalogue entry, the study's extras).
        fixed: what the runner sets (budget, paths, tracking); applied last.

    Returns:
        group choices, the study's changed values, ``experiment``, then ``fixed``.
    """
    switched = {_key(item) for item in [*experiment, *fixed]} & set(GROUPS)
    explicit = {_key(item) for item in [*experiment, *fixed]} - switched
    choices = [
        f"{group}={choice}"
        for group, choice in group_choices(study).items()
        if group not in switched
    ]
    base = OmegaConf.to_container(
        load_config([*choices, *experiment, *fixed], config_name=root), resolve=True
    )
    wanted = OmegaConf.to_container(study, resolve=True)
    forwarded = []
    for section in (*(g for g in SHARED_GROUPS if g not in switched), *SHARED_KEYS):
        for key, value in _leaves(wanted.get(section), section):
            if key in NOT_FORWARDED or _covered(key, explicit):
                continue
            if _lookup(base, key) != (value,):
                forwarded.append(f"++{key}={hydra_value(value)}")
    return [*choices, *forwarded, *experiment, *fixed]


def compose(root: str, overrides: Sequence[str]) -> DictConfig:
    """``root`` composed with ``overrides`` (what the experiment's process will see)."""
    return load_config(list(overrides), config_name=root)


def hydra_value(value: Any) -> str:
    """``value`` in Hydra's override syntax (strings quoted unless plainly safe)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        if _PLAIN.match(value) and value.lower() not in _KEYWORDS:
            return value
        # Hydra unescapes backslashes only before a quote or the closing quote.
        escaped = re.sub(r"(\\+)(?='|$)", lambda run: run.group(1) * 2, value)
        escaped = escaped.replace("'", "\\'").replace("${", "\\${")  # no interpolation
        return f"'{escaped}'"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{key}:{hydra_value(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(hydra_value(item) for item in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} {value!r} as a Hydra override")


def _key(override: str) -> str:
    match = _OVERRIDE.match(override.strip())
    if match is None:
        raise ValueError(f"not a Hydra override (key=value): {override!r}")
    return match.group(1)


def _covered(key: str, explicit: set[str]) -> bool:
    """Whether an explicit override sets ``key`` or one of its parents."""
    parts = key.split(".")
    return any(".".join(parts[:end]) in explicit for end in range(1, len(parts) + 1))


def _leaves(value: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(item, f"{prefix}.{key}")
    else:
        yield prefix, value


def _lookup(container: Any, key: str) -> tuple[Any, ...]:
    """``(value,)`` at the dotted ``key``, or ``()`` when absent."""
    for part in key.split("."):
        if not isinstance(container, Mapping) or part not in container:
            return ()
        container = container[part]
    return (container,)
