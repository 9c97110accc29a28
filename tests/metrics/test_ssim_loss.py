import pytest
import torch

from cardiomm.metrics import SSIMLoss, ssim, ssim_torch


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
    reference = torch.rand(3, 1, 20, 20, generator=generator)
    assert SSIMLoss()(reference, reference).item() == pytest.approx(0.0, abs=1e-6)


def test_ssim_loss_gradient_moves_the_reconstruction_towards_the_reference(generator):
    reference = torch.rand(1, 24, 24, generator=generator)
    reconstruction = (reference + 0.3 * torch.rand(1, 24, 24, generator=generator)).requires_grad_()
    loss_fn = SSIMLoss()
    before = loss_fn(reconstruction, reference)
    before.backward()
    with torch.no_grad():
        stepped = reconstruction - 0.5 * reconstruction.grad
    assert loss_fn(stepped, reference) < before


def test_ssim_loss_accepts_an_explicit_data_range(generator):
    reference = torch.rand(2, 16, 16, generator=generator)
    reconstruction = reference.flip(-1)
    loss = SSIMLoss()(reconstruction, reference, data_range=torch.tensor([1.0, 2.0]))
    assert torch.isfinite(loss)
