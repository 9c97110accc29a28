"""The ``none`` text encoder: no metadata conditioning (the paper's CardioSM ablation), while
the undersampling text still reaches the model as a small parsed feature vector."""

from __future__ import annotations

import math
import re

import torch

from cardiomm.masks.mask import MaskPattern
from cardiomm.text.encoder import TextEncoder

UNDERSAMPLING_PREFIX = "Undersampling:"
# Scales the acceleration features to about [0, 1] over CardioMM's training range (4 to 24);
# a larger R still encodes, with features above 1.
REFERENCE_ACCELERATION = 24
_PATTERNS = tuple(MaskPattern)
_UNDERSAMPLING = re.compile(
    r"^\s*Undersampling:\s*(?P<acceleration>\d+(?:\.\d+)?)\s*x\s+(?P<pattern>[A-Za-z]+)\s*\.?\s*$",
    re.IGNORECASE,
)


def is_undersampling_text(text: str) -> bool:
    """Whether ``text`` is an undersampling text (``Undersampling: 16x random.``)."""
    return text.lstrip().lower().startswith(UNDERSAMPLING_PREFIX.lower())


def parse_undersampling_text(text: str) -> tuple[MaskPattern, float]:
    """``Undersampling: 16x random.`` -> (MaskPattern.KT_GAUSSIAN, 16.0).

    Pattern words are the text names (uniform, random, radial) or the official names.
    """
    match = _UNDERSAMPLING.match(text)
    if match is None:
        raise ValueError(
            f"cannot parse the undersampling text {text!r}; expected e.g. "
            "'Undersampling: 16x random.'"
        )
    try:
        pattern = MaskPattern.parse(match["pattern"])
    except ValueError as error:
        raise ValueError(f"cannot parse the undersampling text {text!r}: {error}") from error
    acceleration = float(match["acceleration"])
    if acceleration < 1:
        raise ValueError(f"undersampling text {text!r} has an acceleration below 1")
    return pattern, acceleration


def undersampling_features(pattern: MaskPattern, acceleration: float) -> torch.Tensor:
    """float32 (6,): one-hot of (uniform, random, radial), then 1/R, R/24, log2(R)/log2(24)."""
    one_hot = [1.0 if pattern is candidate else 0.0 for candidate in _PATTERNS]
    scale = REFERENCE_ACCELERATION
    values = [1 / acceleration, acceleration / scale, math.log2(acceleration) / math.log2(scale)]
    return torch.tensor(one_hot + values, dtype=torch.float32)


class StructuredEncoder(TextEncoder):
    """Metadata texts -> zeros; undersampling texts -> ``undersampling_features``.

    ``encode`` returns float32 (N, 6). Texts starting with ``Undersampling:`` are undersampling
    texts and must parse (ValueError naming the text otherwise); every other text is metadata.
    """

    name = "none"
    conditions_on_metadata = False

    def __init__(self) -> None:
        dim = len(_PATTERNS) + 3
        super().__init__(dim=dim, identity=f"structured-undersampling|dim={dim}")

    def _embed(self, texts: list[str]) -> torch.Tensor:
        return torch.stack([self._features(text) for text in texts])

    def _features(self, text: str) -> torch.Tensor:
        if not is_undersampling_text(text):
            return torch.zeros(self.dim)
        return undersampling_features(*parse_undersampling_text(text))
