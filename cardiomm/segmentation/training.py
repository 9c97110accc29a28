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
from monai.transforms import (
    RandAdjustContrast,
    RandAffine,
    RandGaussianNoise,
    RandScaleIntensity,
)

from cardiomm.progress import progress_bar
from cardiomm.segmentation.classes import CLASS_NAMES, NUM_CLASSES
from cardiomm.segmentation.network import (
    build_segmenter,
    network_input,
    padding,
    predict,
    save_segmenter,
)

Pair = tuple[np.ndarray, np.ndarray]  # float32 image (ky, kx), uint8 classes (ky, kx)


@dataclasses.dataclass(frozen=True)
class SegmenterSettings:
    """How the segmenter trains.

    Attributes:
        size: ``tiny`` or ``default`` (network/SIZES).
        steps: optimiser steps.
        learning_rate: Adam's (cosine decay to a hundredth over the steps).
        seed: weights, the order of images and their crops.
        checkpoint_every: also keep ``step-NNNNNN.pt`` every this many steps (0: final only).
        augment: random rotation, scaling, shift, contrast (gamma), intensity and noise per
            image (:func:`augmentation`), besides the flips every run has.
        batch_size: images per step.
        crop: side of the square crop each training image is cut to (0: whole images, which
            then must share one matrix); the crop holds the heart, at a random offset, so
            every step sees hearts while the network, fully convolutional, still segments
            whole images.
    """

    size: str = "default"
    steps: int = 6000
    learning_rate: float = 2e-3
    seed: int = 0
    checkpoint_every: int = 0
    augment: bool = True
    batch_size: int = 8
    crop: int = 96

    def __post_init__(self) -> None:
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(
                f"steps and batch_size must be >= 1, got {self.steps} and {self.batch_size}"
            )
        if self.crop < 0:
            raise ValueError(f"crop must be >= 0, got {self.crop}")


@dataclasses.dataclass(frozen=True)
class SegmenterRun:
    checkpoint: Path
    final_loss: float
    seconds: float
    images: int


def train_segmenter(
    pairs: list[Pair], settings: SegmenterSettings, output: Path, show_progress: bool = True
) -> SegmenterRun:
    """Train on ``pairs`` (a random batch of heart crops each step, random flips and
    augmentation); checkpoints in ``output``."""
    if not pairs:
        raise ValueError("no reference slices to train the segmenter on")
    torch.manual_seed(settings.seed)
    generator = np.random.default_rng(settings.seed)
    network = build_segmenter(settings.size).train()
    optimiser = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, settings.steps, eta_min=settings.learning_rate / 100
    )
    loss_function = DiceCELoss(to_onehot_y=True, softmax=True)
    pad = padding(settings.size)
    augment = augmentation(settings.seed) if settings.augment else None
    hearts = [heart_centre(classes) for _, classes in pairs]
    began, loss_value = time.perf_counter(), math.nan
    for step in progress_bar(range(1, settings.steps + 1), "training the segmenter", show_progress):
        batch = []
        for _ in range(settings.batch_size):
            index = int(generator.integers(len(pairs)))
            image, classes = heart_crop(*pairs[index], hearts[index], settings.crop, generator)
            if generator.random() < 0.5:  # the heart's side varies between scanners
                image, classes = image[:, ::-1], classes[:, ::-1]
            if generator.random() < 0.5:
                image, classes = image[::-1], classes[::-1]
            both = np.stack([image, classes.astype(np.float32)])
            both = pad(torch.from_numpy(np.ascontiguousarray(both)))
            batch.append(augment(both) if augment is not None else both)
        stacked = torch.stack(batch)
        logits = network(network_input(stacked[:, :1]))
        loss = loss_function(logits, stacked[:, 1:].round().long())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        loss_value = float(loss.detach())
        if settings.checkpoint_every and step % settings.checkpoint_every == 0:
            save_segmenter(output / f"step-{step:06d}.pt", network, settings.size, {"step": step})
    seconds = time.perf_counter() - began
    extra = {**dataclasses.asdict(settings), "final_loss": loss_value, "images": len(pairs)}
    checkpoint = save_segmenter(output / "segmenter.pt", network.eval(), settings.size, extra)
    return SegmenterRun(checkpoint, loss_value, seconds, len(pairs))


def heart_centre(classes: np.ndarray) -> tuple[int, int] | None:
    """(row, column) of the centre of the labelled heart (ky, kx), or None when there is none."""
    rows, columns = np.nonzero(classes)
    if rows.size == 0:
        return None
    return int(rows.mean()), int(columns.mean())


# Largest standard deviation of the added noise, in units of the normalised image.
NOISE_STD = 0.05
# A crop's centre lies this share of the crop away from the heart's centre at most.
_CROP_JITTER = 0.25


