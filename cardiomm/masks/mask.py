"""The undersampling mask value type and its pattern names."""

from __future__ import annotations

import dataclasses
import enum

import numpy as np
import torch


class MaskPattern(enum.StrEnum):
    """The CMRxRecon 2025 pattern families, named as in the official mask file names."""

    UNIFORM = "Uniform"
    KT_GAUSSIAN = "ktGaussian"
    KT_RADIAL = "ktRadial"

    @property
    def text_name(self) -> str:
        """The word CardioMM's undersampling text uses for this pattern."""
        return _TEXT_NAMES[self]

    @classmethod
    def parse(cls, name: str) -> MaskPattern:
        """Accept official names (``ktGaussian``) and text names (``random``), any case."""
        wanted = name.strip().lower()
        for pattern in cls:
            if wanted in (pattern.value.lower(), pattern.text_name):
                return pattern
        choices = ", ".join(f"{p.value} ({p.text_name})" for p in cls)
        raise ValueError(f"unknown mask pattern {name!r}; choose one of {choices}")


_TEXT_NAMES = {
    MaskPattern.UNIFORM: "uniform",
    MaskPattern.KT_GAUSSIAN: "random",
    MaskPattern.KT_RADIAL: "radial",
}


@dataclasses.dataclass(frozen=True, eq=False)
class UndersamplingMask:
    """A sampling mask with the settings that made it.

    Attributes:
        pattern: the pattern family.
        acceleration: nominal acceleration R (ACS not counted).
        acs_width: ACS lines (Uniform, ktGaussian) or ACS square side (ktRadial).
        values: bool (frames, ky, kx), True where sampled.
    """

    pattern: MaskPattern
    acceleration: int
    acs_width: int
    values: np.ndarray

    def __post_init__(self) -> None:
        if self.values.ndim != 3 or self.values.dtype != np.bool_:
            raise ValueError(
                f"mask values must be a bool array (frames, ky, kx), got {self.values.dtype} "
                f"with shape {self.values.shape}"
            )

    @property
    def num_frames(self) -> int:
        return self.values.shape[0]

    @property
    def matrix(self) -> tuple[int, int]:
        """(ky, kx)."""
        return self.values.shape[1], self.values.shape[2]

    @property
    def sampling_fraction(self) -> float:
        """Fraction of k-space samples taken, ACS included, over all frames."""
        return float(self.values.mean())

    @property
    def frame_sampling_fractions(self) -> np.ndarray:
        """(frames,) fraction sampled in each frame."""
        return self.values.mean(axis=(1, 2))

    @property
    def true_acceleration(self) -> float:
        """1 / sampling fraction: lower than the nominal R because the ACS region is extra."""
        return 1.0 / self.sampling_fraction

    @property
    def text(self) -> str:
        """CardioMM's undersampling text, e.g. ``Undersampling: 16x random.``"""
        return f"Undersampling: {self.acceleration}x {self.pattern.text_name}."

    @property
    def name(self) -> str:
        """The official short name, e.g. ``ktGaussian16`` (as in ``..._mask_ktGaussian16.mat``)."""
        return f"{self.pattern.value}{self.acceleration}"

    def frame(self, index: int) -> np.ndarray:
        """bool (ky, kx) mask of one frame; frames beyond the last repeat cyclically."""
        return self.values[index % self.num_frames]

    def to_tensor(self, device: torch.device | str | None = None) -> torch.Tensor:
        """float32 (frames, ky, kx) tensor of 0/1, ready to multiply complex k-space."""
        return torch.from_numpy(self.values.astype(np.float32)).to(device)
