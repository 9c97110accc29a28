"""The autocalibration (ACS) region at the centre of k-space."""

import numpy as np


def centred_block(size: int, width: int) -> slice:
    """Indices of ``width`` central samples along an axis of ``size``.

    The block starts at ``size // 2 - width // 2``, which keeps the zero frequency
    (index ``size // 2`` of centred k-space) inside it for any width >= 1.
    """
    width = min(max(width, 0), size)
    start = size // 2 - width // 2
    return slice(start, start + width)


def acs_lines(num_ky: int, num_kx: int, width: int) -> np.ndarray:
    """bool (ky, kx): ``width`` central phase-encode lines, fully sampled along kx."""
    region = np.zeros((num_ky, num_kx), dtype=bool)
    region[centred_block(num_ky, width), :] = True
    return region


def acs_square(num_ky: int, num_kx: int, width: int) -> np.ndarray:
    """bool (ky, kx): a ``width`` x ``width`` square at the centre (radial masks)."""
    region = np.zeros((num_ky, num_kx), dtype=bool)
    region[centred_block(num_ky, width), centred_block(num_kx, width)] = True
    return region
