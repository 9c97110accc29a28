"""The three CMRxRecon 2025 sampling pattern generators, without their ACS region.

Each returns bool (frames, ky, kx). Frames are numbered from ``first_frame`` so that a single
frame cut from a long series can be regenerated on its own.
"""

from __future__ import annotations

import math

import numpy as np

# ktGaussian: density 0.1 + a / (1 - a) * exp(-p^2 / (ny / 5)^2) over phase-encode offsets p.
GAUSSIAN_ALPHA = 0.2
GAUSSIAN_WIDTH_DIVISOR = 5.0
# ktRadial: the challenge scales R by 0.6 before choosing the number of beams, and rotates
# each frame's beams by the golden angle.
RADIAL_ACCELERATION_SCALE = 0.6
GOLDEN_ANGLE_DEGREES = 137.5


def uniform_lines(num_ky: int, num_kx: int, acceleration: int, num_frames: int) -> np.ndarray:
    """Every R-th phase-encode line from index 0, identical in every frame."""
    lines = np.zeros((num_ky, num_kx), dtype=bool)
    lines[::acceleration, :] = True
    return np.broadcast_to(lines, (num_frames, num_ky, num_kx)).copy()


def gaussian_line_density(num_ky: int, alpha: float = GAUSSIAN_ALPHA) -> np.ndarray:
    """(ky,) unnormalised sampling density, peaked at the k-space centre (index ky // 2)."""
    offsets = np.arange(num_ky) - num_ky // 2
    width = num_ky / GAUSSIAN_WIDTH_DIVISOR
    return 0.1 + alpha / (1.0 - alpha) * np.exp(-(offsets**2) / width**2)


def gaussian_lines(
    num_ky: int,
    num_kx: int,
    acceleration: int,
    num_frames: int,
    seed: int,
    first_frame: int = 0,
    alpha: float = GAUSSIAN_ALPHA,
) -> np.ndarray:
    """round(ny / R) lines per frame drawn from the Gaussian density, a new draw per frame.

    Lines are drawn with replacement, as in the challenge; a line drawn twice in a frame
    moves to the nearest free line of that frame, so every frame keeps round(ny / R)
    distinct lines. Frame t's draw depends only on (seed, first_frame + t).
    """
    lines_per_frame = max(1, min(num_ky, round(num_ky / acceleration)))
    density = gaussian_line_density(num_ky, alpha)
    probabilities = density / density.sum()
    masks = np.zeros((num_frames, num_ky, num_kx), dtype=bool)
    for frame in range(num_frames):
        rng = np.random.default_rng([seed, first_frame + frame])
        drawn = rng.choice(num_ky, size=lines_per_frame, replace=True, p=probabilities)
        masks[frame, _distinct_lines(drawn, num_ky), :] = True
    return masks


def _distinct_lines(drawn: np.ndarray, num_ky: int) -> np.ndarray:
    """Replace repeated line indices by the nearest free line (the lower one on a tie)."""
    taken = np.zeros(num_ky, dtype=bool)
    for line in drawn:
        if taken[line]:
            free = np.flatnonzero(~taken)
            line = free[np.argmin(np.abs(free - line))]
        taken[line] = True
    return np.flatnonzero(taken)


def radial_beam_count(acceleration: int) -> int:
    """Beams per frame: floor(180 / (0.6 R)), at least one."""
    return max(1, math.floor(180.0 / (RADIAL_ACCELERATION_SCALE * acceleration)))


def radial_lines(
    num_ky: int,
    num_kx: int,
    acceleration: int,
    num_frames: int,
    first_frame: int = 0,
    beams: int | None = None,
) -> np.ndarray:
    """Golden-angle pseudo-radial beams through the k-space centre.

    Frame t has floor(180 / 0.6R) beams (or ``beams``, when given) at
    137.5 t + k 180 / beams degrees. Each beam is a one-sample-wide line through the zero
    frequency, drawn on a max(ny, nx) square grid by nearest-neighbour rotation and cropped
    to the matrix, centres aligned.
    """
    beams = radial_beam_count(acceleration) if beams is None else beams
    if beams < 1:
        raise ValueError(f"a radial frame needs at least one beam, got {beams}")
    side = max(num_ky, num_kx)
    ky_offsets = (np.arange(num_ky) - num_ky // 2)[:, None].astype(np.float64)
    kx_offsets = (np.arange(num_kx) - num_kx // 2)[None, :].astype(np.float64)
    # The unrotated beam is the centre row of the square grid: along-beam positions from
    # -side // 2 to side - side // 2 - 1.
    along_low, along_high = -(side // 2), side - side // 2 - 1
    masks = np.zeros((num_frames, num_ky, num_kx), dtype=bool)
    for frame in range(num_frames):
        start = GOLDEN_ANGLE_DEGREES * (first_frame + frame)
        for beam in range(beams):
            angle = math.radians(start + beam * 180.0 / beams)
            cosine, sine = math.cos(angle), math.sin(angle)
            # Inverse-rotate each output sample onto the unrotated grid; nearest neighbour.
            across = np.floor(ky_offsets * cosine - kx_offsets * sine + 0.5)
            along = np.floor(ky_offsets * sine + kx_offsets * cosine + 0.5)
            masks[frame] |= (across == 0) & (along >= along_low) & (along <= along_high)
    return masks
