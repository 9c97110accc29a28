"""What a study runs: its folds, the experiments of each fold, and their training budget.

A *fold* is one choice of held-out centres: the centres named in ``data.hold_out`` (or
``data.hold_out_count`` of them, drawn with the seed) for ``study.folds=held-out``, or each
centre in turn for ``study.folds=leave-one-out``. Every fold runs the same experiments, each
an entry of ``study.catalogue`` (a kind and Hydra overrides, so experiments are data), once
per training seed of ``study.seeds`` (or the first ``seeds`` of them, when the entry says
so): another seed gives other initial weights, data order and training masks, never other
patients or evaluation masks (the partition and the evaluation keep the study's ``seed``).

The training budget ("the same total local steps for every experiment") is counted in
optimiser steps of the same batch size and learning rate. With K internal sites in the
fold, R = ``study.rounds`` and L = ``study.local_steps``, every experiment spends
T = K x R x L optimiser steps in all:

- federated: each of the K sites takes L local steps in each of the R rounds
  (R x L steps per site, K x R x L in all);
- local-only: each site trains its own model alone for R x L steps, as many as it trains in
  the federation (K x R x L in all, over the K models);
- centralised: one model trains on the pooled data of the K sites for K x R x L steps, the
  federation's total, so it takes as many gradient steps as all sites of the federation
  together.

The references (zero-filled, the best classical method) train nothing: the evaluation
scores them in every fold, so the catalogue holds no entry for them. A federated site restarts its
learning-rate schedule every round (``train.lr_decay_steps`` counts local steps), which is
why the presets keep the learning rate constant. DP-SGD sites that spend their epsilon budget
stop early; the steps they really took are recorded beside the planned ones.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from simulations.study.outcome import KINDS

FOLD_MODES = ("held-out", "leave-one-out")
# Catalogue kinds the runner trains (outcome.KINDS adds "reference": zero-filled and the best
# classical method, which the evaluation scores in every fold without a catalogue entry).
LOCAL, CENTRALISED, FEDERATED = "local", "centralised", "federated"
RUNNABLE_KINDS = (LOCAL, CENTRALISED, FEDERATED)


@dataclasses.dataclass(frozen=True)
class Fold:
    """One choice of held-out centres.

    Attributes:
        held_out: the held-out centres, sorted.
        internal: the centres that train, sorted (simulated node i plays the i-th).
    """

    held_out: tuple[str, ...]
    internal: tuple[str, ...]

    @property
    def name(self) -> str:
        """The fold as results.csv names it, e.g. ``held-out=Center003+Center004``."""
        return "held-out=" + "+".join(self.held_out)

    @property
    def slug(self) -> str:
        """A folder name for the fold, e.g. ``held-out-Center003-Center004``."""
        return "held-out-" + "-".join(self.held_out)


@dataclasses.dataclass(frozen=True)
class ExperimentSpec:
    """A catalogue entry: what kind of training and which Hydra overrides.

    Attributes:
        name: the experiment's name (results.csv's ``experiment``).
        kind: local | centralised | federated.
        overrides: Hydra overrides of the experiment's root config (``configs/config.yaml``
            for local and centralised, ``configs/federation.yaml`` for federated).
        description: one line for the report and MLflow.
        seeds: how many of the study's training seeds it runs (the first ones); None: all.
        public_backbone: a federation that starts from the study's public backbone
            (``study.public_backbone``, simulations/study/backbone.py) instead of fresh
            weights, e.g. for private fine-tuning.
    """

    name: str
    kind: str
    overrides: tuple[str, ...] = ()
    description: str = ""
    seeds: int | None = None
    public_backbone: bool = False


@dataclasses.dataclass(frozen=True)
class Budget:
    """Optimiser steps of one experiment (see the module docstring).

    Attributes:
        steps_per_model: steps each trained model takes (per site for federated and
            local-only, the pooled model's for centralised).
        total_steps: all optimiser steps of the experiment.
        rounds: federated rounds (0 when not federated).
        local_steps: local steps per site and round (0 when not federated).
    """

    steps_per_model: int
    total_steps: int
    rounds: int = 0
    local_steps: int = 0


@dataclasses.dataclass(frozen=True)
class PlannedExperiment:
    """One experiment of one fold with one training seed, ready to run."""

    fold: Fold
    spec: ExperimentSpec
    budget: Budget
    seed: int = 0

    @property
    def label(self) -> str:
        return f"{self.fold.name} / {self.spec.name} / seed {self.seed}"

    @property
    def folder(self) -> str:
        """Where it runs, inside the fold's folder: ``<experiment>/seed-<seed>``."""
        return f"{self.spec.name}/seed-{self.seed}"


def parse_catalogue(catalogue: Mapping[str, Any]) -> dict[str, ExperimentSpec]:
    """``study.catalogue`` as specs, with an error naming any entry that cannot run."""
    specs = {}
    for name, entry in catalogue.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"study.catalogue.{name} must be a mapping with a kind")
        kind = str(entry.get("kind", ""))
        if kind not in RUNNABLE_KINDS:
            hint = ""
            if kind in KINDS:
                hint = " (zero-filled and best-classical are scored in every fold without an entry)"
            raise ValueError(
                f"study.catalogue.{name}.kind must be one of {', '.join(RUNNABLE_KINDS)}, "
                f"got {kind!r}{hint}"
            )
        overrides = entry.get("overrides") or []
        if isinstance(overrides, str) or not isinstance(overrides, Sequence):
            raise ValueError(f"study.catalogue.{name}.overrides must be a list of overrides")
        seeds = entry.get("seeds")
        if seeds is not None and (
            isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1
        ):
            raise ValueError(
                f"study.catalogue.{name}.seeds must be a whole number >= 1, got {seeds!r}"
            )
        backbone = entry.get("public_backbone", False)
        if not isinstance(backbone, bool) or (backbone and kind != "federated"):
            raise ValueError(
                f"study.catalogue.{name}.public_backbone must be true or false, and true only "
                "for a federated experiment"
            )
        specs[str(name)] = ExperimentSpec(
            name=str(name),
            kind=kind,
            overrides=tuple(str(item) for item in overrides),
            description=str(entry.get("description", "") or ""),
            seeds=seeds,
            public_backbone=backbone,
        )
    return specs


