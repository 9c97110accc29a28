"""The zero-filled reconstruction (the classical methods are sigpy's: tests/classical)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiomm.model.baselines import ZeroFilled
from cardiomm.model.interface import ReconstructionInput, Reconstructor
from tests.conftest import requires_cuda
from tests.model.phantom import (
    MATRIX,
    PhantomProblem,
    make_inputs,
    make_problem,
    pattern_mask,
)

RECONSTRUCTORS = [ZeroFilled]


@pytest.fixture(scope="module")
def problem() -> PhantomProblem:
    return make_problem()


def test_zero_filled_of_full_kspace_is_the_rss_reference(problem):
    inputs = make_inputs(problem, [np.ones(MATRIX, dtype=bool)])

    image = ZeroFilled().reconstruct(inputs)[0]

    assert torch.allclose(image, problem.reference.to(torch.float32), atol=1e-5)


@pytest.mark.parametrize("reconstructor_class", RECONSTRUCTORS)
def test_reconstruction_is_finite_float32_batch_by_ky_by_kx(problem, reconstructor_class):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 8), pattern_mask("ktRadial", 8)])

    image = reconstructor_class().reconstruct(inputs)

    assert image.dtype == torch.float32 and image.shape == (2, *MATRIX)
    assert bool(torch.isfinite(image).all())


@pytest.mark.parametrize("reconstructor_class", RECONSTRUCTORS)
def test_batch_elements_are_reconstructed_independently(problem, reconstructor_class):
    inputs = make_inputs(problem, [pattern_mask("ktGaussian", 8), pattern_mask("ktRadial", 16)])
    reconstructor = reconstructor_class()

    together = reconstructor.reconstruct(inputs)
    apart = [reconstructor.reconstruct(_select(inputs, index)) for index in range(2)]

    assert torch.allclose(together, torch.cat(apart), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("reconstructor_class", RECONSTRUCTORS)
def test_reconstruction_of_zero_kspace_is_zero(reconstructor_class):
    mask = torch.from_numpy(pattern_mask("Uniform", 4)[None].astype(np.float32))
    inputs = ReconstructionInput(
        torch.zeros(1, 4, *MATRIX, dtype=torch.complex64), mask, [""], [""]
    )

    image = reconstructor_class().reconstruct(inputs)

    assert bool((image == 0).all())


@pytest.mark.parametrize("reconstructor_class", RECONSTRUCTORS)
def test_reconstruction_tracks_no_gradients(problem, reconstructor_class):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4)])
    inputs = inputs._replace(masked_kspace=inputs.masked_kspace.requires_grad_(True))

    image = reconstructor_class().reconstruct(inputs)

    assert not image.requires_grad


@pytest.mark.parametrize(("reconstructor_class", "name"), [(ZeroFilled, "zero-filled")])
def test_reconstructors_follow_the_protocol(reconstructor_class, name):
    reconstructor = reconstructor_class()

    assert isinstance(reconstructor, Reconstructor)
    assert reconstructor.name == name


@pytest.mark.parametrize("reconstructor_class", RECONSTRUCTORS)
def test_reconstruction_rejects_real_kspace(problem, reconstructor_class):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4)])
    inputs = inputs._replace(masked_kspace=inputs.masked_kspace.real)

    with pytest.raises(ValueError, match="complex tensor"):
        reconstructor_class().reconstruct(inputs)


@requires_cuda
@pytest.mark.parametrize("reconstructor_class", RECONSTRUCTORS)
def test_reconstruction_on_cuda_matches_the_cpu(problem, reconstructor_class):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4), pattern_mask("ktRadial", 8)])
    on_gpu = inputs._replace(masked_kspace=inputs.masked_kspace.cuda(), mask=inputs.mask.cuda())
    reconstructor = reconstructor_class()

    image_cpu = reconstructor.reconstruct(inputs)
    image_gpu = reconstructor.reconstruct(on_gpu)

    assert image_gpu.device.type == "cuda" and image_gpu.dtype == torch.float32
    assert torch.allclose(image_gpu.cpu(), image_cpu, rtol=1e-3, atol=1e-5)


def _select(inputs: ReconstructionInput, index: int) -> ReconstructionInput:
    """The one-element batch ``index`` of ``inputs``."""
    return ReconstructionInput(
        inputs.masked_kspace[index : index + 1],
        inputs.mask[index : index + 1],
        inputs.metadata_text[index : index + 1],
        inputs.undersampling_text[index : index + 1],
    )
