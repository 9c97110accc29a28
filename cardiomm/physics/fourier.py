"""Centred, orthonormal 2D Fourier transforms over the last two axes."""

import torch

_IMAGE_DIMS = (-2, -1)


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT: image space to centred k-space.

    Args:
        image: complex tensor (..., ky, kx); any even or odd size along the last two axes.

    Returns:
        complex tensor (..., ky, kx), the zero frequency at index (ky // 2, kx // 2).
    """
    _require_complex(image, "fft2c")
    shifted = torch.fft.ifftshift(image, dim=_IMAGE_DIMS)
    return torch.fft.fftshift(
        torch.fft.fft2(shifted, dim=_IMAGE_DIMS, norm="ortho"), dim=_IMAGE_DIMS
    )


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal inverse 2D FFT: centred k-space to image space.

    Args:
        kspace: complex tensor (..., ky, kx) with the zero frequency at (ky // 2, kx // 2).

    Returns:
        complex tensor (..., ky, kx).
    """
    _require_complex(kspace, "ifft2c")
    shifted = torch.fft.ifftshift(kspace, dim=_IMAGE_DIMS)
    return torch.fft.fftshift(
        torch.fft.ifft2(shifted, dim=_IMAGE_DIMS, norm="ortho"), dim=_IMAGE_DIMS
    )


def _require_complex(tensor: torch.Tensor, name: str) -> None:
    # A real tensor would be silently promoted by torch.fft and hide a (real, imag) channel bug.
    if not tensor.is_complex():
        raise TypeError(
            f"{name} expects a complex tensor (..., ky, kx), got dtype {tensor.dtype} and shape "
            f"{tuple(tensor.shape)}; use channels_to_complex for (real, imag) channel tensors"
        )
