import pytest
import torch

from cardiomm.metrics import ssim, ssim_torch
from cardiomm.train.loss import reconstruction_loss


def test_torch_ssim_equals_the_evaluation_ssim(generator):
    reference = torch.rand(2, 40, 33, generator=generator, dtype=torch.float64)
    reconstruction = reference + 0.05 * torch.randn(
        2, 40, 33, generator=generator, dtype=torch.float64
    )
    values = ssim_torch(reference, reconstruction, data_range=reference.flatten(1).amax(1))
    for index in range(2):
        expected = ssim(reference[index].numpy(), reconstruction[index].numpy())
        assert values[index].item() == pytest.approx(expected, rel=1e-10)


def test_ssim_loss_is_zero_for_a_perfect_reconstruction(generator):
    reference = torch.rand(3, 20, 20, generator=generator)
    assert reconstruction_loss(reference, reference).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_loss_gradient_moves_the_reconstruction_towards_the_reference(generator):
    reference = torch.rand(1, 24, 24, generator=generator)
    reconstruction = (reference + 0.3 * torch.rand(1, 24, 24, generator=generator)).requires_grad_()
    before = reconstruction_loss(reconstruction, reference)
    before.backward()
    with torch.no_grad():
        stepped = reconstruction - 0.5 * reconstruction.grad
    assert reconstruction_loss(stepped, reference) < before
