import pytest
import torch

from cardiomm.physics import expand_to_kspace, reduce_to_image, rss
from tests.conftest import random_complex, requires_cuda


def _inner(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a.conj() * b).sum()


@pytest.mark.parametrize("matrix", [(16, 12), (15, 13), (9, 20)])
@pytest.mark.parametrize("num_coils", [1, 4])
def test_expand_and_reduce_are_adjoint(matrix, num_coils, generator):
    image = random_complex((2, *matrix), generator)
    kspace = random_complex((2, num_coils, *matrix), generator)
    sensitivities = random_complex((2, num_coils, *matrix), generator)
    forward = _inner(expand_to_kspace(image, sensitivities), kspace)
    adjoint = _inner(image, reduce_to_image(kspace, sensitivities))
    torch.testing.assert_close(forward, adjoint, rtol=1e-12, atol=1e-12)


def test_expand_and_reduce_are_adjoint_in_single_precision(generator):
    image = random_complex((15, 13), generator, torch.complex64)
    kspace = random_complex((8, 15, 13), generator, torch.complex64)
    sensitivities = random_complex((8, 15, 13), generator, torch.complex64)
    forward = _inner(expand_to_kspace(image, sensitivities), kspace)
    adjoint = _inner(image, reduce_to_image(kspace, sensitivities))
    torch.testing.assert_close(forward, adjoint, rtol=1e-5, atol=1e-4)


def test_reduce_recovers_the_image_when_sensitivities_have_unit_rss(generator):
    sensitivities = random_complex((6, 11, 10), generator)
    sensitivities = sensitivities / rss(sensitivities)
    image = random_complex((11, 10), generator)
    recovered = reduce_to_image(expand_to_kspace(image, sensitivities), sensitivities)
    torch.testing.assert_close(recovered, image)


def test_rss_of_one_coil_is_its_magnitude(generator):
    image = random_complex((1, 9, 8), generator)
    torch.testing.assert_close(rss(image), image[0].abs())


def test_rss_combines_coils_as_root_sum_of_squares():
    coils = torch.tensor([3.0 + 0j, 4.0j], dtype=torch.complex64).reshape(2, 1, 1)
    assert rss(coils).item() == pytest.approx(5.0)
    assert not rss(coils).is_complex()


@requires_cuda
def test_expand_and_reduce_are_adjoint_on_cuda(generator):
    image = random_complex((15, 13), generator).cuda()
    kspace = random_complex((4, 15, 13), generator).cuda()
    sensitivities = random_complex((4, 15, 13), generator).cuda()
    forward = _inner(expand_to_kspace(image, sensitivities), kspace)
    adjoint = _inner(image, reduce_to_image(kspace, sensitivities))
    torch.testing.assert_close(forward, adjoint, rtol=1e-10, atol=1e-10)