def heart_crop(
    image: np.ndarray,
    classes: np.ndarray,
    heart: tuple[int, int] | None,
    size: int,
    generator: np.random.Generator,
) -> Pair:
    """A ``size`` x ``size`` crop of a (ky, kx) image and its (ky, kx) classes
    (zero-padded where the image is smaller) around the heart at a random offset, or
    anywhere when there is no heart; ``size`` 0 keeps the image."""
    if size <= 0:
        return image, classes
    rows, columns = classes.shape
    if heart is None:
        heart = (int(generator.integers(rows)), int(generator.integers(columns)))
    jitter = int(_CROP_JITTER * size)
    centre = [c + int(generator.integers(-jitter, jitter + 1)) for c in heart]
    out_image = np.zeros((size, size), dtype=np.float32)
    out_classes = np.zeros((size, size), dtype=np.uint8)
    top, left = centre[0] - size // 2, centre[1] - size // 2
    source_rows = slice(max(top, 0), min(top + size, rows))
    source_columns = slice(max(left, 0), min(left + size, columns))
    target_rows = slice(source_rows.start - top, source_rows.stop - top)
    target_columns = slice(source_columns.start - left, source_columns.stop - left)
    out_image[target_rows, target_columns] = image[source_rows, source_columns]
    out_classes[target_rows, target_columns] = classes[source_rows, source_columns]
    return out_image, out_classes


def augmentation(seed: int) -> Callable[[torch.Tensor], torch.Tensor]:
    """Random changes of a (2, ky, kx) stack of image and classes, seeded: the same geometric
    change (rotation up to 20 degrees, scaling up to 15 %, a shift of up to 4 pixels) for
    both, nearest-neighbour for the classes; a contrast (gamma 0.7-1.5), an intensity scale
    (0.5-1.5: coil arrays light the heart differently) and Gaussian noise (std up to
    :data:`NOISE_STD`) for the image
    alone. Scanners, fields of view and patients differ in all of these; the
    segmenter must not learn one centre's."""
    geometry = RandAffine(
        prob=0.8,
        rotate_range=math.radians(20),
        scale_range=0.15,
        translate_range=4,
        padding_mode="zeros",
    ).set_random_state(seed)
    contrast = RandAdjustContrast(prob=0.5, gamma=(0.7, 1.5)).set_random_state(seed + 1)
    intensity = RandScaleIntensity(factors=0.5, prob=0.5).set_random_state(seed + 3)
    noise = RandGaussianNoise(prob=0.5, std=NOISE_STD).set_random_state(seed + 2)

    def change(both: torch.Tensor) -> torch.Tensor:
        geometry.randomize(None)
        image = geometry(both[:1], mode="bilinear", randomize=False)
        classes = geometry(both[1:], mode="nearest", randomize=False)
        image = noise(intensity(contrast(torch.clamp(torch.as_tensor(image), min=0))))
        stacked = np.concatenate([np.asarray(image), np.asarray(classes)]).astype(np.float32)
        return torch.from_numpy(stacked)

    return change


def dice_scores(network: torch.nn.Module, size: str, pairs: list[Pair]) -> np.ndarray:
    """float (images, foreground classes) Dice of each image (MONAI's DiceMetric), NaN where
    the reference lacks the class."""
    metric = DiceMetric(include_background=False, reduction="none", ignore_empty=True)
    rows = []
    for image, classes in pairs:
        predicted = torch.from_numpy(predict(network, image, size)).long()[None, None]
        reference = torch.from_numpy(classes).long()[None, None]
        rows.append(metric(one_hot(predicted, NUM_CLASSES), one_hot(reference, NUM_CLASSES))[0])
    return torch.stack(rows).numpy() if rows else np.full((0, NUM_CLASSES - 1), np.nan)


def dice_per_class(network: torch.nn.Module, size: str, pairs: list[Pair]) -> dict[str, float]:
    """Mean Dice of each foreground class over the images where the reference has it
    (MONAI's DiceMetric; NaN when no image has it)."""
    scores = dice_scores(network, size, pairs)
    dice = {}
    for index, name in enumerate(CLASS_NAMES[1:]):
        column = scores[:, index]
        dice[name] = float(np.nanmean(column)) if np.isfinite(column).any() else math.nan
    return dice


def dice_intervals(
    scores: np.ndarray, seed: int = 0, resamples: int = 2000
) -> dict[str, tuple[float, float, float]]:
    """Class -> (mean, 2.5th, 97.5th percentile) of the mean Dice over a percentile bootstrap
    of the images (rows of :func:`dice_scores`), seeded; NaNs where no image has the class."""
    generator = np.random.default_rng(seed)
    intervals = {}
    for index, name in enumerate(CLASS_NAMES[1:]):
        column = scores[:, index]
        column = column[np.isfinite(column)]
        if column.size == 0:
            intervals[name] = (math.nan, math.nan, math.nan)
            continue
        draws = generator.integers(0, column.size, size=(resamples, column.size))
        means = column[draws].mean(axis=1)
        low, high = np.percentile(means, [2.5, 97.5])
        intervals[name] = (float(column.mean()), float(low), float(high))
    return intervals


def json_numbers(values: dict[str, float]) -> dict[str, float | None]:
    """``values`` with NaN as None (JSON has no NaN; a class no reference has has no Dice)."""
    return {key: value if math.isfinite(value) else None for key, value in values.items()}
