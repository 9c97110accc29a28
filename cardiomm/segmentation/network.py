"""The segmenter: MONAI's 2D U-Net, its input, its checkpoint, and its prediction on one image.

The U-Net sees a logarithmic compression of the normalised magnitude (:func:`network_input`).
Images are normalised by their 99.5th percentile, which the bright body wall next to the
surface coils sets: the heart then sits at 0.04-0.35 of that, and a basal slice's blood pool
at 3 T can be a third as bright as a mid-ventricular one of the same scan. The logarithm
spreads those low intensities out. Chosen on the 4 internal validation scans (6000 steps
each; Dice LV blood / LV myocardium / RV blood, LVEF mean absolute error against the
phantoms' truth; docs/clinical-outputs.md): linear 0.88 / 0.84 / 0.84, 11.1 points;
a bias-field augmentation 0.87 / 0.83 / 0.81, 9.9; a darkening augmentation 0.89 / 0.85 /
0.83, 10.0; square root 0.94 / 0.87 / 0.84, 7.1; cube root 0.94 / 0.87 / 0.87, 5.7;
log(1 + 20 x) / log(21) 0.96 / 0.88 / 0.85, 4.4 (chosen: the best LVEF error, Dice within
0.01 of the best).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.networks.nets import UNet
from monai.transforms import DivisiblePad

from cardiomm.segmentation.classes import CLASS_NAMES, NUM_CLASSES

CHECKPOINT_FORMAT = "cardiomm-segmenter"
# The input compression's gain (network_input).
LOG_GAIN = 20.0
# 2: the network's input is log(1 + 20 x) / log(21) of the normalised image (1 was linear).
CHECKPOINT_VERSION = 2
# Feature channels per level: tiny for tests, default for the study (CPU-sized).
SIZES = {"tiny": (8, 16, 32), "default": (16, 32, 64, 128)}


def build_segmenter(size: str = "default") -> UNet:
    """A 2D U-Net (MONAI): 1 input channel, one output channel per class."""
    if size not in SIZES:
        raise ValueError(f"segmenter size {size!r}: one of {', '.join(SIZES)}")
    channels = SIZES[size]
    return UNet(
        spatial_dims=2,
        in_channels=1,
        out_channels=NUM_CLASSES,
        channels=channels,
        strides=(2,) * (len(channels) - 1),
        num_res_units=1,
    )


def network_input(images: torch.Tensor) -> torch.Tensor:
    """What the U-Net sees of normalised magnitudes (any shape): ``log(1 + 20 x) / log(21)``,
    which keeps 0 and 1 where they are and lifts 0.05 to 0.23 (negative values, which
    interpolation can make, count as 0)."""
    return torch.log1p(LOG_GAIN * torch.clamp(images, min=0)) / math.log1p(LOG_GAIN)


def padding(size: str) -> DivisiblePad:
    """Pads (channels, ky, kx) to what the U-Net's strides divide."""
    return DivisiblePad(k=2 ** (len(SIZES[size]) - 1))


def predict(network: torch.nn.Module, image: np.ndarray, size: str) -> np.ndarray:
    """uint8 (ky, kx) classes of a normalised float (ky, kx) image."""
    padded = padding(size)(torch.from_numpy(image)[None])
    with torch.no_grad():
        logits = network(network_input(padded[None].float()))[0]
    classes = logits.argmax(0)
    top = (classes.shape[0] - image.shape[0]) // 2
    left = (classes.shape[1] - image.shape[1]) // 2
    cropped = classes[top : top + image.shape[0], left : left + image.shape[1]]
    return cropped.numpy().astype(np.uint8)


def save_segmenter(path: Path, network: torch.nn.Module, size: str, extra: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "size": size,
            "classes": list(CLASS_NAMES),
            "state_dict": network.state_dict(),
            "extra": extra,
        },
        temporary,
    )
    temporary.replace(path)  # a crash mid-write never leaves a half checkpoint under the name
    return path


def load_segmenter(path: Path) -> tuple[torch.nn.Module, str]:
    """(the network in eval mode, its size) of a checkpoint :func:`save_segmenter` wrote.

    Raises:
        ValueError: not a segmenter checkpoint of this version; the message names the file.
    """
    content = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a CardioMM-FL segmenter checkpoint")
    if content.get("version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: segmenter checkpoint version {content.get('version')}")
    network = build_segmenter(content["size"])
    network.load_state_dict(content["state_dict"])
    return network.eval(), content["size"]
