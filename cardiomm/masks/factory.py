"""Build a full CMRxRecon 2025 mask: pattern lines plus the ACS region."""

from __future__ import annotations

from cardiomm.masks.acs import acs_lines, acs_square
from cardiomm.masks.mask import MaskPattern, UndersamplingMask
from cardiomm.masks.patterns import (
    GAUSSIAN_ALPHA,
    gaussian_lines,
    radial_lines,
    uniform_lines,
)
from cardiomm.masks.scaling import matched_radial_beams, scaled_acs_width

DEFAULT_ACS_WIDTH = 20
# CMRxRecon 2025 goes to 24x; past 64x a cine matrix keeps a handful of lines besides the ACS
# and no reconstruction is meaningful: such a setting is a typo, not an experiment.
MAX_ACCELERATION = 64
# The largest k-space side a mask is made for (a readout with 2x oversampling included).
MAX_MATRIX_SIDE = 4096


def check_acceleration(acceleration: float, what: str = "acceleration") -> int:
    """``acceleration`` as an int, or ValueError naming ``what`` when it is not a whole number
    in [1, MAX_ACCELERATION]."""
    if isinstance(acceleration, bool) or int(acceleration) != acceleration:
        raise ValueError(f"{what} must be a whole number, got {acceleration!r}")
    if not 1 <= acceleration <= MAX_ACCELERATION:
        raise ValueError(
            f"{what} {acceleration} is outside [1, {MAX_ACCELERATION}] (CMRxRecon 2025 uses "
            "4 to 24)"
        )
    return int(acceleration)


def make_mask(
    pattern: MaskPattern | str,
    acceleration: int,
    matrix: tuple[int, int],
    num_frames: int = 1,
    acs_width: int = DEFAULT_ACS_WIDTH,
    seed: int = 0,
    first_frame: int = 0,
    gaussian_alpha: float = GAUSSIAN_ALPHA,
    reference_matrix: tuple[int, int] | None = None,
) -> UndersamplingMask:
    """A mask with the CMRxRecon 2025 definition of ``pattern`` at nominal acceleration R.

    Args:
        pattern: ``Uniform``, ``ktGaussian`` or ``ktRadial`` (or ``uniform`` / ``random`` /
            ``radial``).
        acceleration: nominal R (4, 8, 16, 24 in the challenge; any integer >= 1 works).
        matrix: (ky, kx), the k-space size; odd sizes are fine.
        num_frames: frames; kt patterns differ per frame, Uniform repeats.
        acs_width: ACS lines (Uniform, ktGaussian) or ACS square side (ktRadial); 0 for none.
        seed: makes ktGaussian draws reproducible (Uniform and ktRadial are deterministic).
        first_frame: index of the first frame within its series (golden-angle rotation and
            per-frame Gaussian draws continue from there).
        gaussian_alpha: the ktGaussian density parameter a.
        reference_matrix: (ky, kx) of the full-size data the setting should be as hard as;
            the ACS width is then scaled to this matrix and ktRadial's beams keep the
            reference's coverage (:mod:`cardiomm.masks.scaling`). None: as defined.

    Returns:
        the mask, values bool (num_frames, ky, kx); its ``acs_width`` is the one used.
    """
    pattern = MaskPattern.parse(pattern) if isinstance(pattern, str) else pattern
    num_ky, num_kx = (int(size) for size in matrix)
    _check_settings(acceleration, num_ky, num_kx, num_frames, acs_width)
    beams = None
    if reference_matrix is not None:
        acs_width = scaled_acs_width(acs_width, num_ky, int(reference_matrix[0]))
        if pattern is MaskPattern.KT_RADIAL:
            beams = matched_radial_beams(acceleration, (num_ky, num_kx), reference_matrix)
    if pattern is MaskPattern.UNIFORM:
        values = uniform_lines(num_ky, num_kx, acceleration, num_frames)
        values |= acs_lines(num_ky, num_kx, acs_width)
    elif pattern is MaskPattern.KT_GAUSSIAN:
        values = gaussian_lines(
            num_ky, num_kx, acceleration, num_frames, seed, first_frame, gaussian_alpha
        )
        values |= acs_lines(num_ky, num_kx, acs_width)
    else:
        values = radial_lines(num_ky, num_kx, acceleration, num_frames, first_frame, beams)
        values |= acs_square(num_ky, num_kx, acs_width)
    return UndersamplingMask(pattern, int(acceleration), int(acs_width), values)


def _check_settings(
    acceleration: int, num_ky: int, num_kx: int, num_frames: int, acs_width: int
) -> None:
    check_acceleration(acceleration)
    if not (1 <= num_ky <= MAX_MATRIX_SIDE and 1 <= num_kx <= MAX_MATRIX_SIDE):
        raise ValueError(
            f"matrix (ky, kx) must be within 1 to {MAX_MATRIX_SIDE} per side, "
            f"got ({num_ky}, {num_kx})"
        )
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    if acs_width < 0:
        raise ValueError(f"acs_width must be >= 0, got {acs_width}")
