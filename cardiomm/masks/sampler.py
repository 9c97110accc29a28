"""Random masks for training: pattern and acceleration drawn from configured sets."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cardiomm.masks.factory import DEFAULT_ACS_WIDTH, check_acceleration, make_mask
from cardiomm.masks.mask import MaskPattern, UndersamplingMask

# CardioMM's released training setting.
DEFAULT_PATTERNS = (MaskPattern.UNIFORM, MaskPattern.KT_GAUSSIAN, MaskPattern.KT_RADIAL)
DEFAULT_ACCELERATIONS = (4, 8, 16, 24)
# Radial beams and Gaussian draws depend on the frame index; drawing it from this range gives
# each training sample a different rotation without tying it to a series length.
_FRAME_INDEX_RANGE = 1024


class MaskSampler:
    """Draws a random mask per training sample, reproducibly for a seed.

    Args:
        patterns: pattern names to draw from, uniformly.
        accelerations: nominal R values to draw from, uniformly.
        acs_width: ACS lines / square side for every drawn mask.
        seed: seed of the sampler's own random stream.
        reference_matrix: draw masks as hard as on this (ky, kx) matrix (see
            :mod:`cardiomm.masks.scaling`); None: as defined.
    """

    def __init__(
        self,
        patterns: Sequence[MaskPattern | str] = DEFAULT_PATTERNS,
        accelerations: Sequence[int] = DEFAULT_ACCELERATIONS,
        acs_width: int = DEFAULT_ACS_WIDTH,
        seed: int = 0,
        reference_matrix: tuple[int, int] | None = None,
    ) -> None:
        if not patterns or not accelerations:
            raise ValueError("MaskSampler needs at least one pattern and one acceleration")
        self.patterns = tuple(MaskPattern.parse(p) if isinstance(p, str) else p for p in patterns)
        self.accelerations = tuple(
            check_acceleration(r, "masks.accelerations entry") for r in accelerations
        )
        self.acs_width = int(acs_width)
        self.reference_matrix = reference_matrix
        self._rng = np.random.default_rng(seed)

    def sample(
        self,
        matrix: tuple[int, int],
        num_frames: int = 1,
        rng: np.random.Generator | None = None,
    ) -> UndersamplingMask:
        """A random mask for k-space of size ``matrix`` (ky, kx).

        Args:
            matrix: (ky, kx).
            num_frames: frames of the mask.
            rng: draw from this generator instead of the sampler's own stream; data loader
                workers pass one derived from (seed, epoch, sample index) so that workers do
                not repeat each other's masks.
        """
        rng = self._rng if rng is None else rng
        pattern = self.patterns[rng.integers(len(self.patterns))]
        acceleration = self.accelerations[rng.integers(len(self.accelerations))]
        return make_mask(
            pattern,
            acceleration,
            matrix,
            num_frames=num_frames,
            acs_width=self.acs_width,
            seed=int(rng.integers(2**31 - 1)),
            first_frame=int(rng.integers(_FRAME_INDEX_RANGE)),
            reference_matrix=self.reference_matrix,
        )

    @classmethod
    def from_config(cls, config: object, seed: int = 0) -> MaskSampler:
        """Build from a config with ``patterns``, ``accelerations``, ``acs_width`` and
        optionally ``reference_matrix`` (e.g. the Hydra node ``masks``)."""
        return cls(
            patterns=list(config.patterns),  # type: ignore[attr-defined]
            accelerations=list(config.accelerations),  # type: ignore[attr-defined]
            acs_width=int(config.acs_width),  # type: ignore[attr-defined]
            seed=seed,
            reference_matrix=reference_matrix_from_config(config),
        )


def reference_matrix_from_config(config: object) -> tuple[int, int] | None:
    """``reference_matrix`` of a masks config as (ky, kx), or None when absent or null."""
    values = getattr(config, "reference_matrix", None)
    if values is None:
        return None
    values = [int(value) for value in values]
    if len(values) != 2 or min(values) < 1:
        raise ValueError(f"masks.reference_matrix must be [ky, kx] > 0, got {values}")
    return values[0], values[1]
