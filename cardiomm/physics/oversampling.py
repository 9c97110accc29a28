"""Removal of the readout (kx) oversampling that CMRxRecon files carry (about 2x)."""

import torch


def remove_readout_oversampling(kspace: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """Crop the image field of view along the readout to 1 / ``factor`` and return k-space.

    The readout axis is transformed to image space, its central ``kx // factor`` samples
    kept, and transformed back; the phase-encode axis is untouched, so Cartesian
    undersampling along ky stays valid.

    Args:
        kspace: complex (..., ky, kx), centred.
        factor: oversampling factor of the readout.

    Returns:
        complex (..., ky, kx // factor), centred, same orthonormal scaling.
    """
    if not kspace.is_complex():
        raise TypeError(f"remove_readout_oversampling expects complex k-space, got {kspace.dtype}")
    num_kx = kspace.shape[-1]
    kept = num_kx // factor
    if kept < 1:
        raise ValueError(f"cannot remove {factor}x oversampling from a readout of {num_kx}")
    image = torch.fft.fftshift(
        torch.fft.ifft(torch.fft.ifftshift(kspace, dim=-1), dim=-1, norm="ortho"), dim=-1
    )
    start = num_kx // 2 - kept // 2
    cropped = image[..., start : start + kept]
    return torch.fft.fftshift(
        torch.fft.fft(torch.fft.ifftshift(cropped, dim=-1), dim=-1, norm="ortho"), dim=-1
    )
