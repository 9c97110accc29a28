"""Training the segmenter on reference slices, and its Dice per class."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.utils import one_hot

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
    """

    size: str = "default"
    steps: int = 4500
    learning_rate: float = 3e-4
    seed: int = 0
    checkpoint_every: int = 0


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
    began, loss_value = time.perf_counter(), math.nan
    for step in progress_bar(range(1, settings.steps + 1), "training the segmenter", show_progress):
        image, classes = pairs[int(generator.integers(len(pairs)))]
        if generator.random() < 0.5:  # the heart's side varies between scanners
            image, classes = image[:, ::-1], classes[:, ::-1]
        both = pad(torch.from_numpy(np.stack([image, classes.astype(np.float32)])))
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
