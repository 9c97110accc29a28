"""Zero-filled and SENSE reconstructions, and the batched conjugate gradient under SENSE."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiomm.metrics import evaluate_image
from cardiomm.model.baselines import (
    SENSE,
    ZeroFilled,
    conjugate_gradient,
    sense_normal_operator,
)
from cardiomm.model.interface import ReconstructionInput, Reconstructor
from cardiomm.physics import reduce_to_image
from tests.conftest import requires_cuda
from tests.model.phantom import (
    MATRIX,
    PhantomProblem,
    make_inputs,
    make_problem,
    pattern_mask,
)

RECONSTRUCTORS = [ZeroFilled, SENSE]


@pytest.fixture(scope="module")
def problem() -> PhantomProblem:
    return make_problem()


def psnr_against_reference(problem: PhantomProblem, image: torch.Tensor) -> float:
    return evaluate_image(problem.reference.numpy(), image.numpy()).psnr


def hermitian_positive_system(batch: int, size: int, seed: int = 0):
    """A batch of random Hermitian positive definite matrices complex128 (batch, size, size)
    and the operator that applies them to images (batch, 2, size // 2)."""
    generator = torch.Generator().manual_seed(seed)
    factors = torch.randn((batch, size, size), generator=generator, dtype=torch.complex128)
    matrices = factors.conj().transpose(1, 2) @ factors + torch.eye(size)

    def operator(images: torch.Tensor) -> torch.Tensor:
        return (matrices @ images.reshape(batch, size, 1)).reshape(images.shape)

    return operator, matrices


def test_conjugate_gradient_solves_a_hermitian_positive_definite_system():
    operator, matrices = hermitian_positive_system(batch=3, size=8)
    rhs = torch.randn((3, 2, 4), generator=torch.Generator().manual_seed(1), dtype=torch.complex128)

    result = conjugate_gradient(operator, rhs, max_iterations=100, tolerance=1e-12)

    expected = torch.linalg.solve(matrices, rhs.reshape(3, 8, 1)).reshape(rhs.shape)
    assert bool(result.converged.all())
    assert torch.allclose(result.solution, expected, atol=1e-9)


def test_conjugate_gradient_samples_stop_on_their_own():
    operator, _ = hermitian_positive_system(batch=3, size=8)
    rhs = torch.randn((3, 2, 4), generator=torch.Generator().manual_seed(1), dtype=torch.complex128)

    together = conjugate_gradient(operator, rhs, max_iterations=100, tolerance=1e-6)

    # A zero right-hand side is done at once, so each padded batch runs one sample alone.
    for index in range(3):
        padded = torch.zeros_like(rhs)
        padded[index] = rhs[index]
        alone = conjugate_gradient(operator, padded, max_iterations=100, tolerance=1e-6)
        assert torch.allclose(together.solution[index], alone.solution[index], atol=1e-12)


def test_conjugate_gradient_returns_zero_for_a_zero_right_hand_side():
    result = conjugate_gradient(
        lambda images: 2 * images, torch.zeros(2, 4, 5, dtype=torch.complex64)
    )

    assert result.iterations == 0
    assert bool(result.converged.all()) and bool((result.solution == 0).all())


def test_sense_conjugate_gradient_residual_decreases_to_below_the_tolerance(problem):
    masks = [pattern_mask("Uniform", 4), pattern_mask("ktGaussian", 8), pattern_mask("ktRadial", 8)]
    inputs = make_inputs(problem, masks)
    sense = SENSE(tolerance=1e-4)

    solution = sense.solve(inputs)

    history = solution.solver.residual_norms
    assert bool(solution.solver.converged.all())
    assert bool((history[1:] <= history[:-1] * 1.01).all())
    assert bool((history[-1] <= 1e-4).all())


def test_sense_conjugate_gradient_residual_is_the_true_residual(problem):
    inputs = make_inputs(problem, [pattern_mask("ktGaussian", 8)])
    sense = SENSE(tolerance=1e-4)

    solution = sense.solve(inputs)

    # Recompute ||A^H y - (A^H A + lambda) x|| / ||A^H y|| in double precision.
    maps = solution.sensitivities.to(torch.complex128)
    mask = inputs.mask.to(torch.float64)
    rhs = reduce_to_image(mask.unsqueeze(1) * inputs.masked_kspace.to(torch.complex128), maps)
    operator = sense_normal_operator(maps, mask, sense.regularization)
    residual = rhs - operator(solution.image.to(torch.complex128))
    assert float(residual.norm() / rhs.norm()) < 2e-4


def test_sense_with_full_sampling_reproduces_the_coil_combined_image(problem):
    inputs = make_inputs(problem, [np.ones(MATRIX, dtype=bool)])

    image = SENSE(regularization=1e-4).reconstruct(inputs)[0]

    support = problem.support
    relative_error = (image - problem.reference)[support].norm() / problem.reference[support].norm()
    assert psnr_against_reference(problem, image) > 40
    assert float(relative_error) < 1e-2


def test_sense_magnitude_is_on_the_scale_of_the_rss_reference(problem):
    # The metrics normalise each image, so they cannot see a scale error: check it directly.
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4)])

    image = SENSE().reconstruct(inputs)[0]

    ratio = image[problem.support].sum() / problem.reference[problem.support].sum()
    assert float(ratio) == pytest.approx(1.0, abs=0.03)


@pytest.mark.parametrize(("pattern", "acceleration"), [("Uniform", 4), ("ktGaussian", 8)])
def test_sense_beats_zero_filled_by_3_db(problem, pattern, acceleration):
    inputs = make_inputs(problem, [pattern_mask(pattern, acceleration)])

    zero_filled = psnr_against_reference(problem, ZeroFilled().reconstruct(inputs)[0])
    sense = psnr_against_reference(problem, SENSE().reconstruct(inputs)[0])

    assert sense >= zero_filled + 3


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


@pytest.mark.parametrize(
    ("reconstructor_class", "name"), [(ZeroFilled, "zero-filled"), (SENSE, "sense")]
)
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


def test_sense_rejects_a_negative_regularization():
    with pytest.raises(ValueError, match="regularization"):
        SENSE(regularization=-1.0)


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
