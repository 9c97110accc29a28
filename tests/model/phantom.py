"""A multi-coil phantom problem for the classical and learned reconstruction tests."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from cardiomm.masks import make_mask
from cardiomm.model.interface import ReconstructionInput
from cardiomm.physics import fft2c, ifft2c, rss

MATRIX = (64, 80)
NUM_COILS = 8
NOISE_STD = 2e-3


@dataclasses.dataclass(frozen=True)
class PhantomProblem:
    """A fully sampled multi-coil scan of a known object.

    Attributes:
        image: complex128 (ky, kx), the object.
        sensitivities: complex128 (coils, ky, kx), the true coil maps.
        kspace: complex64 (coils, ky, kx), fft2c(S x) plus complex Gaussian noise.
        reference: float64 (ky, kx), RSS of the fully sampled coil images.
        support: bool (ky, kx), where the object is.
    """

    image: torch.Tensor
    sensitivities: torch.Tensor
    kspace: torch.Tensor
    reference: torch.Tensor
    support: torch.Tensor


def _grid(matrix: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, x) float64 (ky, kx), each axis spanning [-1, 1)."""
    y = torch.arange(matrix[0], dtype=torch.float64) * 2 / matrix[0] - 1
    x = torch.arange(matrix[1], dtype=torch.float64) * 2 / matrix[1] - 1
    return torch.meshgrid(y, x, indexing="ij")


def _ellipse(y: torch.Tensor, x: torch.Tensor, centre, radii) -> torch.Tensor:
    """float64 (ky, kx): 1 inside the ellipse, 0 outside, with an edge about a pixel wide."""
    distance = ((y - centre[0]) / radii[0]) ** 2 + ((x - centre[1]) / radii[1]) ** 2
    return torch.sigmoid((1 - distance) * 30)


def cardiac_phantom(matrix: tuple[int, int] = MATRIX, contraction: float = 0.0) -> torch.Tensor:
    """complex128 (ky, kx): a torso with lungs, lung vessels, spine, and a heart with blood pool
    and papillary muscles, under a smooth phase; ``contraction`` in [0, 1) shrinks the heart
    and its blood pool by that fraction (a cine frame's systole)."""
    y, x = _grid(matrix)
    beat = 1.0 - contraction
    torso = _ellipse(y, x, (0.0, 0.0), (0.8, 0.85))
    lungs = _ellipse(y, x, (-0.1, -0.45), (0.45, 0.25)) + _ellipse(y, x, (-0.1, 0.45), (0.45, 0.25))
    vessels = sum(
        _ellipse(y, x, centre, (0.05, 0.05))
        for centre in [(-0.3, -0.35), (-0.2, 0.5), (0.1, -0.5), (-0.45, 0.3)]
    )
    heart = _ellipse(y, x, (0.15, 0.05), (0.35 * beat, 0.3 * beat))
    blood = _ellipse(y, x, (0.15, 0.1), (0.18 * beat**2, 0.14 * beat**2))
    papillary = sum(_ellipse(y, x, centre, (0.04, 0.03)) for centre in [(0.2, 0.15), (0.08, 0.06)])
    spine = _ellipse(y, x, (0.6, 0.0), (0.1, 0.08))
    magnitude = (
        0.4 * torso
        - 0.3 * lungs
        + 0.5 * vessels
        + 0.3 * heart
        + 0.6 * blood
        - 0.5 * papillary
        + 0.4 * spine
    )
    phase = 0.6 * x - 0.4 * y + 0.3
    return magnitude * torch.exp(1j * phase)


def coil_sensitivities(matrix: tuple[int, int] = MATRIX, num_coils: int = NUM_COILS):
    """complex128 (coils, ky, kx): Gaussian blobs on a ring around the object, each with its
    own phase offset and phase ramp."""
    y, x = _grid(matrix)
    maps = []
    for coil in range(num_coils):
        angle = 2 * np.pi * coil / num_coils
        centre_y, centre_x = np.sin(angle), np.cos(angle)
        blob = torch.exp(-((y - centre_y) ** 2 + (x - centre_x) ** 2) / (2 * 0.4**2))
        phase = angle + 0.8 * (x * np.cos(angle) + y * np.sin(angle))
        maps.append(blob * torch.exp(1j * phase))
    return torch.stack(maps)


