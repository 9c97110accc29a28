"""Which sampling mask a file is reconstructed with.

- Undersampled files (``kus``, ``kspace_subNN``) were sampled already: their mask is the
  official mask file beside them when there is one that fits, otherwise the sampled locations
  read off the k-space itself (whole phase-encode lines for Cartesian patterns, single samples
  for radial ones), since data consistency needs exactly the set that was acquired. Pattern and
  acceleration, for the undersampling text, come from the file name (``_kus_Uniform8``); where
  the name does not say them, from ``--mask``; a 2023 ``kspace_sub04`` file names only R, and
  its masks are equispaced, hence Uniform.
- Fully sampled files are undersampled here, with a mask spec such as ``ktGaussian16``, exactly
  as the evaluation data set does it: the official mask file for that setting when one exists
  and fits, otherwise a mask generated per slice with ``stable_seed(seed, path, slice)`` and
  ``first_frame = frame``, so that ``cardiomm reconstruct`` and ``cardiomm evaluate`` score
  the same samples.
"""

from __future__ import annotations

import abc
import logging
import re
from pathlib import Path

import numpy as np

from cardiomm.data.errors import DataFileError, MaskFileNotFoundError
from cardiomm.data.masking import MaskSetting, stable_seed
from cardiomm.data.readers import KSpaceSeries, MaskFile, read_official_mask
from cardiomm.masks import MaskPattern, UndersamplingMask, make_mask
from cardiomm.masks.factory import DEFAULT_ACS_WIDTH

logger = logging.getLogger(__name__)

_MASK_SPEC = re.compile(r"^\s*(?P<pattern>[A-Za-z]+?)\s*(?P<acceleration>\d+)\s*$")
# ACS width recorded for masks read from a file or from k-space: the files do not say it.
_UNKNOWN_ACS_WIDTH = 0


class MissingMaskError(DataFileError):
    """A file whose undersampling cannot be decided: fully sampled with no mask spec, or
    undersampled with a name that says neither pattern nor acceleration."""


def parse_mask_spec(spec: str) -> MaskSetting:
    """``ktGaussian16`` -> ``MaskSetting("ktGaussian", 16)``.

    Pattern names are the official ones (``Uniform``, ``ktGaussian``, ``ktRadial``) or the
    text names (``uniform``, ``random``, ``radial``), any case.

    Raises:
        ValueError: not ``<pattern><R>`` with a known pattern and R >= 1.
    """
    match = _MASK_SPEC.match(spec)
    if match is None:
        raise ValueError(
            f"mask spec {spec!r} is not <pattern><acceleration>, e.g. Uniform8, ktGaussian16, "
            "ktRadial24"
        )
    pattern = MaskPattern.parse(match["pattern"])
    acceleration = int(match["acceleration"])
    if acceleration < 1:
        raise ValueError(f"mask spec {spec!r}: the acceleration must be >= 1")
    return MaskSetting(pattern.value, acceleration)


def pattern_from_name(name: str | None) -> MaskPattern | None:
    """The library pattern of a file-name token: ``ktRadial`` -> KT_RADIAL; the 2024
    ``ktUniform`` -> UNIFORM; anything else -> None."""
    if not name:
        return None
    for candidate in (name, name.removeprefix("kt"), f"kt{name}"):
        try:
            return MaskPattern.parse(candidate)
        except ValueError:
            continue
    return None


class FileMasks(abc.ABC):
    """The masks of one file, one (frame, slice) image at a time.

    Attributes:
        pattern: the pattern family the undersampling text names.
        acceleration: the nominal R the undersampling text names.
        source: where the masks come from, for reports (official file, k-space, generated).
    """

    def __init__(self, pattern: MaskPattern, acceleration: int, source: str) -> None:
        self.pattern = pattern
        self.acceleration = int(acceleration)
        self.source = source

    @property
    def name(self) -> str:
        """The official short name, e.g. ``ktGaussian16``."""
        return f"{self.pattern.value}{self.acceleration}"

    @property
    @abc.abstractmethod
    def survives_oversampling_removal(self) -> bool:
        """Whether these masks still describe the data after the readout is halved."""

    @abc.abstractmethod
    def mask(self, frame: int, slice_index: int, kspace: np.ndarray) -> UndersamplingMask:
        """The mask of one image, values bool (1, ky, kx); its ``text`` is the image's
        undersampling text.

        Args:
            frame: frame index in the file.
            slice_index: slice index in the file.
            kspace: complex (coils, ky, kx), the image's k-space as read from the file.
        """

    def _named(self, values: np.ndarray) -> UndersamplingMask:
        """bool (ky, kx) values under this file's pattern and R (ACS width not known)."""
        return UndersamplingMask(
            self.pattern, self.acceleration, _UNKNOWN_ACS_WIDTH, values[None].astype(bool)
        )


class OfficialMasks(FileMasks):
    """The masks of an official mask file: one per frame, or one for every frame."""

    def __init__(self, mask_file: MaskFile, pattern: MaskPattern, acceleration: int) -> None:
        super().__init__(pattern, acceleration, f"official mask file {mask_file.path}")
        self.mask_file = mask_file

    @property
    def survives_oversampling_removal(self) -> bool:
        return self.pattern is not MaskPattern.KT_RADIAL

    def mask(self, frame: int, slice_index: int, kspace: np.ndarray) -> UndersamplingMask:
        values = self.mask_file.frame(frame)
        if values.shape != kspace.shape[-2:]:
            # The readout was halved: a line mask keeps its lines on the shorter readout.
            lines = values.any(axis=-1)
            values = np.broadcast_to(lines[:, None], kspace.shape[-2:])
        return self._named(values)


