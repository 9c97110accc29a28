"""Training settings (configs/train/*.yaml); every default is the schema's
(cardiomm/train/schema.py)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from cardiomm.train.schema import TrainSchema, default_trainable


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How to train.

    Attributes:
        max_steps: optimiser steps to take (the budget federated and centralised runs share);
            when 0, ``epochs`` passes over the data are made instead.
        epochs: passes over the data when ``max_steps`` is 0.
        batch_size: slices per step (slices of one batch must share a matrix size).
        learning_rate: AdamW learning rate (2e-4 in CardioMM's release).
        weight_decay: AdamW weight decay.
        warmup_steps: raise the learning rate linearly from 0 over this many steps; Adam's
            first updates, taken on a handful of slices, can otherwise overshoot a network
            without normalisation layers into a region where 1 - SSIM has no gradient.
        lr_decay_steps: multiply the learning rate by ``lr_decay_gamma`` every this many
            steps (0: constant).
        lr_decay_gamma: the step decay factor.
        gradient_clip: maximum gradient norm (0: no clipping).
        l1_weight: weight of an L1 term (scaled by each target's maximum) added to 1 - SSIM.
            The paper trains on 1 - SSIM alone, but SSIM's gradient vanishes once an output
            is far off, and CardioMM runs on the small synthetic set then collapsed (within
            30 to 300 steps at lr 1e-3 and 2e-4); 0.1 kept every tested run stable.
        proximal_mu: FedProx mu; the term mu / 2 ||w - w_ref||^2 needs reference weights.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        bf16: bf16 autocast on CUDA (ignored on CPU).
        num_workers: data loader worker processes.
        num_threads: CPU threads for torch in this process (0: torch's default). Set it
            when several trainers share a machine (simulated sites): oversubscribed
            OpenMP threads make CPU steps tens of times slower.
        seed: seeds weights' randomness, data order and masks.
        deterministic: deterministic kernels on CUDA (slower; see
            :func:`cardiomm.train.runtime.deterministic_kernels`); the CPU is deterministic
            for a fixed thread count without it.
        validate_every: validate every this many steps (0: only at the end).
        max_validation_items: cap on validation slices per validation (0: all).
        trainable: the parameter groups trained (cardiomm/model/trainable.py: ``all``, or
            any of ``prompts``, ``adapters``, ``data_consistency``); the rest stay frozen.
        devices: processes of data-parallel training (cardiomm/train/data_parallel.py): one
            GPU each on CUDA, CPU processes otherwise; 1: one device, no torch.distributed.
        distributed_backend: ``auto`` (NCCL on CUDA, gloo on the CPU), ``nccl`` or ``gloo``.
    """

    max_steps: int = TrainSchema.max_steps
    epochs: int = TrainSchema.epochs
    batch_size: int = TrainSchema.batch_size
    learning_rate: float = TrainSchema.learning_rate
    weight_decay: float = TrainSchema.weight_decay
    warmup_steps: int = TrainSchema.warmup_steps
    lr_decay_steps: int = TrainSchema.lr_decay_steps
    lr_decay_gamma: float = TrainSchema.lr_decay_gamma
    gradient_clip: float = TrainSchema.gradient_clip
    l1_weight: float = TrainSchema.l1_weight
    proximal_mu: float = TrainSchema.proximal_mu
    device: str = TrainSchema.device
    bf16: bool = TrainSchema.bf16
    num_workers: int = TrainSchema.num_workers
    num_threads: int = TrainSchema.num_threads
    seed: int = TrainSchema.seed
    deterministic: bool = TrainSchema.deterministic
    validate_every: int = TrainSchema.validate_every
    max_validation_items: int = TrainSchema.max_validation_items
    trainable: tuple[str, ...] = dataclasses.field(default_factory=default_trainable)
    devices: int = TrainSchema.devices
    distributed_backend: str = TrainSchema.distributed_backend

    def __post_init__(self) -> None:
        object.__setattr__(self, "trainable", tuple(str(group) for group in self.trainable))
        if self.max_steps < 0 or self.epochs < 1 or self.batch_size < 1:
            raise ValueError(
                "max_steps must be >= 0, epochs and batch_size >= 1; got "
                f"{self.max_steps}, {self.epochs}, {self.batch_size}"
            )
        if self.warmup_steps < 0 or self.lr_decay_steps < 0:
            raise ValueError("warmup_steps and lr_decay_steps must be >= 0")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0, got {self.num_threads}")
        if isinstance(self.devices, bool) or not isinstance(self.devices, int) or self.devices < 1:
            raise ValueError(f"devices must be a whole number >= 1, got {self.devices!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown training config keys: {', '.join(unknown)}")
        return cls(**dict(values))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
