"""Masks on small matrices that are as hard as the same setting on full-size CMRxRecon data.

A nominal setting such as ``ktRadial 24`` means a different sampled fraction on different
matrices: the ACS block is a fixed number of lines (20 in 2025) and a radial frame a fixed
number of beams, so on a 50-line synthetic matrix the ACS alone is 40 % of k-space and a
nominal 24x samples over a quarter of it. Scaled to a reference matrix, a mask keeps what
the setting means on the reference instead:

- the ACS width scales with the phase-encode lines: ``round(acs_width * ky / ky_ref)``
  (at least 1), for the lines of Uniform and ktGaussian and the square of ktRadial;
- ktRadial keeps the fraction of k-space its beams cover on the reference matrix, with the
  beam count (at least one) that comes closest on this one;
- Uniform (every R-th line) and ktGaussian (ky / R lines) already take a fixed fraction of
  the lines on any matrix.

The texts still say the nominal setting (``Undersampling: 24x radial.``).
"""

from __future__ import annotations

import functools

import numpy as np

from cardiomm.masks.patterns import radial_beam_count, radial_lines

# Frames averaged when the radial coverage of a beam count is measured: golden-angle
# rotation changes each frame's coverage a little.
_COVERAGE_FRAMES = 8


def scaled_acs_width(acs_width: int, num_ky: int, reference_ky: int) -> int:
    """ACS lines (or square side) on ``num_ky`` lines that keep the reference's share of ky.

    Args:
        acs_width: the ACS width on the reference matrix (0: no ACS).
        num_ky: phase-encode lines of the matrix.
        reference_ky: phase-encode lines of the reference matrix.
    """
    if acs_width <= 0:
        return 0
    if reference_ky < 1:
        raise ValueError(f"the reference matrix needs at least one line, got {reference_ky}")
    return max(1, min(num_ky, round(acs_width * num_ky / reference_ky)))


def matched_radial_beams(
    acceleration: int, matrix: tuple[int, int], reference_matrix: tuple[int, int]
) -> int:
    """Beams per frame on ``matrix`` that cover the share of k-space the nominal radial
    setting covers on ``reference_matrix`` (ACS not counted); between 1 and the nominal
    count."""
    return _matched_radial_beams(int(acceleration), tuple(matrix), tuple(reference_matrix))


@functools.lru_cache(maxsize=256)
def _matched_radial_beams(
    acceleration: int, matrix: tuple[int, int], reference_matrix: tuple[int, int]
) -> int:
    nominal = radial_beam_count(acceleration)
    target = _radial_coverage(reference_matrix, nominal)
    best, best_gap = 1, float("inf")
    for beams in range(1, nominal + 1):
        gap = abs(_radial_coverage(matrix, beams) - target)
        if gap < best_gap:
            best, best_gap = beams, gap
        elif gap > best_gap:
            break  # coverage grows with the beam count: past the closest, only further away
    return best


@functools.lru_cache(maxsize=256)
def _radial_coverage(matrix: tuple[int, int], beams: int) -> float:
    values = radial_lines(*matrix, acceleration=1, num_frames=_COVERAGE_FRAMES, beams=beams)
    return float(np.mean(values))
