import pytest
import torch

from cardiomm.physics import fft2c, ifft2c, remove_readout_oversampling
from tests.conftest import random_complex


@pytest.mark.parametrize("num_kx", [64, 65])
def test_removing_oversampling_keeps_the_central_half_of_the_image(num_kx, generator):
    image = torch.zeros(3, 20, num_kx, dtype=torch.complex128)
    kept = num_kx // 2
    start = num_kx // 2 - kept // 2
    image[..., start : start + kept] = random_complex((3, 20, kept), generator)
    reduced = remove_readout_oversampling(fft2c(image))
    assert reduced.shape == (3, 20, kept)
    torch.testing.assert_close(ifft2c(reduced), image[..., start : start + kept])


def test_removing_oversampling_leaves_phase_encode_lines_alone(generator):
    kspace = random_complex((2, 16, 32), generator)
    kspace[:, ::2] = 0  # an undersampled line stays empty
    reduced = remove_readout_oversampling(kspace)
    assert reduced[:, ::2].abs().max() == 0
