"""What a study's experiment leaves behind, and the rows its evaluation produces.

The runner (``simulations/study/runner.py``) writes one :class:`ExperimentOutcome` per
finished experiment and training seed; the evaluation (``simulations/study/scoring.py``)
scores every model on every file (:data:`FILE_COLUMNS`); the results
(``simulations/study/results.py``) turn those into means with confidence intervals
(:data:`RESULT_COLUMNS`) and paired comparisons (:data:`COMPARISON_COLUMNS`); the report
(``simulations/study/report.py``) reads them all.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

# Experiment kinds: each internal site alone, all internal data pooled, or a federation.
KINDS = ("local", "centralised", "federated", "reference")

# One row of file_scores.csv: one model (or reference) on one file, its images averaged.
FILE_COLUMNS = (
    "fold",  # which centres were held out, e.g. "held-out=Center005+Center006"
    "experiment",  # e.g. fedavg, vendor_balanced, local-only, centralised, zero-filled
    "kind",  # one of KINDS
    "seed",  # the training seed ("-" for the references, which train nothing)
    "model",  # the model scored: "global", or the site of a local-only model
    "split",  # internal-test | held-out
    "metadata",  # full | unknown (the held-out centres once more with unknown metadata)
    "view",  # ranking (the challenge's centre crop) | full (the whole image)
    "centre",
    "vendor",
    "modality",
    "mask",  # e.g. Uniform8
    "file",  # the file, relative to the data root
    "images",
    "psnr",
    "ssim",
    "nmse",
)

# One row of results.csv: an experiment's mean over seeds and files, with 95 % intervals.
RESULT_COLUMNS = (
    "fold",
    "experiment",
    "kind",
    "split",
    "metadata",
    "view",
    "mask",
    "centre",  # a centre, or "all" (every centre of the split)
    "seeds",
    "files",
    "images",
    "psnr",
    "psnr_ci_low",
    "psnr_ci_high",
    "ssim",
    "ssim_ci_low",
    "ssim_ci_high",
    "nmse",
    "nmse_ci_low",
    "nmse_ci_high",
)

# One row of comparisons.csv: a paired difference (A - B) on the same files.
# A paired difference A - B (simulations/study/results.py difference_columns).
DIFFERENCE_COLUMNS = (
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "seeds_a",
    "seeds_b",
    "paired_seeds",
    "files",
)
COMPARISON_COLUMNS = (
    "fold",
    "comparison",  # e.g. "fedavg - sense"
    "a",
    "b",
    "split",
    "metadata",
    "view",
    "mask",
    "metric",
    *DIFFERENCE_COLUMNS,
)

# What the reference methods (zero-filled, best-classical) have in the seed column.
NO_SEED = "-"


@dataclasses.dataclass
class ExperimentOutcome:
    """A finished experiment of one fold.

    Attributes:
        fold: the fold's name (see RESULT_COLUMNS).
        experiment: the experiment's name.
        kind: one of KINDS.
        seed: the training seed (weights, data order, training masks).
        checkpoints: model name -> final checkpoint (``{"global": path}``, or one per site
            for local-only training).
        run_dir: where the experiment wrote its outputs.
        history: the federation's history.json (None for non-federated experiments).
        wall_seconds: wall time of the training.
        steps_per_site: optimiser steps each site (or the pooled model) took.
        details: anything else worth reporting (strategy, privacy, epsilon, MLflow run id).
    """

    fold: str
    experiment: str
    kind: str
    seed: int
    checkpoints: dict[str, Path]
    run_dir: Path
    history: Path | None
    wall_seconds: float
    steps_per_site: int
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["checkpoints"] = {name: str(path) for name, path in self.checkpoints.items()}
        values["run_dir"] = str(self.run_dir)
        values["history"] = str(self.history) if self.history is not None else None
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ExperimentOutcome:
        return cls(
            fold=values["fold"],
            experiment=values["experiment"],
            kind=values["kind"],
            seed=int(values["seed"]),
            checkpoints={name: Path(path) for name, path in values["checkpoints"].items()},
            run_dir=Path(values["run_dir"]),
            history=Path(values["history"]) if values.get("history") else None,
            wall_seconds=float(values["wall_seconds"]),
            steps_per_site=int(values["steps_per_site"]),
            details=dict(values.get("details", {})),
        )

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(self.to_dict(), indent=2))
        partial.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> ExperimentOutcome:
        return cls.from_dict(json.loads(Path(path).read_text()))
