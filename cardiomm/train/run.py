"""What one training run takes: the network, its data, its settings and its optional parts."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import torch
from torch.utils.data import Dataset

from cardiomm.data.dataset import SliceDataset, SliceSample
from cardiomm.train.config import TrainConfig

if TYPE_CHECKING:  # Opacus takes a second to import: only DP-SGD runs load it
    from cardiomm.model.network import CardioMMNet
    from cardiomm.privacy.accountant import SiteAccountant
    from cardiomm.privacy.settings import DPSGDSettings
    from cardiomm.text import TextEncoder
    from cardiomm.train.data_parallel import DataParallelRank


@dataclasses.dataclass(frozen=True)
class TrainingRun:
    """The inputs of :func:`cardiomm.train.train_model`.

    Attributes:
        network: the model (moved to the chosen device and left there, trained in place).
        text_encoder: its frozen text encoder (None for ``dcunet``).
        train_data: a train-mode slice dataset.
        config: the budget and optimiser settings.
        validation_data: an eval-mode slice dataset to score every ``validate_every`` steps
            and at the end.
        reference_weights: FedProx anchor (the round's global weights) when
            ``config.proximal_mu`` > 0.
        show_progress: progress bar over steps.
        on_step: called with (step, loss) after every step (one device only).
        privacy: DP-SGD settings; when given and enabled, every update is a DP-SGD step
            (:mod:`cardiomm.privacy.dp_sgd`): per-slice clipping replaces
            ``config.gradient_clip``, the batch order is secret, and the run stops early
            where ``privacy.epsilon_budget`` would be passed. The network must be built
            with ``coil_batching=False``.
        accountant: the site's accountant with its earlier steps (required with
            ``privacy``); charged in place for every step taken.
        data_parallel: set by the data-parallel launcher in each of its processes.
    """

    network: CardioMMNet
    text_encoder: TextEncoder | None
    train_data: Dataset[SliceSample]
    config: TrainConfig
    validation_data: SliceDataset | None = None
    reference_weights: Mapping[str, torch.Tensor] | None = None
    show_progress: bool = True
    on_step: Callable[[int, float], None] | None = None
    privacy: DPSGDSettings | None = None
    accountant: SiteAccountant | None = None
    data_parallel: DataParallelRank | None = None

    @property
    def private(self) -> bool:
        """Every update is a DP-SGD step."""
        return self.privacy is not None and self.privacy.enabled

    @property
    def patient_level(self) -> bool:
        """DP-SGD over Poisson-sampled patients (cardiomm/privacy/patient_dp.py)."""
        return self.private and self.privacy.unit == "patient"

    def check(self) -> None:
        """Raise ValueError for inputs no run can use."""
        if self.config.proximal_mu and self.reference_weights is None:
            raise ValueError("proximal_mu > 0 needs the reference (global) weights")
        if len(self.train_data) == 0:
            raise ValueError("the training data set is empty (every file skipped or none given)")
        if self.private and self.accountant is None:
            raise ValueError("DP-SGD training needs the site's accountant (its earlier steps)")
        if self.config.devices > 1 and self.data_parallel is None and self.on_step is not None:
            raise ValueError(
                f"train.devices={self.config.devices}: per-step callbacks (checkpoint_every) "
                "run on one device only"
            )