def make_problem(
    matrix: tuple[int, int] = MATRIX, num_coils: int = NUM_COILS, noise_std: float = NOISE_STD
) -> PhantomProblem:
    """The phantom seen by the coils, with noise of standard deviation ``noise_std`` per
    k-space sample (orthonormal FFT: the same per image pixel)."""
    image = cardiac_phantom(matrix)
    sensitivities = coil_sensitivities(matrix, num_coils)
    clean = fft2c(image * sensitivities)
    generator = torch.Generator().manual_seed(7)
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.complex128) * noise_std
    kspace = (clean + noise).to(torch.complex64)
    reference = rss(ifft2c(kspace.to(torch.complex128)))
    return PhantomProblem(image, sensitivities, kspace, reference, image.abs() > 0.05)


def make_inputs(problem: PhantomProblem, masks: list[np.ndarray]) -> ReconstructionInput:
    """One batch element per bool (ky, kx) mask, all of the same scan."""
    mask = torch.from_numpy(np.stack(masks).astype(np.float32))
    masked = problem.kspace.unsqueeze(0) * mask.unsqueeze(1)
    return ReconstructionInput(
        masked_kspace=masked,
        mask=mask,
        metadata_text=["Adult cardiac MRI reconstruction."] * len(masks),
        undersampling_text=["Undersampling."] * len(masks),
    )


def pattern_mask(pattern: str, acceleration: int, matrix: tuple[int, int] = MATRIX) -> np.ndarray:
    """bool (ky, kx), the first frame of a CMRxRecon mask with 20 ACS lines / a 20x20 square."""
    return make_mask(pattern, acceleration, matrix, seed=3).values[0]


def coil_correlation(estimate: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """(ky, kx) |<S_est, S_true>| / (|S_est| |S_true|) over coils: 1 when the coil vectors are
    parallel, whatever their common phase."""
    inner = (estimate.conj() * truth).sum(dim=0).abs()
    return inner / (rss(estimate, dim=0) * rss(truth, dim=0)).clamp_min(1e-12)


@dataclasses.dataclass(frozen=True)
class CineProblem:
    """A fully sampled multi-coil cine of a beating phantom heart, seen by known coils.

    Attributes:
        images: complex128 (frames, ky, kx), the object in each frame.
        sensitivities: complex128 (coils, ky, kx), the true coil maps.
        kspace: complex64 (frames, coils, ky, kx), fft2c(S x_t) plus complex Gaussian noise.
        support: bool (ky, kx), where the object is in every frame.
    """

    images: torch.Tensor
    sensitivities: torch.Tensor
    kspace: torch.Tensor
    support: torch.Tensor


def make_cine_problem(
    matrix: tuple[int, int] = MATRIX,
    num_coils: int = NUM_COILS,
    num_frames: int = 8,
    noise_std: float = NOISE_STD,
    sensitivities: torch.Tensor | None = None,
) -> CineProblem:
    """The phantom through one heartbeat (the heart contracts by up to 20 % and relaxes),
    seen by ``sensitivities`` (complex (coils, ky, kx); default :func:`coil_sensitivities`)
    with noise of ``noise_std`` per k-space sample."""
    contraction = 0.2 * torch.sin(torch.pi * torch.arange(num_frames) / num_frames) ** 2
    images = torch.stack([cardiac_phantom(matrix, float(c)) for c in contraction])
    if sensitivities is None:
        sensitivities = coil_sensitivities(matrix, num_coils)
    clean = fft2c(images[:, None] * sensitivities)
    generator = torch.Generator().manual_seed(11)
    noise = torch.randn(clean.shape, generator=generator, dtype=torch.complex128) * noise_std
    support = (images.abs() > 0.05).all(dim=0)
    return CineProblem(images, sensitivities, (clean + noise).to(torch.complex64), support)


def cine_mask(
    pattern: str, acceleration: int, matrix: tuple[int, int], num_frames: int, acs_width: int = 20
) -> torch.Tensor:
    """float32 (frames, ky, kx): a CMRxRecon mask whose kt patterns differ per frame."""
    values = make_mask(pattern, acceleration, matrix, num_frames, acs_width, seed=3).values
    return torch.from_numpy(values.astype(np.float32))


def map_error(estimate: torch.Tensor, truth: torch.Tensor, support: torch.Tensor) -> float:
    """Relative error of coil maps inside ``support`` after removing their per-pixel phase.

    Maps are defined up to a common phase per pixel: each pixel's estimate is rotated by the
    phase of its inner product with the truth before the difference is taken.

    Args:
        estimate, truth: complex (coils, ky, kx); truth normalised like the estimate (RSS 1).
        support: bool (ky, kx).
    """
    inner = (estimate.conj() * truth).sum(dim=0)
    aligned = estimate * (inner / inner.abs().clamp_min(1e-12))
    difference = (aligned - truth)[:, support].abs().square().sum()
    return float((difference / truth[:, support].abs().square().sum()).sqrt())
