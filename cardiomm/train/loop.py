"""The local trainer: AdamW on 1 - SSIM, optional FedProx term, periodic validation."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import DataLoader, Dataset

from cardiomm.data.dataset import SliceDataset, SliceSample
from cardiomm.model.network import CardioMMNet
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.model.trainable import select_trainable
from cardiomm.progress import progress_bar
from cardiomm.text import TextEncoder
from cardiomm.train.config import TrainConfig
from cardiomm.train.data_parallel import DataParallelRank, train_data_parallel
from cardiomm.train.evaluate import evaluate_reconstructor
from cardiomm.train.loss import proximal_term, reconstruction_loss
from cardiomm.train.runtime import (
    autocast,
    deterministic_kernels,
    seed_everything,
    select_device,
)
from cardiomm.train.updates import PlainUpdates

if TYPE_CHECKING:  # Opacus takes a second to import: only DP-SGD runs load it
    from cardiomm.privacy.accountant import SiteAccountant
    from cardiomm.privacy.settings import DPSGDSettings

logger = logging.getLogger(__name__)

# Training stops when this many updates in a row had to be skipped.
MAX_CONSECUTIVE_SKIPS = 10


@dataclasses.dataclass
class TrainResult:
    """What a training run did.

    Attributes:
        steps: optimiser steps taken.
        examples: slices seen (steps x batch size, fewer in a short last batch).
        loss: mean training loss over the run.
        final_loss: mean loss of the last 10 % of steps (at least one).
        skipped_steps: steps whose update was skipped for non-finite loss or gradients.
        loss_history: loss of every step.
        validation: mean PSNR / SSIM / NMSE of the last validation, or empty.
        validation_history: (step, mean scores) of every validation.
        seconds: wall time.
        device: where it ran.
        trainable_parameters: values trained (``config.trainable``; the rest frozen).
    """

    steps: int
    examples: int
    loss: float
    final_loss: float
    skipped_steps: int
    loss_history: list[float]
    validation: dict[str, float]
    validation_history: list[tuple[int, dict[str, float]]]
    seconds: float
    device: str
    trainable_parameters: int = 0

    def metrics(self) -> dict[str, float]:
        """Flat numbers for reports and Flower replies."""
        values = {
            "steps": float(self.steps),
            "examples": float(self.examples),
            "loss": self.loss,
            "final-loss": self.final_loss,
            "skipped-steps": float(self.skipped_steps),
            "train-seconds": self.seconds,
        }
        values.update({f"val-{name}": score for name, score in self.validation.items()})
        return values


def train_model(
    network: CardioMMNet,
    text_encoder: TextEncoder | None,
    train_data: Dataset[SliceSample],
    config: TrainConfig,
    validation_data: SliceDataset | None = None,
    reference_weights: Mapping[str, torch.Tensor] | None = None,
    show_progress: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    privacy: DPSGDSettings | None = None,
    accountant: SiteAccountant | None = None,
    data_parallel: DataParallelRank | None = None,
) -> TrainResult:
    """Train ``network`` in place on ``train_data``.

    With ``config.devices`` > 1 the training runs data-parallel in that many processes
    (:mod:`cardiomm.train.data_parallel`), with the same global batches and updates as on one
    device up to floating-point summation order.

    Args:
        network: the model (moved to the chosen device and left there).
        text_encoder: its frozen text encoder (None for ``dcunet``).
        train_data: a train-mode slice dataset.
        config: the budget and optimiser settings.
        validation_data: an eval-mode slice dataset to score every ``validate_every`` steps
            and at the end.
        reference_weights: FedProx anchor (the round's global weights) when
            ``config.proximal_mu`` > 0.
        show_progress: progress bar over steps.
        on_step: called with (step, loss) after every step.
        privacy: DP-SGD settings; when given and enabled, every update is a DP-SGD step
            (:mod:`cardiomm.privacy.dp_sgd`): per-slice clipping replaces
            ``config.gradient_clip``, the batch order is secret, and the run stops early
            where ``privacy.epsilon_budget`` would be passed. The network must be built
            with ``coil_batching=False``.
        accountant: the site's accountant with its earlier steps (required with
            ``privacy``); charged in place for every step taken.
        data_parallel: set by the data-parallel launcher in each of its processes.
    """
    if config.proximal_mu and reference_weights is None:
        raise ValueError("proximal_mu > 0 needs the reference (global) weights")
    if len(train_data) == 0:
        raise ValueError("the training data set is empty (every file skipped or none given)")
    private = privacy is not None and privacy.enabled
    if private and accountant is None:
        raise ValueError("DP-SGD training needs the site's accountant (its earlier steps)")
    if config.devices > 1 and data_parallel is None:
        if on_step is not None:
            raise ValueError(
                f"train.devices={config.devices}: per-step callbacks (checkpoint_every) run "
                "on one device only"
            )
        return train_data_parallel(
            network,
            text_encoder,
            train_data,
            config,
            validation_data,
            reference_weights,
            show_progress,
            private=private,
        )
    device = data_parallel.device if data_parallel else select_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    generator = seed_everything(config.seed)
    network.to(device).train()
    trained = {name for name, p in network.named_parameters() if p.requires_grad}
    trainable_parameters = select_trainable(network, config.trainable)
    reconstructor = NetworkReconstructor(network, text_encoder)
    try:
        updates, scheduler, loader, total_steps = _optimisation(
            network,
            train_data,
            config,
            generator,
            privacy if private else None,
            accountant,
            data_parallel,
        )
    except BaseException:
        _restore_trainable(network, trained)
        raise
    losses: list[float] = []
    validation_history: list[tuple[int, dict[str, float]]] = []
    examples = 0
    skips = _SkipGuard()
    started = time.perf_counter()
    patient_level = private and privacy.unit == "patient"
    batches = _batches(loader, train_data) if not patient_level else None
    with contextlib.ExitStack() as cleanup:
        # Deterministic kernels (when asked) for this run only; the updater's hooks off after.
        cleanup.enter_context(deterministic_kernels(config.deterministic))
        cleanup.callback(updates.close)
        # The network is the caller's: it gets its trainable flags back.
        cleanup.callback(_restore_trainable, network, trained)
        for step in progress_bar(range(1, total_steps + 1), "training", enabled=show_progress):
            if patient_level:
                # Its own batches: Poisson-sampled patients (cardiomm/privacy/patient_dp.py).
                applied, value = _patient_step(
                    updates,
                    network,
                    reconstructor,
                    train_data,
                    config,
                    device,
                    step,
                    reference_weights,
                )
                if applied:
                    scheduler.step()
                    skips.applied()
                else:
                    skips.skipped(step, "the step's sampled patients")
                losses.append(value)
                continue
            sample = next(batches)
            try:
                loss = _step(network, reconstructor, sample, config, device, reference_weights)
                if data_parallel is not None:
                    loss = loss * data_parallel.next_share()
                applied = updates.apply(loss, reference_weights, config.proximal_mu)
                # Data-parallel: the global batch's loss (this rank's is only its share).
                value = updates.last_loss if data_parallel else float(loss.detach())
            except Exception as error:
                raise TrainingStepError(step, describe_batch(sample), error) from error
            if applied:
                # The schedule counts applied updates: a skipped one neither warms up nor decays.
                scheduler.step()
                skips.applied()
            else:
                skips.skipped(step, describe_batch(sample))
            losses.append(value)
            examples += data_parallel.global_count if data_parallel else sample.target.shape[0]
            if on_step is not None:
                on_step(step, value)
            if validation_data is not None and _validation_due(config, step):
                validation_history.append(
                    (step, _validate(reconstructor, validation_data, config, device))
                )
                network.train()
    if validation_data is not None and (
        not validation_history or validation_history[-1][0] != total_steps
    ):
        validation_history.append(
            (total_steps, _validate(reconstructor, validation_data, config, device))
        )
    if patient_level:
        examples = updates.images
    finite = [value for value in losses if math.isfinite(value)] or [math.nan]
    tail = finite[-max(1, len(finite) // 10) :]
    return TrainResult(
        steps=total_steps,
        examples=examples,
        loss=sum(finite) / len(finite),
        final_loss=sum(tail) / len(tail),
        skipped_steps=skips.total,
        loss_history=losses,
        validation=validation_history[-1][1] if validation_history else {},
        validation_history=validation_history,
        seconds=time.perf_counter() - started,
        device=str(device),
        trainable_parameters=trainable_parameters,
    )


def _optimisation(
    network: CardioMMNet,
    train_data: Dataset[SliceSample],
    config: TrainConfig,
    generator: torch.Generator,
    privacy: DPSGDSettings | None,
    accountant: SiteAccountant | None,
    data_parallel: DataParallelRank | None = None,
) -> tuple[Any, torch.optim.lr_scheduler.LambdaLR, DataLoader | None, int]:
    """(updater, learning-rate schedule, batches, steps to take): plain updates over a seeded
    shuffling loader, or DP-SGD ones (``privacy`` given) over Poisson-sampled batches whose
    step count the privacy budget may cut short."""
    optimiser = build_optimiser(network, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, partial(learning_rate_factor, config))
    if privacy is not None:
        updates, loader, total_steps = _private_updates(
            network, optimiser, train_data, config, privacy, accountant
        )
        return updates, scheduler, loader, total_steps
    loader = _loader(train_data, config, generator, data_parallel)
    total_steps = config.max_steps or config.epochs * len(loader)
    synchronise = data_parallel.synchronise if data_parallel else None
    updates = PlainUpdates(network, optimiser, config.gradient_clip, synchronise)
    return updates, scheduler, loader, total_steps


def _loader(
    train_data: Dataset,
    config: TrainConfig,
    generator: torch.Generator,
    data_parallel: DataParallelRank | None = None,
) -> DataLoader:
    if data_parallel is not None:
        # The one-device loader's global batches, this rank's share of each; the loader
        # takes its base seed from the generator before the sampler draws, as that one does.
        return DataLoader(
            train_data,
            batch_sampler=data_parallel.batch_sampler(train_data, config.batch_size, generator),
            generator=generator,
            num_workers=config.num_workers,
            persistent_workers=False,
        )
    return DataLoader(
        train_data,
        batch_size=config.batch_size,
        shuffle=True,
        generator=generator,
        num_workers=config.num_workers,
        persistent_workers=False,
    )


def _patient_step(
    updates: Any,
    network: CardioMMNet,
    reconstructor: NetworkReconstructor,
    train_data: Dataset[SliceSample],
    config: TrainConfig,
    device: torch.device,
    step: int,
    reference_weights: Mapping[str, torch.Tensor] | None,
) -> tuple[bool, float]:
    """One patient-level DP-SGD step: (applied, mean loss of the sampled slices or NaN)."""
    if hasattr(train_data, "set_epoch"):
        train_data.set_epoch(step)  # new training masks every step
    without_proximal = dataclasses.replace(config, proximal_mu=0.0)  # added after the noise
    losses: list[float] = []

    def loss_of(sample: SliceSample) -> torch.Tensor:
        loss = _step(network, reconstructor, sample, without_proximal, device, None)
        losses.append(float(loss.detach()))
        return loss

    try:
        applied = updates.step(loss_of, reference_weights, config.proximal_mu)
    except Exception as error:
        raise TrainingStepError(step, "the step's sampled patients", error) from error
    return applied, (sum(losses) / len(losses) if losses else math.nan)


def _private_updates(
    network: CardioMMNet,
    optimiser: torch.optim.Optimizer,
    train_data: Dataset,
    config: TrainConfig,
    privacy: DPSGDSettings,
    accountant: SiteAccountant,
) -> tuple[Any, DataLoader | None, int]:
    """DP-SGD's updater, loader and steps: per slice (Opacus, a secret batch order) or per
    patient (Poisson-sampled patients, no loader: cardiomm/privacy/patient_dp.py), and no
    more steps than the epsilon budget affords. Subsampling amplifies privacy only if nobody
    can replay the draws, so they never come from the run's seed. Per-example clipping
    replaces the global clip (which would only shrink the noisy gradient)."""
    from cardiomm.privacy import dp_sgd

    if privacy.unit == "patient":
        from cardiomm.privacy.patient_dp import PatientUpdates

        updates: Any = PatientUpdates(network, optimiser, train_data, privacy, accountant)
        rate, loader = updates.rate, None
        dp_sgd.check_budget(accountant, privacy, rate)
        wanted = config.max_steps or config.epochs * len(updates.patients)
    else:
        rate = dp_sgd.sample_rate(config.batch_size, len(train_data))
        dp_sgd.check_budget(accountant, privacy, rate)
        loader = _loader(train_data, config, dp_sgd.secret_generator())
        wanted = config.max_steps or config.epochs * len(loader)
        updates = dp_sgd.PrivateUpdates(
            network, optimiser, privacy, config.batch_size, accountant, rate
        )
    allowed = dp_sgd.affordable_steps(accountant, privacy, rate, wanted)
    if allowed < wanted:
        logger.warning(
            "DP-SGD: the epsilon budget %.4g allows %d of the %d steps asked for",
            privacy.epsilon_budget,
            allowed,
            wanted,
        )
    return updates, loader, allowed


class _SkipGuard:
    """Counts skipped updates; too many in a row stop training with a clear error."""

    def __init__(self) -> None:
        self.total = self.in_a_row = 0

    def applied(self) -> None:
        self.in_a_row = 0

    def skipped(self, step: int, where: str) -> None:
        self.total += 1
        self.in_a_row += 1
        logger.warning("step %d (%s): non-finite loss or gradients, update skipped", step, where)
        if self.in_a_row >= MAX_CONSECUTIVE_SKIPS:
            raise FloatingPointError(
                f"{self.in_a_row} consecutive steps gave non-finite gradients (last at step "
                f"{step}, on {where}); lower the learning rate or check the data"
            )


class TrainingStepError(RuntimeError):
    """A training step failed: the message names the step, the images it was on, and why.

    Attributes:
        step: the step (from 1).
        where: the batch's images, ``file frame f slice s`` each.
    """

    def __init__(self, step: int, where: str, cause: BaseException) -> None:
        self.step = step
        self.where = where
        super().__init__(f"training step {step} on {where} failed: {type(cause).__name__}: {cause}")


def describe_batch(sample: SliceSample) -> str:
    """``cine_sax.mat frame 3 slice 1`` for each image of a (collated) batch."""
    files = [sample.file] if isinstance(sample.file, str) else list(sample.file)
    frames = torch.as_tensor(sample.frame).reshape(-1).tolist()
    slices = torch.as_tensor(sample.slice_index).reshape(-1).tolist()
    return "; ".join(
        f"{file} frame {frame} slice {slice_index}"
        for file, frame, slice_index in zip(files, frames, slices, strict=False)
    )


def _validation_due(config: TrainConfig, step: int) -> bool:
    return bool(config.validate_every) and step % config.validate_every == 0


def _restore_trainable(network: torch.nn.Module, trained: set[str]) -> None:
    for name, parameter in network.named_parameters():
        parameter.requires_grad_(name in trained)


def build_optimiser(network: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the trainable parameters, as one fused kernel.

    The fused kernel updates every parameter in one pass instead of a dozen small tensor
    operations per parameter (a tenth of a CPU training step of model=small went to the
    optimiser before); it is deterministic on the CPU.
    """
    return torch.optim.AdamW(
        [p for p in network.parameters() if p.requires_grad],
        lr=config.learning_rate,
        weight_decay=config.weight_decay,
        fused=True,
    )


