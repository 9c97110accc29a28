"""MRI physics on torch complex tensors: centred FFTs, coil operators, RSS, channel packing.

Conventions (docs/architecture.md, "Conventions"): k-space is centred, FFTs are orthonormal and
centred, and the axis order is (..., coils, ky, kx) for k-space and (..., ky, kx) for images.
"""

from cardiomm.physics.channels import channels_to_complex, complex_to_channels
from cardiomm.physics.coils import expand_to_kspace, reduce_to_image, rss
from cardiomm.physics.fourier import fft2c, ifft2c
from cardiomm.physics.oversampling import remove_readout_oversampling
from cardiomm.physics.resolution import crop_kspace_centre, pad_kspace_centre

__all__ = [
    "channels_to_complex",
    "complex_to_channels",
    "crop_kspace_centre",
    "expand_to_kspace",
    "fft2c",
    "ifft2c",
    "pad_kspace_centre",
    "reduce_to_image",
    "remove_readout_oversampling",
    "rss",
]
