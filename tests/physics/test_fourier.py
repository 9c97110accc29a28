import numpy as np
import pytest
import torch

from cardiomm.physics import fft2c, ifft2c
from tests.conftest import random_complex, requires_cuda

SHAPES = [(8, 8), (7, 9), (3, 16, 15), (2, 4, 11, 6)]


@pytest.mark.parametrize("shape", SHAPES)
def test_ifft2c_inverts_fft2c(shape, generator):
    image = random_complex(shape, generator)
    torch.testing.assert_close(ifft2c(fft2c(image)), image, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_fft2c_preserves_energy(shape, generator):
    image = random_complex(shape, generator)
    energy_image = image.abs().square().sum()
    energy_kspace = fft2c(image).abs().square().sum()
    torch.testing.assert_close(energy_kspace, energy_image, rtol=1e-12, atol=0)


@pytest.mark.parametrize("shape", [(6, 8), (7, 9)])
def test_fft2c_puts_zero_frequency_at_the_centre(shape):
    constant = torch.ones(shape, dtype=torch.complex128)
    kspace = fft2c(constant)
    peak = np.unravel_index(int(kspace.abs().argmax()), shape)
    assert peak == (shape[0] // 2, shape[1] // 2)
    assert kspace.abs().max().item() == pytest.approx(np.sqrt(shape[0] * shape[1]))


@pytest.mark.parametrize("shape", [(6, 8), (7, 9)])
def test_fft2c_matches_the_cmrxrecon_numpy_definition(shape, generator):
    image = random_complex(shape, generator)
    expected = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(image.numpy()), norm="ortho"))
    np.testing.assert_allclose(fft2c(image).numpy(), expected, rtol=1e-12, atol=1e-12)


def test_fft2c_transforms_each_batch_element_independently(generator):
    batch = random_complex((3, 2, 10, 9), generator)
    stacked = torch.stack([torch.stack([fft2c(image) for image in coils]) for coils in batch])
    torch.testing.assert_close(fft2c(batch), stacked)


def test_fft2c_rejects_real_tensors_with_a_hint():
    with pytest.raises(TypeError, match="channels_to_complex"):
        fft2c(torch.ones(2, 8, 8))


@requires_cuda
def test_fft2c_round_trip_on_cuda(generator):
    image = random_complex((2, 4, 33, 20), generator, torch.complex64).cuda()
    torch.testing.assert_close(ifft2c(fft2c(image)), image, rtol=1e-5, atol=1e-5)
