"""Changing the image resolution in k-space: keep or zero-pad the centre of centred k-space.

Cropping centred k-space to its central (h, w) block and transforming back gives the same
field of view at a lower resolution; zero-padding does the reverse (sinc interpolation).
The zero frequency stays at index (n // 2) of every axis, as ``fft2c`` expects.
"""

import torch


def crop_kspace_centre(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The central ``size`` block of centred k-space.

    Args:
        kspace: complex (..., ky, kx), centred.
        size: (h, w) with 1 <= h <= ky and 1 <= w <= kx.

    Returns:
        complex (..., h, w), centred (its zero frequency at (h // 2, w // 2)).
    """
    (top, left), (height, width) = _offsets(kspace.shape[-2:], size), size
    return kspace[..., top : top + height, left : left + width]


def pad_kspace_centre(kspace: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Zero-pad centred k-space to ``size``; the inverse of :func:`crop_kspace_centre`.

    Args:
        kspace: complex (..., h, w), centred.
        size: (ky, kx) with ky >= h and kx >= w.

    Returns:
        complex (..., ky, kx), centred, zero outside the central (h, w) block.
    """
    height, width = kspace.shape[-2:]
    top, left = _offsets(size, (height, width))
    padded = kspace.new_zeros((*kspace.shape[:-2], *size))
    padded[..., top : top + height, left : left + width] = kspace
    return padded


def _offsets(full: tuple[int, int] | torch.Size, block: tuple[int, int]) -> tuple[int, int]:
    """Where a centred ``block`` starts inside centred ``full``, so both centres coincide."""
    for outer, inner in zip(full, block, strict=True):
        if not 1 <= inner <= outer:
            raise ValueError(f"a k-space block of {tuple(block)} does not fit in {tuple(full)}")
    return full[0] // 2 - block[0] // 2, full[1] // 2 - block[1] // 2
