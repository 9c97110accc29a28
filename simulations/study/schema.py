"""The typed schema of a study's ``study`` block: every default of configs/simulate.yaml's
study section and of the presets in configs/experiment/, stated here once.

The dataclasses are Hydra structured configs (:func:`register_study_schema` stores
:class:`StudyConfig` as ``study_schema`` in Hydra's ConfigStore); configs/simulate.yaml
selects it and holds only the catalogue of experiments (data, not defaults), and a preset
states only what it changes, so a YAML value that restates a default here (or the value the
preset it starts from already gives) is refused by tests/federation/test_schema.py.
:class:`simulations.study.settings.StudySettings` checks the values.

Keys whose values other code validates with its own message (``seeds``, ``comparisons``,
``public_backbone``, ``client_gpus``, the catalogue's entries) are typed loosely here, so
that message stays the one a wrong value gets.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Union

from omegaconf import OmegaConf

from cardiomm.segmentation.training import SegmenterSettings

# ConfigStore name of the study block, as configs/simulate.yaml selects it.
STUDY_SCHEMA = "study_schema"
STUDY_PACKAGE = "study"
# Where composition.load_study_config keeps the study's group choices (a field below).
CHOICES_KEY = "_groups"

# OmegaConf reads these annotations at runtime: typing's Optional / Union, not ``X | None``.
# ruff: noqa: UP007, UP045


@dataclasses.dataclass
class ClinicalConfig:
    """``study.clinical``: the clinical check (simulations/study/clinical.py). A MONAI
    segmenter trained on the internal centres' fully sampled cine short-axis references
    measures LV / RV volumes, LVEF and LV mass on every method's reconstructions of the
    held-out cine short-axis stacks, against the fully sampled images and the phantom's truth;
    clinical*.csv, the report's clinical section and Bland-Altman figures. Needs labelled files
    with geometry sidecars (the synthetic sets); ``cardiomm simulate --no-clinical`` skips it."""

    enabled: bool = True
    # tiny | default (cardiomm/segmentation/network.py). The segmenter's own defaults
    # (cardiomm/segmentation/training.py), chosen on internal validation Dice (2.5 mm study
    # set; docs/clinical-outputs.md): batches of 8 heart crops, cosine from 2e-3; 6000 steps
    # (mean validation Dice 0.853) against 3000 (0.836).
    segmenter_size: str = SegmenterSettings.size
    segmenter_steps: int = SegmenterSettings.steps
    segmenter_learning_rate: float = SegmenterSettings.learning_rate
    experiment: str = "fedavg"  # the federated model the LVEF goal judges


@dataclasses.dataclass
class StudyConfig:
    """``study``: the held-out-centre study `cardiomm simulate` runs
    (simulations/study/settings.py documents each field)."""

    name: str = "study"
    # held-out: one fold holding out data.hold_out (by name) or data.hold_out_count centres
    # (drawn with the seed); leave-one-out: one fold per centre, each held out in turn.
    folds: str = "held-out"
    # leave-one-out only: hold out just these in turn (empty: all).
    leave_one_out_centres: list[str] = dataclasses.field(default_factory=list)
    # The training budget: every site takes rounds x local_steps optimiser steps (federated
    # and local-only), the centralised model sites x rounds x local_steps (plan.py).
    rounds: int = 3
    local_steps: int = 20
    experiments: list[str] = dataclasses.field(
        default_factory=lambda: [
            "local-only",
            "centralised",
            "fedavg",
            "fedprox",
            "fedadam",
            "vendor_balanced",
            "vendor_personalised",
            "metadata-ablation",
        ]
    )
    # Training seeds (initial weights, data order, training masks; never the patients or the
    # evaluation masks, which keep `seed`). null: [seed]. An experiment runs with all of them,
    # or with the first `seeds` of them when its catalogue entry says so.
    seeds: Optional[list[Any]] = None
    max_eval_items: int = 0  # final evaluation: images per model, centre and mask (0: all)
    held_out_evaluation: bool = True  # false: score nothing, internal validation only (tuning)
    # The held-out centres join every federation as evaluation-only sites (role=evaluate, the
    # deployed code path): they never train and score the global model on all of their images
    # every zero_shot_every rounds and after the last (0: the last only); history.json, MLflow
    # (zero-shot/<centre>/...) and the report's zero-shot section hold their scores.
    evaluation_sites: bool = True
    zero_shot_every: int = 0
    # These federations end with the cross-site matrix: the final global model, the best on
    # internal validation, and the same seed's local-only models, each scored by every site on
    # its test split (held-out sites: all images); the report's cross-site section.
    cross_site_experiments: list[str] = dataclasses.field(default_factory=lambda: ["fedavg"])
    # Learning curves: these experiments' checkpoints along training, on the first
    # curve_eval_items images of each held-out centre and mask (0: no curves).
    curve_experiments: list[str] = dataclasses.field(
        default_factory=lambda: ["centralised", "fedavg"]
    )
    curve_eval_items: int = 8
    clinical: ClinicalConfig = dataclasses.field(default_factory=ClinicalConfig)
    # The final evaluation scores zero-filled, best-classical (the method tuning chose per
    # mask) and, by name, each of these classical methods with the settings tuning chose for
    # it (the report's tables and their seconds per image); [] scores best-classical alone.
    classical_baselines: list[str] = dataclasses.field(default_factory=lambda: _classical())
    # Paired comparisons on the held-out centres (A - B), made where both were run.
    comparisons: list[Any] = dataclasses.field(
        default_factory=lambda: [
            ["fedavg", "best-classical"],
            ["fedavg", "zero-filled"],
            ["fedavg", "centralised"],
            ["fedavg", "local-only"],
            ["vendor_balanced", "fedavg"],
            ["vendor_personalised", "fedavg"],
            ["fedavg", "metadata-ablation"],
            ["fedprox", "fedavg"],
            ["fedadam", "fedavg"],
            ["fedyogi", "fedavg"],
        ]
    )
    # Choices made on internal validation only: {name: [candidate experiments]}.
    select: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    # A model pre-trained once on a synthetic set no site of the study is in, e.g.
    # {preset: small, steps: 600}; catalogue entries with `public_backbone: true` start from
    # it (simulations/study/backbone.py). null: none.
    public_backbone: Any = None
    # Score the held-out centres per vendor too, with the vendor-skew verdict
    # (simulations/study/vendor_skew.py; the vendor-skew preset sets it).
    per_vendor: bool = False
    # Also copy the report, CSV files and figures here when done (e.g. docs/results/quick-study).
    publish_dir: Optional[str] = None
    # CPU cores per simulated site (Flower's client resources); also the torch threads of
    # local-only and centralised training.
    client_cpus: Union[int, float] = 1
    client_gpus: Any = "auto"  # GPU share per site; auto: 0 without CUDA, else GPUs / sites
    experiment_timeout: Union[int, float] = 7200  # seconds before a federation is stopped
    # More overrides of configs/federation.yaml for every federation.
    federated_overrides: list[str] = dataclasses.field(default_factory=list)
    clip_path: Optional[str] = None  # where a CLIP checkpoint lives on this machine, if it moved
    # Every experiment a study can run: a kind (local, centralised, federated, reference) and
    # Hydra overrides of its root config; configs/simulate.yaml holds the entries
    # (simulations/study/plan.py parse_catalogue checks them).
    catalogue: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Not a setting: load_study_config records the study's group choices here (Hydra forgets
    # them after composing), for the experiments to compose with the same groups.
    _groups: Optional[dict[str, Any]] = None


def _classical() -> list[str]:
    """Every classical method (cardiomm/classical/methods.py), in its order."""
    from cardiomm.classical.methods import METHODS  # here: sigpy loads only when asked

    return list(METHODS)


def register_study_schema() -> None:
    """Store the study schema in Hydra's ConfigStore (again is harmless)."""
    from hydra.core.config_store import ConfigStore  # here: the schema imports no Hydra

    ConfigStore.instance().store(name=STUDY_SCHEMA, package=STUDY_PACKAGE, node=StudyConfig)


def study_config(config: Any) -> StudyConfig:
    """``config.study`` as a typed :class:`StudyConfig`; what a config lacks (or a config
    without a study block: a scorer called on a ``cardiomm train`` config) is the schema's."""
    block = OmegaConf.select(config, STUDY_PACKAGE) if config is not None else None
    typed = OmegaConf.structured(StudyConfig)
    if block is not None:
        typed = OmegaConf.merge(typed, OmegaConf.to_container(block, resolve=True))
    return OmegaConf.to_object(typed)
