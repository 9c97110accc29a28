"""What a study report says about how the study was run."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from simulations.study.results import Comparison


@dataclasses.dataclass(frozen=True)
class StudyDesign:
    """What the report says about how the study was run (the design section).

    Attributes:
        title: the report's heading.
        machine_note: what the timings were measured on.
        description: lines on data, model and budget (markdown).
        accelerations: rows of the undersampling table (setting, nominal, true R on the
            held-out data, true R on the reference matrix).
        comparisons: the paired comparisons to compute.
        selection_groups: name -> candidate experiments, chosen between on internal
            validation (a tuning study).
        held_out_evaluation: whether the held-out centres were scored.
        clinical_experiment: the experiment the clinical LVEF goal judges.
        vendor_training_images: per fold, each vendor's training images at the internal
            sites; given, the report scores the held-out centres per vendor (empty: not).
        classical_tuning: per fold, the markdown table of the classical settings chosen on
            internal validation (``classical_tuning.md``; the report shows it under Design).
        classical_seconds: per fold, the markdown table of each classical method's seconds
            per image in the final evaluation (``classical_seconds.md``; under Design too).
    """

    title: str
    machine_note: str = ""
    description: tuple[str, ...] = ()
    accelerations: tuple[dict[str, Any], ...] = ()
    comparisons: tuple[Comparison, ...] = ()
    selection_groups: Mapping[str, Sequence[str]] = dataclasses.field(default_factory=dict)
    held_out_evaluation: bool = True
    clinical_experiment: str = "fedavg"
    vendor_training_images: Mapping[str, Mapping[str, int]] = dataclasses.field(
        default_factory=dict
    )
    classical_tuning: Mapping[str, str] = dataclasses.field(default_factory=dict)
    classical_seconds: Mapping[str, str] = dataclasses.field(default_factory=dict)
