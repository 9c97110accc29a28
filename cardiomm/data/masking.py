"""Which mask each image of a dataset gets: drawn per training sample, or fixed for evaluation.

A slice dataset reads; a masking object decides the undersampling, as fastMRI passes a mask
function into its transform. :class:`TrainingMasks` draws a new random mask per item and
epoch from a :class:`~cardiomm.masks.MaskSampler`, seeded by (seed, epoch, item), so data
loader workers do not repeat each other; :class:`EvaluationMasks` gives every image one fixed,
seeded setting (or the official mask file when one exists beside the data), the same for
every method scored on it.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np

from cardiomm.data.errors import DataFileError, MaskFileNotFoundError
from cardiomm.data.readers import MaskFile, read_official_mask
from cardiomm.masks import MaskPattern, MaskSampler, UndersamplingMask, make_mask
from cardiomm.masks.factory import DEFAULT_ACS_WIDTH, check_acceleration

logger = logging.getLogger(__name__)


class MaskSetting(NamedTuple):
    """A fixed evaluation setting, e.g. ``MaskSetting("ktGaussian", 16)``."""

    pattern: str
    acceleration: int

    @property
    def name(self) -> str:
        return f"{MaskPattern.parse(self.pattern).value}{self.acceleration}"


DEFAULT_EVAL_MASK = MaskSetting("Uniform", 8)


@dataclasses.dataclass(frozen=True)
class ImageKey:
    """Which image a mask is for: the dataset item, its file, frame, slice and matrix."""

    item: int
    path: Path
    frame: int
    slice_index: int
    matrix: tuple[int, int]


class Masking(Protocol):
    """Chooses the one-frame mask of each image of a dataset."""

    def mask_for(self, image: ImageKey, epoch: int) -> UndersamplingMask:
        """The mask of ``image`` (values bool (1, ky, kx)) in training epoch ``epoch``."""
        ...

    def window_masks(
        self, image: ImageKey, frames: Sequence[int], epoch: int
    ) -> list[UndersamplingMask]:
        """One-frame masks of the window ``frames`` around ``image`` (a frame-window model's
        item), one per window position; a frame that appears twice gets the same mask."""
        ...


@dataclasses.dataclass(frozen=True)
class TrainingMasks:
    """A new random mask per item and epoch from ``sampler``, reproducible for ``seed``.

    Attributes:
        sampler: the training mask distribution.
        seed: seeds the draws (with the epoch and the item).
    """

    sampler: MaskSampler = dataclasses.field(default_factory=MaskSampler)
    seed: int = 0

    def mask_for(self, image: ImageKey, epoch: int) -> UndersamplingMask:
        rng = np.random.default_rng([self.seed, epoch, image.item])
        return self.sampler.sample(image.matrix, rng=rng)

    def window_masks(
        self, image: ImageKey, frames: Sequence[int], epoch: int
    ) -> list[UndersamplingMask]:
        """One k-t mask drawn for the window's distinct frames, in window order: the frames
        share pattern and R and, for kt patterns, sample other lines in each frame, as an
        acquisition does; a repeated frame (a series shorter than the window, a frameless
        one) was acquired once, so it gets its one mask again."""
        distinct = list(dict.fromkeys(frames))
        rng = np.random.default_rng([self.seed, epoch, image.item])
        drawn = self.sampler.sample(image.matrix, num_frames=len(distinct), rng=rng)
        return [frame_of(drawn, distinct.index(frame)) for frame in frames]


@dataclasses.dataclass(frozen=True)
class EvaluationMasks:
    """One fixed, seeded mask setting per image, the same in every epoch and for every method.

    Attributes:
        settings: the settings, one picked per image (fixed, seeded), e.g. the paper's three.
        acs_width: ACS lines / square side of generated masks.
        seed: seeds the choice of setting and the ktGaussian draws (with the file's name).
        reference_matrix: generated masks as hard as on this (ky, kx) matrix
            (:mod:`cardiomm.masks.scaling`).
        use_official_masks: use the challenge's mask file when one exists beside the data.
    """

    settings: tuple[MaskSetting, ...] = (MaskSetting("Uniform", 8),)
    acs_width: int = DEFAULT_ACS_WIDTH
    seed: int = 0
    reference_matrix: tuple[int, int] | None = None
    use_official_masks: bool = True

    def __post_init__(self) -> None:
        settings = tuple(MaskSetting(*setting) for setting in self.settings)
        if not settings:
            raise ValueError("evaluation masks need at least one (pattern, acceleration) setting")
        for setting in settings:
            check_acceleration(setting.acceleration, f"evaluation mask {setting.pattern}")
        object.__setattr__(self, "settings", settings)

    def with_settings(self, *settings: MaskSetting | tuple[str, int]) -> EvaluationMasks:
        """The same masking with other settings."""
        return dataclasses.replace(self, settings=tuple(MaskSetting(*s) for s in settings))

    def mask_for(self, image: ImageKey, epoch: int) -> UndersamplingMask:
        seed = stable_seed(self.seed, image.path, image.slice_index)
        setting = self.settings[(seed + image.frame) % len(self.settings)]
        if self.use_official_masks:
            official = official_mask_frame(image.path, setting, image.frame, image.matrix)
            if official is not None:
                return official
        return make_mask(
            setting.pattern,
            setting.acceleration,
            image.matrix,
            acs_width=self.acs_width,
            seed=seed,
            first_frame=image.frame,
            reference_matrix=self.reference_matrix,
        )

    def window_masks(
        self, image: ImageKey, frames: Sequence[int], epoch: int
    ) -> list[UndersamplingMask]:
        """Each window frame's own fixed mask: what :meth:`mask_for` gives that frame."""
        return [self.mask_for(dataclasses.replace(image, frame=f), epoch) for f in frames]


def frame_of(mask: UndersamplingMask, frame: int) -> UndersamplingMask:
    """Frame ``frame`` of a multi-frame mask as a one-frame mask with the same settings."""
    return dataclasses.replace(mask, values=mask.values[frame : frame + 1])


def evaluation_masks(
    settings: Sequence[MaskSetting | tuple[str, int]] | MaskSetting | tuple[str, int],
    acs_width: int = DEFAULT_ACS_WIDTH,
    seed: int = 0,
    reference_matrix: tuple[int, int] | None = None,
    use_official_masks: bool = True,
) -> EvaluationMasks:
    """:class:`EvaluationMasks` of one setting (``("Uniform", 4)``) or several."""
    if len(settings) == 2 and isinstance(settings[0], str):
        settings = [settings]  # type: ignore[list-item]
    return EvaluationMasks(
        tuple(MaskSetting(*setting) for setting in settings),
        acs_width,
        seed,
        reference_matrix,
        use_official_masks,
    )


def stable_seed(seed: int, path: Path, slice_index: int) -> int:
    """A seed for one slice that does not depend on where the data set is mounted."""
    key = "/".join(path.parts[-4:]) + f"#{slice_index}"
    return (seed * 1_000_003 + zlib.crc32(key.encode())) % 2**31


def official_mask_frame(
    path: Path, setting: MaskSetting, frame: int, matrix: tuple[int, int]
) -> UndersamplingMask | None:
    """The official mask of ``path`` for ``setting``, frame ``frame``, if its file exists and
    fits the k-space matrix; otherwise None (the caller generates the mask)."""
    pattern = MaskPattern.parse(setting.pattern)
    try:
        official = _cached_official_mask(str(path), pattern.value, setting.acceleration)
    except MaskFileNotFoundError:
        return None
    except DataFileError as error:
        logger.warning(
            "unusable official mask for %s (%s); generating the mask instead", path, error
        )
        return None
    values = official.frame(frame)
    if values.shape != matrix:
        logger.warning(
            "official mask of %s is %s but the k-space is %s; generating the mask instead",
            path,
            values.shape,
            matrix,
        )
        return None
    # The file does not say how wide its ACS block is; 0 records "not known here".
    return UndersamplingMask(pattern, setting.acceleration, 0, values[None].astype(bool))


@functools.lru_cache(maxsize=64)
def _cached_official_mask(path: str, pattern: str, acceleration: int) -> MaskFile:
    # A per-frame cine mask file is megabytes; items of one file share it.
    return read_official_mask(path, pattern, acceleration)
