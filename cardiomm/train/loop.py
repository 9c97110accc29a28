"""The local trainer: AdamW on 1 - SSIM, optional FedProx term, periodic validation.

:func:`train_model` takes a :class:`~cardiomm.train.run.TrainingRun` and goes through its
steps: check the inputs, hand a multi-device run to the data-parallel launcher, set up
(:func:`_start`: device, seed, trainable parameters, updater, schedule, batches), take the
steps (:func:`_slice_step` or, for patient-level DP-SGD, :func:`_patient_step`), validate
at the end, and sum up (:func:`_result`)."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from cardiomm.data.dataset import SliceSample
from cardiomm.model.network import CardioMMNet
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.model.trainable import select_trainable
from cardiomm.progress import progress_bar
from cardiomm.train.config import TrainConfig
from cardiomm.train.data_parallel import DataParallelRank, train_data_parallel
from cardiomm.train.evaluate import evaluate_reconstructor
from cardiomm.train.loss import proximal_term, reconstruction_loss
from cardiomm.train.run import TrainingRun
from cardiomm.train.runtime import (
    autocast,
    deterministic_kernels,
    seed_everything,
    select_device,
)
from cardiomm.train.updates import PlainUpdates

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


def train_model(run: TrainingRun) -> TrainResult:
    """Train ``run.network`` in place on ``run.train_data`` (:class:`TrainingRun` says what
    each input does).

    With ``run.config.devices`` > 1 the training runs data-parallel in that many processes
    (:mod:`cardiomm.train.data_parallel`), with the same global batches and updates as on one
    device up to floating-point summation order.
    """
    run.check()
    if run.config.devices > 1 and run.data_parallel is None:
        return train_data_parallel(run)
    session = _start(run)
    with contextlib.ExitStack() as cleanup:
        # Deterministic kernels (when asked) for this run only; the updater's hooks off after.
        cleanup.enter_context(deterministic_kernels(run.config.deterministic))
        cleanup.callback(session.updates.close)
        # The network is the caller's: it gets its trainable flags back.
        cleanup.callback(_restore_trainable, run.network, session.trained)
        steps = range(1, session.total_steps + 1)
        for step in progress_bar(steps, "training", enabled=run.show_progress):
            if run.patient_level:
                _patient_step(run, session, step)
            else:
                _slice_step(run, session, step)
    _final_validation(run, session)
    return _result(run, session)


@dataclasses.dataclass
class _Session:
    """A training run in progress: what :func:`_start` set up and what the steps add."""

    device: torch.device
    trained: set[str]  # the parameters the caller had trainable, given back at the end
    trainable_parameters: int
    reconstructor: NetworkReconstructor
    updates: Any
    scheduler: torch.optim.lr_scheduler.LambdaLR
    total_steps: int
    batches: Iterator[SliceSample] | None
    started: float
    losses: list[float] = dataclasses.field(default_factory=list)
    validation_history: list[tuple[int, dict[str, float]]] = dataclasses.field(default_factory=list)
    examples: int = 0
    skips: _SkipGuard = dataclasses.field(default_factory=lambda: _SkipGuard())


def _start(run: TrainingRun) -> _Session:
    """Seed, place and freeze the network, then build its updater, schedule and batches (the
    caller's trainable flags given back if that fails)."""
    config, network = run.config, run.network
    device = run.data_parallel.device if run.data_parallel else select_device(config.device)
    if config.num_threads:
        torch.set_num_threads(config.num_threads)
    generator = seed_everything(config.seed)
    network.to(device).train()
    trained = {name for name, p in network.named_parameters() if p.requires_grad}
    trainable_parameters = select_trainable(network, config.trainable)
    reconstructor = NetworkReconstructor(network, run.text_encoder)
    try:
        updates, scheduler, loader, total_steps = _optimisation(run, generator)
    except BaseException:
        _restore_trainable(network, trained)
        raise
    started = time.perf_counter()
    # Patient-level DP-SGD draws its own batches (Poisson-sampled patients) at every step.
    batches = None if run.patient_level else _batches(loader, run.train_data)
    return _Session(
        device,
        trained,
        trainable_parameters,
        reconstructor,
        updates,
        scheduler,
        total_steps,
        batches,
        started,
    )


def _slice_step(run: TrainingRun, session: _Session, step: int) -> None:
    """One step over the next batch of slices (plain or per-slice DP-SGD): update, count,
    call back and validate when due."""
    data_parallel = run.data_parallel
    sample = next(session.batches)
    try:
        loss = _step(
            run.network,
            session.reconstructor,
            sample,
            run.config,
            session.device,
            run.reference_weights,
        )
        if data_parallel is not None:
            loss = loss * data_parallel.next_share()
        applied = session.updates.apply(loss, run.reference_weights, run.config.proximal_mu)
        # Data-parallel: the global batch's loss (this rank's is only its share).
        value = session.updates.last_loss if data_parallel else float(loss.detach())
    except Exception as error:
        raise TrainingStepError(step, describe_batch(sample), error) from error
    _count(session, step, applied, value, describe_batch(sample) if not applied else "")
    session.examples += data_parallel.global_count if data_parallel else sample.target.shape[0]
    if run.on_step is not None:
        run.on_step(step, value)
    if run.validation_data is not None and _validation_due(run.config, step):
        session.validation_history.append((step, _validate(run, session)))
        run.network.train()


def _patient_step(run: TrainingRun, session: _Session, step: int) -> None:
    """One patient-level DP-SGD step (cardiomm/privacy/patient_dp.py); its loss is the mean
    over the sampled slices, NaN when no patient was sampled."""
    if hasattr(run.train_data, "set_epoch"):
        run.train_data.set_epoch(step)  # new training masks every step
    without_proximal = dataclasses.replace(run.config, proximal_mu=0.0)  # added after the noise
    losses: list[float] = []

    def loss_of(sample: SliceSample) -> torch.Tensor:
        loss = _step(
            run.network, session.reconstructor, sample, without_proximal, session.device, None
        )
        losses.append(float(loss.detach()))
        return loss

    try:
        applied = session.updates.step(loss_of, run.reference_weights, run.config.proximal_mu)
    except Exception as error:
        raise TrainingStepError(step, "the step's sampled patients", error) from error
    value = sum(losses) / len(losses) if losses else math.nan
    _count(session, step, applied, value, "the step's sampled patients")


def _count(session: _Session, step: int, applied: bool, value: float, where: str) -> None:
    """Record a step's loss; the schedule counts applied updates only (a skipped one
    neither warms up nor decays), and too many skips in a row stop the run."""
    if applied:
        session.scheduler.step()
        session.skips.applied()
    else:
        session.skips.skipped(step, where)
    session.losses.append(value)


def _final_validation(run: TrainingRun, session: _Session) -> None:
    """Validate the trained model unless the last step just did."""
    history = session.validation_history
    if run.validation_data is not None and (not history or history[-1][0] != session.total_steps):
        history.append((session.total_steps, _validate(run, session)))


def _result(run: TrainingRun, session: _Session) -> TrainResult:
    """The run's :class:`TrainResult`: mean losses over the finite ones, the last
    validation."""
    if run.patient_level:  # the images of the sampled patients, counted by their updater
        session.examples = session.updates.images
    losses = session.losses
    finite = [value for value in losses if math.isfinite(value)] or [math.nan]
    tail = finite[-max(1, len(finite) // 10) :]
    history = session.validation_history
    return TrainResult(
        steps=session.total_steps,
        examples=session.examples,
        loss=sum(finite) / len(finite),
        final_loss=sum(tail) / len(tail),
        skipped_steps=session.skips.total,
        loss_history=losses,
        validation=history[-1][1] if history else {},
        validation_history=history,
        seconds=time.perf_counter() - session.started,
        device=str(session.device),
        trainable_parameters=session.trainable_parameters,
    )


def _optimisation(
    run: TrainingRun, generator: torch.Generator
) -> tuple[Any, torch.optim.lr_scheduler.LambdaLR, DataLoader | None, int]:
    """(updater, learning-rate schedule, batches, steps to take): plain updates over a seeded
    shuffling loader, or DP-SGD ones over Poisson-sampled batches whose step count the
    privacy budget may cut short."""
    config = run.config
    optimiser = build_optimiser(run.network, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, partial(learning_rate_factor, config))
    if run.private:
        updates, loader, total_steps = _private_updates(run, optimiser)
        return updates, scheduler, loader, total_steps
    loader = _loader(run.train_data, config, generator, run.data_parallel)
    total_steps = config.max_steps or config.epochs * len(loader)
    synchronise = run.data_parallel.synchronise if run.data_parallel else None
    updates = PlainUpdates(run.network, optimiser, config.gradient_clip, synchronise)
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


def _private_updates(
    run: TrainingRun, optimiser: torch.optim.Optimizer
) -> tuple[Any, DataLoader | None, int]:
    """DP-SGD's updater, loader and steps: per slice (Opacus, a secret batch order) or per
    patient (Poisson-sampled patients, no loader: cardiomm/privacy/patient_dp.py), and no
    more steps than the epsilon budget affords. Subsampling amplifies privacy only if nobody
    can replay the draws, so they never come from the run's seed. Per-example clipping
    replaces the global clip (which would only shrink the noisy gradient)."""
    from cardiomm.privacy import dp_sgd

    network, train_data, config = run.network, run.train_data, run.config
    privacy, accountant = run.privacy, run.accountant
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


def _validate(run: TrainingRun, session: _Session) -> dict[str, float]:
    """Mean PSNR / SSIM / NMSE of the network on ``run.validation_data``."""
    result = evaluate_reconstructor(
        session.reconstructor,
        run.validation_data,
        device=session.device,
        max_items=run.config.max_validation_items,
        show_progress=False,
    )
    mean = result.mean()
    return {name: float(mean[name]) for name in ("psnr", "ssim", "nmse")}
