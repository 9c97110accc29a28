"""The typed schema of a run's ``train`` block: every default of configs/train/, stated here
once.

:class:`TrainSchema` is a Hydra structured config: cardiomm/config.py stores it as
``train/schema`` before it composes, configs/train/default.yaml starts from it
(``defaults: [schema, _self_]``) and states only the link of ``train.seed`` to the run's
``seed``, so a YAML value that restates a default here is refused by
tests/federation/test_schema.py. :class:`cardiomm.train.config.TrainConfig` (the trainer's
frozen settings, which document each field and check the values) takes its defaults from it.
It is a dataclass apart because a frozen one would make the composed section read-only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# ConfigStore name and group, as configs/train/default.yaml selects them.
TRAIN_GROUP = "train"
TRAIN_SCHEMA = "schema"


@dataclasses.dataclass
class TrainSchema:
    """``train``: the local trainer. CardioMM's release uses AdamW 2e-4, weight decay 0.01,
    step decay, gradient clipping and 1 - SSIM."""

    max_steps: int = 100  # optimiser steps; 0 = use epochs
    epochs: int = 1
    batch_size: int = 1  # slices of a batch must share a matrix size
    learning_rate: float = 2e-4
    weight_decay: float = 0.01
    warmup_steps: int = 0  # linear warm-up of the learning rate from 0 (0: none)
    lr_decay_steps: int = 0  # 0 = constant learning rate
    lr_decay_gamma: float = 0.1
    gradient_clip: float = 1.0
    # L1 / max beside 1 - SSIM: keeps a gradient when SSIM saturates (0 = paper).
    l1_weight: float = 0.1
    proximal_mu: float = 0.0  # FedProx mu (set by the FedProx strategy)
    device: str = "auto"  # auto = CUDA when present
    bf16: bool = True  # bf16 autocast on CUDA
    num_workers: int = 0
    num_threads: int = 0  # torch CPU threads; 0 = default (set 1 when sites share a machine)
    seed: int = 0  # configs/train/default.yaml links it to the run's seed
    deterministic: bool = False  # CUDA: deterministic kernels (slower); the CPU is anyway
    validate_every: int = 0  # 0 = validate at the end only
    max_validation_items: int = 0
    # Parameter groups trained (the rest frozen): [all], or any of prompts, adapters,
    # data_consistency (cardiomm/model/trainable.py), e.g. private fine-tuning of a
    # pre-trained backbone. The number of trained values is reported as trainable-parameters.
    trainable: list[str] = dataclasses.field(default_factory=lambda: ["all"])
    devices: int = 1  # data-parallel processes (a site's GPUs; CPU processes without CUDA)
    distributed_backend: str = "auto"  # auto = NCCL on CUDA, gloo on CPU


def default_trainable() -> tuple[str, ...]:
    """The schema's ``trainable`` as the trainer keeps it."""
    return tuple(TrainSchema().trainable)


def configured_device(config: Any) -> str:
    """``train.device`` of a composed config; a config without it (none, or one without a
    train block) asks for the schema's (``auto``)."""
    from cardiomm.config import config_value  # here: the schema stays free of OmegaConf

    return str(config_value(config, "train.device", TrainSchema.device))
