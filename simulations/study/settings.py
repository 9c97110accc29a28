"""The ``study`` block of ``configs/simulate.yaml``, read once into typed fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simulations.study.plan import ExperimentSpec, parse_catalogue, select_experiments
from simulations.study.schema import StudyConfig, study_config


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """What the runner needs from ``study.*`` (simulations/study/schema.py holds each key
    and its default).

    Attributes:
        name: the study's name (MLflow's parent run, the report's title).
        folds: ``held-out`` or ``leave-one-out``.
        leave_one_out_centres: leave-one-out only: the centres held out in turn (empty: all).
        rounds, local_steps: the federated schedule that fixes every experiment's budget.
        experiments: the experiments of every fold, in order.
        seeds: the training seeds (each experiment runs with all, or its catalogue's first N).
        max_eval_items: the final evaluation's images per model, centre and mask (0: all).
        curve_eval_items: held-out images per centre and mask that the learning curves score
            at every round's checkpoint (0: no curves).
        held_out_evaluation: score the held-out centres (off for a tuning study, which may
            look at internal validation only).
        evaluation_sites: the held-out centres join every federation as evaluation-only
            sites (the ClientApp's ``role=evaluate`` path, as in a deployment), which score
            the global model every ``zero_shot_every`` rounds and after the last.
        zero_shot_every: see ``evaluation_sites`` (0: after the last round only).
        cross_site_experiments: the federated experiments that end with the cross-site
            matrix (server/cross_site.py), the local-only models of the same fold and seed
            among its models.
        curve_experiments: the experiments whose learning curves are drawn.
        comparisons: (A, B) experiment pairs compared on the held-out centres (A - B).
        selection_groups: name -> candidate experiments, chosen between on internal
            validation (a tuning study's choices).
        publish_dir: where to copy the report, CSV files and figures when done (None: not).
        client_cpus: CPU cores per simulated site.
        client_gpus: GPU share per simulated site; None: automatic.
        experiment_timeout: seconds before a federated experiment is stopped.
        federated_overrides: overrides of configs/federation.yaml for every federation.
        public_backbone: (synthetic preset, steps) of the public backbone that experiments
            marked ``public_backbone`` start from; None: no backbone.
        per_vendor: the report scores the held-out centres per vendor too, with paired
            comparisons and the vendor-skew verdict (simulations/study/vendor_skew.py).
    """

    name: str
    folds: str
    leave_one_out_centres: tuple[str, ...]
    rounds: int
    local_steps: int
    experiments: tuple[ExperimentSpec, ...]
    seeds: tuple[int, ...]
    max_eval_items: int
    curve_eval_items: int
    held_out_evaluation: bool
    client_cpus: float
    client_gpus: float | None
    experiment_timeout: float
    federated_overrides: tuple[str, ...]
    evaluation_sites: bool = StudyConfig.evaluation_sites
    zero_shot_every: int = StudyConfig.zero_shot_every
    cross_site_experiments: tuple[str, ...] = ()
    curve_experiments: tuple[str, ...] = ()
    comparisons: tuple[tuple[str, str], ...] = ()
    selection_groups: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    publish_dir: str | None = StudyConfig.publish_dir
    public_backbone: tuple[str, int] | None = None
    per_vendor: bool = StudyConfig.per_vendor

    @classmethod
    def from_config(cls, config: DictConfig) -> StudySettings:
        """Read ``study.*``; errors name the setting."""
        if OmegaConf.select(config, "study") is None:
            raise ValueError("the config has no study block (compose configs/simulate.yaml)")
        study = study_config(config)
        gpus = str(study.client_gpus).lower()
        settings = cls(
            name=study.name,
            folds=study.folds,
            leave_one_out_centres=tuple(study.leave_one_out_centres),
            rounds=study.rounds,
            local_steps=study.local_steps,
            experiments=tuple(
                select_experiments(study.experiments, parse_catalogue(study.catalogue))
            ),
            seeds=_seeds(study.seeds, config),
            max_eval_items=study.max_eval_items,
            curve_eval_items=study.curve_eval_items,
            held_out_evaluation=study.held_out_evaluation,
            curve_experiments=tuple(study.curve_experiments),
            comparisons=_pairs(study.comparisons),
            selection_groups={group: tuple(names) for group, names in study.select.items()},
            publish_dir=study.publish_dir,
            client_cpus=float(study.client_cpus),
            client_gpus=None if gpus in ("auto", "none", "") else float(gpus),
            experiment_timeout=float(study.experiment_timeout),
            federated_overrides=tuple(study.federated_overrides),
            evaluation_sites=study.evaluation_sites,
            zero_shot_every=study.zero_shot_every,
            cross_site_experiments=tuple(study.cross_site_experiments),
            public_backbone=_backbone(study.public_backbone),
            per_vendor=study.per_vendor,
        )
        settings.validate()
        return settings

    @property
    def site_threads(self) -> int:
        """torch CPU threads of one simulated site (and of in-process training)."""
        return max(1, int(self.client_cpus))

    def validate(self) -> None:
        if self.rounds < 1:
            raise ValueError(f"study.rounds must be >= 1, got {self.rounds}")
        if self.local_steps < 1:
            raise ValueError(f"study.local_steps must be >= 1, got {self.local_steps}")
        if self.zero_shot_every < 0:
            raise ValueError(f"study.zero_shot_every must be >= 0, got {self.zero_shot_every}")
        if self.max_eval_items < 0 or self.curve_eval_items < 0:
            raise ValueError("study.max_eval_items and study.curve_eval_items must be >= 0")
        if self.client_cpus <= 0:
            raise ValueError(f"study.client_cpus must be > 0, got {self.client_cpus}")
        if self.client_gpus is not None and self.client_gpus < 0:
            raise ValueError(f"study.client_gpus must be auto or >= 0, got {self.client_gpus}")
        if self.experiment_timeout <= 0:
            raise ValueError("study.experiment_timeout must be > 0 seconds")
        wanting = [spec.name for spec in self.experiments if spec.public_backbone]
        if wanting and self.public_backbone is None:
            raise ValueError(
                f"{', '.join(wanting)} start from the public backbone, but study.public_backbone "
                "is null: name its synthetic preset and steps"
            )


def _backbone(value: Any) -> tuple[str, int] | None:
    """``study.public_backbone`` ({preset, steps}) as (preset, steps), or None."""
    if value is None:
        return None
    try:
        preset, steps = str(value["preset"]), int(value["steps"])
    except (KeyError, TypeError, ValueError):
        raise ValueError(
            f"study.public_backbone must be null or {{preset: <synthetic preset>, steps: N}}, "
            f"got {value!r}"
        ) from None
    if steps < 1:
        raise ValueError(f"study.public_backbone.steps must be >= 1, got {steps}")
    return preset, steps


def _pairs(values: Any) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values:
        if isinstance(value, str) or len(value) != 2:
            raise ValueError(f"study.comparisons must be [A, B] pairs, got {value!r}")
        pairs.append((str(value[0]), str(value[1])))
    return tuple(pairs)


def _seeds(values: Any, config: DictConfig) -> tuple[int, ...]:
    """``study.seeds``, or the study's ``seed`` alone when not given."""
    if values is None:
        return (int(config.seed),)
    seeds = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"study.seeds must be whole numbers, got {list(values)}")
        seeds.append(int(value))
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"study.seeds must be distinct seeds, at least one, got {seeds}")
    return tuple(seeds)