class SampledMasks(FileMasks):
    """The locations an undersampled file holds data at (nonzero in any coil).

    Cartesian patterns sample whole phase-encode lines: a line counts as sampled when any of
    its samples is nonzero, so a sample that happens to be exactly zero inside an acquired
    line stays in the mask. Radial patterns are taken sample by sample.
    """

    def __init__(self, pattern: MaskPattern, acceleration: int, path: Path) -> None:
        kind = "samples" if pattern is MaskPattern.KT_RADIAL else "lines"
        super().__init__(pattern, acceleration, f"sampled {kind} of the k-space")
        self.path = path

    @property
    def survives_oversampling_removal(self) -> bool:
        # Empty phase-encode lines stay empty through a readout crop; radial zeros do not.
        return self.pattern is not MaskPattern.KT_RADIAL

    def mask(self, frame: int, slice_index: int, kspace: np.ndarray) -> UndersamplingMask:
        sampled = np.any(kspace != 0, axis=0)
        if not sampled.any():
            raise DataFileError(
                self.path, f"frame {frame}, slice {slice_index} holds no sampled k-space"
            )
        if self.pattern is not MaskPattern.KT_RADIAL:
            sampled = np.broadcast_to(sampled.any(axis=1)[:, None], sampled.shape)
        return self._named(sampled)


class GeneratedMasks(FileMasks):
    """CMRxRecon 2025 masks generated per image, seeded as the evaluation data set seeds them."""

    def __init__(self, setting: MaskSetting, acs_width: int, seed: int, path: Path) -> None:
        self.seed = seed
        self.acs_width = acs_width
        self.path = path
        super().__init__(
            MaskPattern.parse(setting.pattern),
            setting.acceleration,
            f"generated (ACS {acs_width}, seed {seed})",
        )

    @property
    def survives_oversampling_removal(self) -> bool:
        return True  # generated on whatever grid the k-space has

    def mask(self, frame: int, slice_index: int, kspace: np.ndarray) -> UndersamplingMask:
        return make_mask(
            self.pattern,
            self.acceleration,
            kspace.shape[-2:],
            acs_width=self.acs_width,
            seed=stable_seed(self.seed, self.path, slice_index),
            first_frame=frame,
        )


def choose_masks(
    series: KSpaceSeries,
    spec: MaskSetting | None = None,
    acs_width: int = DEFAULT_ACS_WIDTH,
    seed: int = 0,
    use_official_masks: bool = True,
) -> FileMasks:
    """The masks to reconstruct ``series`` with (see the module docstring for the rules).

    Args:
        series: the open file.
        spec: ``--mask``; needed for fully sampled files, fills in what an undersampled
            file's name does not say.
        acs_width: ACS lines / square side of generated masks.
        seed: seeds generated masks (with the file and slice).
        use_official_masks: use official mask files where they exist.

    Raises:
        MissingMaskError: fully sampled and no spec, or undersampled and neither its name
            nor the spec says pattern and R.
    """
    if series.is_undersampled:
        return _undersampled_masks(series, spec, use_official_masks)
    if spec is None:
        raise MissingMaskError(
            series.path,
            "fully sampled k-space: give --mask (e.g. --mask ktGaussian16) to choose the "
            "undersampling to simulate",
        )
    pattern = MaskPattern.parse(spec.pattern)
    if use_official_masks:
        official = _official_masks(series, pattern.value, spec.acceleration)
        if official is not None:
            return OfficialMasks(official, pattern, spec.acceleration)
    return GeneratedMasks(spec, acs_width, seed, series.path)


def _undersampled_masks(
    series: KSpaceSeries, spec: MaskSetting | None, use_official_masks: bool
) -> FileMasks:
    name_token: str | None = getattr(series, "pattern_name", None)
    acceleration: int | None = getattr(series, "acceleration", None)
    pattern = pattern_from_name(name_token)
    if pattern is None and spec is not None:
        pattern = MaskPattern.parse(spec.pattern)
    if acceleration is None and spec is not None:
        acceleration = spec.acceleration
    if pattern is None and acceleration is not None:
        # Only 2023 files (kspace_subNN) name R without a pattern; their masks are equispaced.
        pattern = MaskPattern.UNIFORM
    if pattern is None or acceleration is None:
        raise MissingMaskError(
            series.path,
            "undersampled k-space whose name does not say its pattern and acceleration "
            "(e.g. cine_sax_kus_ktGaussian16.mat): give --mask",
        )
    if use_official_masks:
        # The file name's own spelling (2024 'ktUniform') is what its mask file is called.
        official = _official_masks(series, name_token or pattern.value, acceleration)
        if official is not None:
            return OfficialMasks(official, pattern, acceleration)
    return SampledMasks(pattern, acceleration, series.path)


def _official_masks(series: KSpaceSeries, token: str, acceleration: int) -> MaskFile | None:
    """The official mask file for this setting if it exists and fits the k-space, else None."""
    try:
        mask_file = read_official_mask(series.path, token, acceleration)
        mask_file.check_shape(series.shape)
    except MaskFileNotFoundError:
        return None
    except DataFileError as error:
        logger.warning("not using the official mask of %s: %s", series.path, error)
        return None
    return mask_file
