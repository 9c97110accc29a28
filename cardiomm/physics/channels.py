"""Complex <-> two-real-channel conversion for networks, which see (real, imag) as channels."""

import torch


def complex_to_channels(data: torch.Tensor, channel_dim: int = -3) -> torch.Tensor:
    """Split a complex tensor into (real, imag) channels.

    Args:
        data: complex (..., ky, kx).
        channel_dim: where the new axis of size 2 goes, counted in the output
            (default -3: (..., 2, ky, kx)).

    Returns:
        real (..., 2, ky, kx), contiguous. Contiguity matters: Opacus computes wrong
        per-sample gradients for convolutions fed strided views.
    """
    if not data.is_complex():
        raise TypeError(f"complex_to_channels expects a complex tensor, got {data.dtype}")
    return torch.stack((data.real, data.imag), dim=channel_dim).contiguous()


def channels_to_complex(data: torch.Tensor, channel_dim: int = -3) -> torch.Tensor:
    """Join (real, imag) channels into a complex tensor; inverse of :func:`complex_to_channels`.

    Args:
        data: real (..., 2, ky, kx) with the two channels at ``channel_dim``.

    Returns:
        complex (..., ky, kx), contiguous.
    """
    if data.is_complex() or data.shape[channel_dim] != 2:
        raise ValueError(
            f"channels_to_complex expects a real tensor with 2 channels at dim {channel_dim}, "
            f"got dtype {data.dtype} and shape {tuple(data.shape)}"
        )
    real, imag = data.unbind(dim=channel_dim)
    return torch.complex(real.contiguous(), imag.contiguous())