def select_experiments(
    names: Sequence[str], catalogue: Mapping[str, ExperimentSpec]
) -> list[ExperimentSpec]:
    """The specs of ``study.experiments``, in that order."""
    if not names:
        raise ValueError("study.experiments is empty: name at least one experiment")
    unknown = [name for name in names if name not in catalogue]
    if unknown:
        raise ValueError(
            f"study.experiments names {', '.join(unknown)}, not in study.catalogue "
            f"(known: {', '.join(catalogue)})"
        )
    duplicates = sorted({name for name in names if list(names).count(name) > 1})
    if duplicates:
        raise ValueError(f"study.experiments lists {', '.join(duplicates)} twice")
    return [catalogue[name] for name in names]


def plan_folds(
    centres: Sequence[str],
    mode: str,
    held_out: Sequence[str] = (),
    only: Sequence[str] = (),
) -> list[Fold]:
    """The study's folds.

    Args:
        centres: every centre of the data set.
        mode: ``held-out`` (one fold, ``held_out``) or ``leave-one-out`` (one fold per
            centre, or per centre of ``only``).
        held_out: the held-out centres of the ``held-out`` fold (from the partition, which
            resolves ``data.hold_out`` and ``data.hold_out_count``).
        only: ``leave-one-out`` only: hold out these centres in turn (empty: all).

    Raises:
        ValueError: an unknown mode or centre, no held-out centre, or no centre left to train.
    """
    centres = sorted(set(centres))
    if mode == "held-out":
        _check_known(held_out, centres, "data.hold_out")
        if not held_out:
            raise ValueError(
                "study.folds=held-out needs held-out centres: set data.hold_out=[...] or "
                "data.hold_out_count=N (or use study.folds=leave-one-out)"
            )
        folds = [_fold(centres, held_out)]
    elif mode == "leave-one-out":
        _check_known(only, centres, "study.leave_one_out_centres")
        folds = [_fold(centres, [centre]) for centre in (sorted(only) or centres)]
    else:
        raise ValueError(f"study.folds must be one of {', '.join(FOLD_MODES)}, got {mode!r}")
    for fold in folds:
        if not fold.internal:
            raise ValueError(f"fold {fold.name} holds out every centre: none is left to train")
    return folds


def training_budget(kind: str, num_sites: int, rounds: int, local_steps: int) -> Budget:
    """The optimiser steps an experiment of ``kind`` takes (module docstring: the rule)."""
    if num_sites < 1 or rounds < 1 or local_steps < 1:
        raise ValueError(
            f"the budget needs >= 1 site, round and local step, got {num_sites} site(s), "
            f"study.rounds={rounds}, study.local_steps={local_steps}"
        )
    per_site = rounds * local_steps
    total = num_sites * per_site
    if kind == FEDERATED:
        return Budget(per_site, total, rounds, local_steps)
    if kind == LOCAL:
        return Budget(per_site, total)
    if kind == CENTRALISED:
        return Budget(total, total)
    raise ValueError(f"unknown experiment kind {kind!r}; known: {', '.join(RUNNABLE_KINDS)}")


def plan_study(
    folds: Sequence[Fold],
    experiments: Sequence[ExperimentSpec],
    rounds: int,
    local_steps: int,
    seeds: Sequence[int] = (0,),
) -> list[PlannedExperiment]:
    """Every fold's experiments with their seeds: seed by seed (so that a study stopped half
    way has every experiment of the first seeds), fold by fold, in ``study.experiments``
    order."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"study.seeds must be distinct seeds, at least one, got {list(seeds)}")
    return [
        PlannedExperiment(
            fold, spec, training_budget(spec.kind, len(fold.internal), rounds, local_steps), seed
        )
        for position, seed in enumerate(seeds)
        for fold in folds
        for spec in experiments
        if spec.seeds is None or position < spec.seeds
    ]


def _fold(centres: Sequence[str], held_out: Sequence[str]) -> Fold:
    held = tuple(sorted(set(held_out)))
    return Fold(held_out=held, internal=tuple(c for c in centres if c not in held))


def _check_known(names: Sequence[str], centres: Sequence[str], setting: str) -> None:
    unknown = sorted(set(names) - set(centres))
    if unknown:
        raise ValueError(
            f"{setting} names {', '.join(unknown)}, not in the data; centres: {', '.join(centres)}"
        )
