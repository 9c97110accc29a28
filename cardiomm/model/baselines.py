"""Classical reconstructions to compare learned models against: zero-filled and SENSE.

Both follow the :class:`~cardiomm.model.interface.Reconstructor` protocol, hold no learned
parameters, run without gradients and compute on the device of their input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from cardiomm.model.interface import ReconstructionInput
from cardiomm.model.sensitivities import DEFAULT_OBJECT_THRESHOLD, estimate_sensitivities
from cardiomm.physics import expand_to_kspace, ifft2c, reduce_to_image, rss

DEFAULT_REGULARIZATION = 1e-2
DEFAULT_MAX_ITERATIONS = 30
DEFAULT_TOLERANCE = 1e-4

NormalOperator = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(frozen=True)
class ConjugateGradientResult:
    """What :func:`conjugate_gradient` found.

    Attributes:
        solution: complex, the shape of the right-hand side: (batch, ky, kx) for SENSE.
        residual_norms: real (iterations + 1, batch), ||b - N x_k|| / ||b|| as tracked by the
            CG recursion, from the start (row 0, which is 1) to the last iteration run; a
            sample's value stays fixed once it has converged.
        converged: bool (batch,), whether each sample reached the tolerance.
    """

    solution: torch.Tensor
    residual_norms: torch.Tensor
    converged: torch.Tensor

    @property
    def iterations(self) -> int:
        """Iterations run (the slowest sample's)."""
        return self.residual_norms.shape[0] - 1


@dataclasses.dataclass(frozen=True)
class SenseSolution:
    """A SENSE reconstruction with what it was made from.

    Attributes:
        image: complex (batch, ky, kx), the regularised least-squares image.
        sensitivities: complex (batch, coils, ky, kx), the maps used.
        solver: the conjugate gradient run.
    """

    image: torch.Tensor
    sensitivities: torch.Tensor
    solver: ConjugateGradientResult


def conjugate_gradient(
    normal_operator: NormalOperator,
    rhs: torch.Tensor,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ConjugateGradientResult:
    """Solve N x = b for a Hermitian positive (semi)definite N, batched, starting from x = 0.

    Every sample has its own step sizes alpha and beta, and stops (keeps its x) as soon as its
    relative residual ||r|| / ||b|| is at or below ``tolerance``, so a sample's result does
    not depend on what else is in the batch (up to rounding in batched kernels). The loop ends
    when all samples have stopped or after ``max_iterations``; checking that costs one device
    synchronisation per iteration.

    Args:
        normal_operator: maps complex (batch, ...) to the same shape, linear, Hermitian
            positive semidefinite per sample; for SENSE (batch, ky, kx).
        rhs: complex (batch, ...), b.
        max_iterations: most iterations.
        tolerance: relative residual at which a sample stops.

    Returns:
        the solution and the residual history.
    """
    if max_iterations < 0 or tolerance < 0:
        raise ValueError(
            f"max_iterations and tolerance must be >= 0, got {max_iterations} and {tolerance}"
        )
    solution = torch.zeros_like(rhs)
    residual = rhs.clone()
    direction = rhs.clone()
    rhs_norm = _norm(rhs)
    residual_squared = rhs_norm.square()
    # A zero right-hand side has the solution 0 and is done before it starts.
    safe_rhs_norm = torch.where(rhs_norm > 0, rhs_norm, torch.ones_like(rhs_norm))
    history = [residual_squared.sqrt() / safe_rhs_norm]
    active = history[0] > tolerance
    for _ in range(max_iterations):
        if not bool(active.any()):
            break
        product = normal_operator(direction)
        curvature = _inner(direction, product).real
        alpha = residual_squared / curvature.clamp_min(torch.finfo(curvature.dtype).tiny)
        alpha = torch.where(active, alpha, torch.zeros_like(alpha))
        solution = solution + _per_sample(alpha, rhs) * direction
        residual = residual - _per_sample(alpha, rhs) * product
        new_residual_squared = _norm(residual).square()
        beta = new_residual_squared / residual_squared.clamp_min(torch.finfo(curvature.dtype).tiny)
        direction = torch.where(
            _per_sample(active, rhs), residual + _per_sample(beta, rhs) * direction, direction
        )
        residual_squared = torch.where(active, new_residual_squared, residual_squared)
        history.append(residual_squared.sqrt() / safe_rhs_norm)
        active = active & (history[-1] > tolerance)
    residual_norms = torch.stack(history)
    return ConjugateGradientResult(solution, residual_norms, residual_norms[-1] <= tolerance)


def sense_normal_operator(
    sensitivities: torch.Tensor, mask: torch.Tensor, regularization: float
) -> NormalOperator:
    """x -> (A^H A + lambda I) x with A = mask * F S, the regularised SENSE normal operator.

    Args:
        sensitivities: complex (batch, coils, ky, kx).
        mask: real (batch, ky, kx), 0/1.
        regularization: lambda >= 0.

    Returns:
        a function from complex (batch, ky, kx) to complex (batch, ky, kx).
    """
    coil_mask = mask.unsqueeze(1)

    def apply(image: torch.Tensor) -> torch.Tensor:
        kspace = coil_mask * expand_to_kspace(image, sensitivities)
        return reduce_to_image(kspace, sensitivities) + regularization * image

    return apply


def zero_filled_image(masked_kspace: torch.Tensor) -> torch.Tensor:
    """RSS of the zero-filled coil images.

    Args:
        masked_kspace: complex (batch, coils, ky, kx).

    Returns:
        real (batch, ky, kx).
    """
    return rss(ifft2c(masked_kspace))


def sense_solve(
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    sensitivities: torch.Tensor,
    regularization: float = DEFAULT_REGULARIZATION,
    max_iterations: int = DEFAULT_MAX_ITERATIONS,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ConjugateGradientResult:
    """Tikhonov-regularised SENSE: min_x ||M F S x - y||^2 + lambda ||x||^2 by CG on
    (A^H A + lambda I) x = A^H y.

    Args:
        masked_kspace: complex (batch, coils, ky, kx), y.
        mask: real (batch, ky, kx), M.
        sensitivities: complex (batch, coils, ky, kx), S.
        regularization: lambda, relative to A^H A (whose eigenvalues lie in [0, 1] when the
            maps have RSS at most 1).
        max_iterations, tolerance: see :func:`conjugate_gradient`.

    Returns:
        the CG result; its solution is the complex image (batch, ky, kx).
    """
    mask = mask.to(masked_kspace.real.dtype)
    rhs = reduce_to_image(mask.unsqueeze(1) * masked_kspace, sensitivities)
    operator = sense_normal_operator(sensitivities, mask, regularization)
    return conjugate_gradient(operator, rhs, max_iterations, tolerance)


class ZeroFilled:
    """Zero-filled reconstruction: RSS of the inverse FFT of the undersampled k-space."""

    name = "zero-filled"

    @torch.no_grad()
    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """float32 (batch, ky, kx) magnitude on the device of ``inputs.masked_kspace``."""
        _check_kspace(inputs.masked_kspace)
        return zero_filled_image(inputs.masked_kspace).to(torch.float32)


class SENSE:
    """Regularised SENSE with ACS sensitivities ("conventional" in the CardioMM paper).

    Scaling: the maps have RSS 1 over coils wherever the object is, so where they are right
    the magnitude of the SENSE image equals the RSS of the coil images, the reference the
    metrics use, with no rescaling. In the noise-only background |x| is the magnitude of one
    combination of the coils' noise, below the RSS noise floor (which adds up the noise power
    of all coils); with an ``object_threshold`` the maps, and so the image, are 0 there.

    The regularisation lambda is dimensionless: with RSS-normalised maps and a 0/1 mask,
    ||A|| <= 1, so A^H A has eigenvalues in [0, 1] whatever the scale of the data, and lambda
    is a fraction of the largest one. Scaling the k-space scales the solution and leaves the
    best lambda where it was, so a lambda tied to the size of A^H y would add nothing; what
    moves the best lambda is the signal-to-noise ratio. On the test phantom (Uniform 4/8,
    ktGaussian 8/16, ktRadial 8/16/24) the best of 3e-3, 1e-2 and 3e-2 was mostly 3e-3 at
    high SNR and 3e-2 at five times the noise; the default 1e-2 was within 1.4 dB of the best at
    every mask at both noise levels. CG stops early too (``max_iterations``), which adds a
    little regularisation of its own; at lambda 1e-2 it reached the tolerance in about 20
    iterations there.

    Args:
        regularization: Tikhonov weight lambda >= 0.
        max_iterations: CG iterations at most.
        tolerance: relative residual of the normal equations at which CG stops.
        object_threshold: background cut-off of the sensitivity estimate
            (see :func:`~cardiomm.model.sensitivities.estimate_sensitivities`).
    """

    name = "sense"

    def __init__(
        self,
        regularization: float = DEFAULT_REGULARIZATION,
        max_iterations: int = DEFAULT_MAX_ITERATIONS,
        tolerance: float = DEFAULT_TOLERANCE,
        object_threshold: float = DEFAULT_OBJECT_THRESHOLD,
    ) -> None:
        if regularization < 0:
            raise ValueError(f"regularization must be >= 0, got {regularization}")
        if max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1, got {max_iterations}")
        self.regularization = float(regularization)
        self.max_iterations = int(max_iterations)
        self.tolerance = float(tolerance)
        self.object_threshold = float(object_threshold)

    @torch.no_grad()
    def solve(self, inputs: ReconstructionInput) -> SenseSolution:
        """The complex SENSE image, its sensitivities and the CG history."""
        _check_kspace(inputs.masked_kspace)
        sensitivities = estimate_sensitivities(
            inputs.masked_kspace, inputs.mask, object_threshold=self.object_threshold
        )
        result = sense_solve(
            inputs.masked_kspace,
            inputs.mask,
            sensitivities,
            self.regularization,
            self.max_iterations,
            self.tolerance,
        )
        return SenseSolution(result.solution, sensitivities, result)

    @torch.no_grad()
    def reconstruct(self, inputs: ReconstructionInput) -> torch.Tensor:
        """float32 (batch, ky, kx) magnitude on the device of ``inputs.masked_kspace``."""
        return self.solve(inputs).image.abs().to(torch.float32)


def _norm(images: torch.Tensor) -> torch.Tensor:
    """Per-sample 2-norm: (batch, ...) -> real (batch,)."""
    return torch.linalg.vector_norm(images.flatten(1), dim=1)


def _inner(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    """Per-sample <first, second> = sum conj(first) * second: (batch, ...) -> (batch,)."""
    return (first.conj() * second).flatten(1).sum(dim=1)


def _per_sample(scalars: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(batch,) -> (batch, 1, ..., 1), to broadcast against ``like`` (batch, ...)."""
    return scalars.reshape(-1, *([1] * (like.ndim - 1)))


def _check_kspace(masked_kspace: torch.Tensor) -> None:
    if masked_kspace.ndim != 4 or not masked_kspace.is_complex():
        raise ValueError(
            "masked_kspace must be a complex tensor (batch, coils, ky, kx), got dtype "
            f"{masked_kspace.dtype} and shape {tuple(masked_kspace.shape)}"
        )
