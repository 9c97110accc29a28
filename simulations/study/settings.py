"""The ``study`` block of ``configs/simulate.yaml``, read once into typed fields."""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf

from simulations.study.plan import ExperimentSpec, parse_catalogue, select_experiments


@dataclasses.dataclass(frozen=True)
class StudySettings:
    """What the runner needs from ``study.*`` (configs/simulate.yaml documents each key).

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
    evaluation_sites: bool = True
    zero_shot_every: int = 0
    cross_site_experiments: tuple[str, ...] = ()
    curve_experiments: tuple[str, ...] = ()
    comparisons: tuple[tuple[str, str], ...] = ()
    selection_groups: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    publish_dir: str | None = None
    public_backbone: tuple[str, int] | None = None
    per_vendor: bool = False

    @classmethod
    def from_config(cls, config: DictConfig) -> StudySettings:
        """Read ``study.*``; errors name the setting."""
        study = OmegaConf.select(config, "study")
        if study is None:
            raise ValueError("the config has no study block (compose configs/simulate.yaml)")
        catalogue = parse_catalogue(OmegaConf.to_container(study.catalogue, resolve=True))
        gpus = str(study.get("client_gpus", "auto")).lower()
        settings = cls(
            name=str(study.name),
            folds=str(study.folds),
            leave_one_out_centres=tuple(str(c) for c in study.get("leave_one_out_centres", [])),
            rounds=_integer(study, "rounds"),
            local_steps=_integer(study, "local_steps"),
            experiments=tuple(select_experiments(list(study.experiments), catalogue)),
            seeds=_seeds(study.get("seeds"), config),
            max_eval_items=_integer(study, "max_eval_items"),
            curve_eval_items=_integer(study, "curve_eval_items"),
            held_out_evaluation=bool(study.get("held_out_evaluation", True)),
            curve_experiments=tuple(str(name) for name in study.get("curve_experiments", [])),
            comparisons=_pairs(study.get("comparisons", [])),
            selection_groups={
                str(group): tuple(str(name) for name in names)
                for group, names in (study.get("select") or {}).items()
            },
            publish_dir=None if study.get("publish_dir") is None else str(study.publish_dir),
            client_cpus=float(study.get("client_cpus", 1)),
            client_gpus=None if gpus in ("auto", "none", "") else float(gpus),
            experiment_timeout=float(study.get("experiment_timeout", 7200)),
            federated_overrides=tuple(str(item) for item in study.get("federated_overrides", [])),
            evaluation_sites=bool(study.get("evaluation_sites", True)),
            zero_shot_every=int(study.get("zero_shot_every", 0)),
            cross_site_experiments=tuple(
                str(name) for name in study.get("cross_site_experiments", [])
            ),
            public_backbone=_backbone(study.get("public_backbone")),
            per_vendor=bool(study.get("per_vendor", False)),
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


def _integer(study: Any, key: str) -> int:
    value = study.get(key)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"study.{key} must be an integer, got {value!r}") from None
