"""Training the segmenter on reference slices, and its Dice per class."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot
from monai.transforms import RandAdjustContrast, RandAffine, RandGaussianNoise

from cardiomm.progress import progress_bar
from cardiomm.segmentation.classes import CLASS_NAMES, NUM_CLASSES
from cardiomm.segmentation.network import build_segmenter, padding, predict, save_segmenter

Pair = tuple[np.ndarray, np.ndarray]  # float32 image (ky, kx), uint8 classes (ky, kx)


@dataclasses.dataclass(frozen=True)
class SegmenterSettings:
    """How the segmenter trains.

    Attributes:
        size: ``tiny`` or ``default`` (network/SIZES).
        steps: optimiser steps, one image each.
        learning_rate: Adam's.
        seed: weights and the order of images.
        checkpoint_every: also keep ``step-NNNNNN.pt`` every this many steps (0: final only).
        augment: random rotation, scaling, shift, contrast (gamma) and noise per image
            (:func:`augmentation`), besides the left-right flip every run has.
    """

    size: str = "default"
    steps: int = 9000
    learning_rate: float = 1e-3
    seed: int = 0
    checkpoint_every: int = 0
    augment: bool = True


@dataclasses.dataclass(frozen=True)
class SegmenterRun:
    checkpoint: Path
    final_loss: float
    seconds: float
    images: int


def train_segmenter(
    pairs: list[Pair], settings: SegmenterSettings, output: Path, show_progress: bool = True
) -> SegmenterRun:
    """Train on ``pairs`` (random image each step, random flips); checkpoints in ``output``."""
    if not pairs:
        raise ValueError("no reference slices to train the segmenter on")
    torch.manual_seed(settings.seed)
    generator = np.random.default_rng(settings.seed)
    network = build_segmenter(settings.size).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    pad = padding(settings.size)
    augment = augmentation(settings.seed) if settings.augment else None
    began, loss_value = time.perf_counter(), math.nan
    for step in progress_bar(range(1, settings.steps + 1), "training the segmenter", show_progress):
        image, classes = pairs[int(generator.integers(len(pairs)))]
        if generator.random() < 0.5:  # the heart's side varies between scanners
            image, classes = image[:, ::-1], classes[:, ::-1]
        both = pad(torch.from_numpy(np.stack([image, classes.astype(np.float32)])))
        if augment is not None:
            both = augment(both)
        logits = network(both[None, :1])
        loss = loss_function(logits, both[None, 1:].round().long())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        loss_value = float(loss.detach())
        if settings.checkpoint_every and step % settings.checkpoint_every == 0:
            save_segmenter(output / f"step-{step:06d}.pt", network, settings.size, {"step": step})
    seconds = time.perf_counter() - began
    extra = {**dataclasses.asdict(settings), "final_loss": loss_value, "images": len(pairs)}
    checkpoint = save_segmenter(output / "segmenter.pt", network.eval(), settings.size, extra)
    return SegmenterRun(checkpoint, loss_value, seconds, len(pairs))


def augmentation(seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random changes of a (2, ky, kx) stack of image and classes, seeded: the same geometric
    change (rotation up to 20 degrees, scaling up to 15 %, a shift of up to 4 pixels) for
    both, nearest-neighbour for the classes; a contrast (gamma 0.7-1.5) and Gaussian noise
    (std up to 0.05) for the image alone. Scanners, fields of view and patients differ in
    all of these; the segmenter must not learn one centre's."""
    geometry = RandAffine(
        prob=0.8,
        rotate_range=math.radians(20),
        scale_range=0.15,
        translate_range=4,
        padding_mode="zeros",
    ).set_random_state(seed)
    contrast = RandAdjustContrast(prob=0.5, gamma=(0.7, 1.5)).set_random_state(seed + 1)
    noise = RandGaussianNoise(prob=0.5, std=0.05).set_random_state(seed + 2)

    def change(both: torch.Tensor) -> torch.Tensor:
        geometry.randomize(None)
        image = geometry(both[:1], mode="bilinear", randomize=False)
        classes = geometry(both[1:], mode="nearest", randomize=False)
        image = noise(contrast(torch.clamp(torch.as_tensor(image), min=0)))
        stacked = np.concatenate([np.asarray(image), np.asarray(classes)]).astype(np.float32)
        return torch.from_numpy(stacked)

    return change


def dice_per_class(network: torch.nn.Module, size: str, pairs: list[Pair]) -> dict[str, float]:
    """Mean Dice of each foreground class over the images where the reference has it
    (MONAI's DiceMetric; NaN when no image has it)."""
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    rows = []
    for image, classes in pairs:
        predicted = torch.from_numpy(predict(network, image, size)).long()[None, None]
        reference = torch.from_numpy(classes).long()[None, None]
        rows.append(metric(one_hot(predicted, NUM_CLASSES), one_hot(reference, NUM_CLASSES))[0])
    scores = torch.stack(rows).numpy() if rows else np.full((0, NUM_CLASSES - 1), np.nan)
    dice = {}
    for index, name in enumerate(CLASS_NAMES[1:]):
        column = scores[:, index]
        dice[name] = float(np.nanmean(column)) if np.isfinite(column).any() else math.nan
    return dice


def json_numbers(values: dict[str, float]) -> dict[str, float | None]:
    """``values`` with NaN as None (JSON has no NaN; a class no reference has has no Dice)."""
    return {key: value if math.isfinite(value) else None for key, value in values.items()}
