"""Multi-coil operators: sensitivity expand / reduce and root-sum-of-squares.

With S the coil sensitivities and F the centred FFT, ``expand_to_kspace`` is the forward
operator A x = F(S x) and ``reduce_to_image`` its adjoint A^H y = sum_c conj(S_c) F^-1(y_c).
"""

import torch

from cardiomm.physics.fourier import fft2c, ifft2c

_COIL_DIM = -3


def expand_to_kspace(image: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Forward operator: coil-combined image to per-coil centred k-space.

    Args:
        image: complex (..., ky, kx).
        sensitivities: complex (..., coils, ky, kx), broadcastable against ``image``.

    Returns:
        complex (..., coils, ky, kx).
    """
    return fft2c(image.unsqueeze(_COIL_DIM) * sensitivities)


def reduce_to_image(kspace: torch.Tensor, sensitivities: torch.Tensor) -> torch.Tensor:
    """Adjoint of :func:`expand_to_kspace`: per-coil k-space to a coil-combined image.

    Args:
        kspace: complex (..., coils, ky, kx).
        sensitivities: complex (..., coils, ky, kx).

    Returns:
        complex (..., ky, kx).
    """
    return (sensitivities.conj() * ifft2c(kspace)).sum(dim=_COIL_DIM)


def rss(coil_data: torch.Tensor, dim: int = _COIL_DIM) -> torch.Tensor:
    """Root-sum-of-squares over the coil axis.

    Args:
        coil_data: complex or real (..., coils, ky, kx).
        dim: the coil axis.

    Returns:
        real (..., ky, kx), non-negative.
    """
    magnitude_squared = coil_data.abs().square() if coil_data.is_complex() else coil_data.square()
    return magnitude_squared.sum(dim=dim).sqrt()