def learning_rate_factor(config: TrainConfig, step: int) -> float:
    """Multiplier of the base learning rate after ``step`` updates: linear warm-up, then
    step decay."""
    warmup = min(1.0, (step + 1) / config.warmup_steps) if config.warmup_steps else 1.0
    decay = (
        config.lr_decay_gamma ** (step // config.lr_decay_steps) if config.lr_decay_steps else 1.0
    )
    return warmup * decay


def _batches(loader: DataLoader, dataset: Dataset) -> Iterator[SliceSample]:
    """Endless batches; each new pass is a new epoch (with new training masks)."""
    for epoch in itertools.count():
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(epoch)
        yield from loader


def _step(
    network: CardioMMNet,
    reconstructor: NetworkReconstructor,
    sample: SliceSample,
    config: TrainConfig,
    device: torch.device,
    reference_weights: Mapping[str, torch.Tensor] | None,
) -> torch.Tensor:
    masked_kspace = sample.masked_kspace.to(device, non_blocking=True)
    mask = sample.mask.to(device, non_blocking=True)
    target = sample.target.to(device, non_blocking=True)
    undersampling, metadata = reconstructor.embeddings(
        list(sample.metadata_text), list(sample.undersampling_text), device
    )
    with autocast(device, config.bf16):
        reconstruction = network(masked_kspace, mask, undersampling, metadata)
    loss = reconstruction_loss(reconstruction.float(), target, config.l1_weight)
    if config.proximal_mu:
        loss = loss + proximal_term(network, reference_weights, config.proximal_mu)
    return loss


def _validate(
    reconstructor: NetworkReconstructor,
    validation_data: SliceDataset,
    config: TrainConfig,
    device: torch.device,
) -> dict[str, float]:
    result = evaluate_reconstructor(
        reconstructor,
        validation_data,
        device=device,
        max_items=config.max_validation_items,
        show_progress=False,
    )
    mean = result.mean()
    return {name: float(mean[name]) for name in ("psnr", "ssim", "nmse")}
