"""The zero-filled reconstruction: the input a learned model starts from, seen plainly.

It follows the :class:`~cardiomm.model.interface.Reconstructor` protocol, holds no learned
parameters, runs without gradients and computes on the device of its input. The field's
classical methods (CG-SENSE, L1-wavelet and k-t sparse CS with ESPIRiT maps) are sigpy's, in
:mod:`cardiomm.classical`; the hand-written torch SENSE that lived here, with maps from a
few Hamming-windowed ACS lines, scored below zero-filled on the old exam and was retired.
"""

from __future__ import annotations

import torch

from cardiomm.model.interface import ReconstructionInput
from cardiomm.physics import ifft2c, rss


def zero_filled_image(masked_kspace: torch.Tensor) -> torch.Tensor:
    """RSS of the zero-filled coil images.

    Args:
        masked_kspace: complex (batch, coils, ky, kx).

    Returns:
        real (batch, ky, kx).
    """
    return rss(ifft2c(masked_kspace))


class ZeroFilled:
    """Zero-filled reconstruction: RSS of the inverse FFT of the undersampled k-space."""

    name = "zero-filled"

    @torch.no_grad()
    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """float32 (batch, ky, kx) magnitude on the device of ``inputs.masked_kspace``."""
        _check_kspace(inputs.masked_kspace)
        return zero_filled_image(inputs.masked_kspace).to(torch.float32)


def _check_kspace(masked_kspace: torch.Tensor) -> None:
    if masked_kspace.ndim != 4 or not masked_kspace.is_complex():
        raise ValueError(
            "masked_kspace must be a complex tensor (batch, coils, ky, kx), got dtype "
            f"{masked_kspace.dtype} and shape {tuple(masked_kspace.shape)}"
        )
