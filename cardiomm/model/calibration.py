"""Coil sensitivities from every frame of a slice: ESPIRiT on the time-averaged k-space, in torch.

The kt masks (ktGaussian, ktRadial) sample different lines in every frame. Averaging each
sampled location over the frames that took it gives one k-space whose fully sampled centre is
much larger than one frame's ACS block (the calibration source of TSENSE and k-t SENSE); where
every frame has the same mask (Uniform, frameless series) the average is that frame's data.

ESPIRiT (Uecker et al., MRM 2014) then finds the maps as sigpy's ``EspiritCalib`` does: the
calibration matrix of k x k x coils patches of the calibration block, its dominant right
singular vectors (the signal subspace), and per pixel the dominant eigenvector of that
subspace's projection seen through the pixel's Fourier phases. Where both calibrate on the
same block, the maps' error against the cine phantom's true maps equals sigpy's to 1e-6
(tests/model/test_calibration.py). Three things differ:

- the per-pixel C x C matrices are band-limited (their k-space support is 2k - 1 samples per
  axis), so they are formed exactly on a 2k x 2k grid and brought to the full matrix by
  zero-padding their k-space, instead of one full-size FFT per kernel;
- the power iteration starts from the low-resolution ACS estimate rather than from ones, and
  the eigenvectors' free per-pixel phase is set to that estimate's, which is smooth (sigpy
  takes the first coil's phase, which jumps where that coil sees nothing);
- the block is the centred part of the fully sampled rectangle, not a square: a narrow one
  (a few lines) is used along its length (:func:`_calibration_block_bounds`), where sigpy's
  square would hold too few patches.

Everything runs batched on the input's device without gradients and without random draws: the
same input on the same device gives the same bits.
"""

from __future__ import annotations

import dataclasses

import torch

from cardiomm.model.sensitivities import (
    acs_bounds,
    acs_window,
    normalise_by_rss,
)
from cardiomm.physics import ifft2c, pad_kspace_centre

FRAME_METHODS = ("espirit", "acs_lowres")
# k-space side of ESPIRiT's kernel (sigpy's default 6).
DEFAULT_KERNEL_WIDTH = 6
# Singular values kept, relative to the largest (sigpy's ``thresh``, default 0.02).
DEFAULT_SINGULAR_THRESHOLD = 0.02
# Power iterations per pixel (sigpy's ``max_iter``, default 100, from ones). Started from the
# low-resolution estimate, 10 gave maps within 1e-6 (relative map error) of 30's on the
# phantom, 5 within 4e-4: 15 leave a margin.
DEFAULT_POWER_ITERATIONS = 15
# Largest side of the calibration block used: a larger block costs more and gains nothing for
# maps as smooth as coil sensitivities (the classical baselines cap ESPIRiT at 32 too).
MAX_CALIBRATION_SIDE = 32
# Shortest longer side of the calibration block: a narrow rectangle (few fully sampled lines)
# needs patches along its length (see _calibration_block_bounds).
MIN_CALIBRATION_SIDE = 20


@dataclasses.dataclass(frozen=True)
class EspiritOptions:
    """ESPIRiT's settings (sigpy's ``EspiritCalib`` names in brackets).

    Attributes:
        kernel_width: k-space kernel side, >= 2 (``kernel_width``).
        singular_threshold: singular values kept, relative to the largest, in (0, 1)
            (``thresh``).
        power_iterations: per pixel, >= 1 (``max_iter``).
        crop: maps are zero where the dominant eigenvalue is below this, in [0, 1)
            (``crop``); 0 keeps every pixel, as the single-frame estimate does.
    """

    kernel_width: int = DEFAULT_KERNEL_WIDTH
    singular_threshold: float = DEFAULT_SINGULAR_THRESHOLD
    power_iterations: int = DEFAULT_POWER_ITERATIONS
    crop: float = 0.0

    def __post_init__(self) -> None:
        if self.kernel_width < 2:
            raise ValueError(f"kernel_width must be >= 2, got {self.kernel_width}")
        if not 0.0 < self.singular_threshold < 1.0:
            raise ValueError(f"singular_threshold must be in (0, 1), got {self.singular_threshold}")
        if self.power_iterations < 1:
            raise ValueError(f"power_iterations must be >= 1, got {self.power_iterations}")
        if not 0.0 <= self.crop < 1.0:
            raise ValueError(f"crop must be in [0, 1), got {self.crop}")


def time_averaged_kspace(
    masked_kspace: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each sampled location's data averaged over the frames that sampled it.

    Args:
        masked_kspace: complex (B, T, C, H, W), zeros where not sampled.
        mask: (B, T, H, W), (B, T, 1, W) or anything broadcastable to (B, T, H, W); 1 / True
            where sampled.

    Returns:
        (average, sampled): complex (B, C, H, W), and float32 (B, H, W), 1 where any frame
        sampled.
    """
    _check_frames(masked_kspace, mask)
    batch, frames, _, height, width = masked_kspace.shape
    weights = (mask.to(torch.float32) > 0.5).to(torch.float32)
    weights = weights.expand(batch, frames, height, width)
    counts = weights.sum(dim=1)
    real_dtype = masked_kspace.real.dtype
    total = (masked_kspace * weights.to(real_dtype).unsqueeze(2)).sum(dim=1)
    average = total / counts.clamp_min(1.0).to(real_dtype).unsqueeze(1)
    return average, (counts > 0).to(torch.float32)


@torch.no_grad()
def estimate_sensitivities_from_frames(
    masked_kspace: torch.Tensor,
    mask: torch.Tensor,
    method: str = "espirit",
    options: EspiritOptions | None = None,
) -> torch.Tensor:
    """Coil sensitivities of one slice from all of its frames, RSS 1 over coils.

    The frames' samples are averaged per location (:func:`time_averaged_kspace`); the
    calibration block is the fully sampled rectangle of that average around the k-space
    centre (:func:`~cardiomm.model.sensitivities.acs_bounds` of the union of the frames'
    masks), its centred part described at :func:`_calibration_block_bounds` (the central
    20 x 20 square of 20 ACS lines).

    ``espirit`` (default): ESPIRiT on that block (module docstring). ``acs_lowres``: the
    Hamming-windowed low-resolution estimate of
    :func:`~cardiomm.model.sensitivities.estimate_sensitivities` on the average and the
    union's block. By default the maps cover the whole field of view (no crop to the
    object), as the single-frame estimate does.

    Args:
        masked_kspace: complex (B, T, C, H, W), centred, zeros where not sampled; T = 1 for a
            single frame or a frameless series. A (B, C, H, W) tensor is taken as T = 1.
        mask: (B, T, H, W) or broadcastable to it ((B, T, 1, W) line masks, (B, 1, H, W) one
            mask for all frames); (B, H, W) with 4-D k-space.
        method: ``espirit`` or ``acs_lowres``.
        options: ESPIRiT's settings (default :class:`EspiritOptions`).

    Returns:
        complex (B, C, H, W), dtype and device of ``masked_kspace``; RSS over coils 1 at every
        pixel where the calibration data hold signal (and, with a crop, the eigenvalue reaches
        it), 0 elsewhere; all zero if the k-space centre was never sampled.
    """
    if method not in FRAME_METHODS:
        raise ValueError(
            f"unknown frame sensitivity method {method!r}; choose one of {', '.join(FRAME_METHODS)}"
        )
    if masked_kspace.ndim == 4:
        masked_kspace, mask = masked_kspace.unsqueeze(1), mask.unsqueeze(1)
    average, sampled = time_averaged_kspace(masked_kspace, mask)
    bounds = _calibration_block_bounds(acs_bounds(sampled))
    lowres = _lowres_maps(average, bounds)
    if method == "acs_lowres":
        return lowres
    return espirit_maps(average, bounds, lowres, options or EspiritOptions())


@torch.no_grad()
def espirit_maps(
    kspace: torch.Tensor,
    bounds: torch.Tensor,
    reference: torch.Tensor,
    options: EspiritOptions | None = None,
) -> torch.Tensor:
    """ESPIRiT's dominant eigenvector maps from a fully sampled calibration block.

    Args:
        kspace: complex (B, C, H, W), centred; fully sampled inside ``bounds``.
        bounds: int64 (B, 4) calibration rectangles (top, bottom, left, right), exclusive ends.
        reference: complex (B, C, H, W) maps that start the power iteration and give each
            pixel's phase (the low-resolution estimate).
        options: ESPIRiT's settings (default :class:`EspiritOptions`).

    Returns:
        complex (B, C, H, W), unit norm over coils wherever ``reference`` is non-zero and the
        eigenvalue reaches ``options.crop``, 0 elsewhere.
    """
    options = options or EspiritOptions()
    batch, _, height, width = kspace.shape
    operators = torch.stack(
        [
            _pixel_operators(
                _calibration_block(kspace[item], bounds[item]),
                options.kernel_width,
                options.singular_threshold,
                (height, width),
            )
            for item in range(batch)
        ]
    )
    vectors = reference.permute(0, 2, 3, 1).to(operators.dtype)
    for _ in range(options.power_iterations):
        vectors = torch.einsum("bhwcd,bhwd->bhwc", operators, vectors)
        # The norm of a unit vector's image is the eigenvalue once the iteration has settled.
        # (On the CPU, summing the real view is ten times faster than a complex norm.)
        eigenvalue = torch.view_as_real(vectors).square().sum(dim=(-2, -1)).sqrt().unsqueeze(-1)
        vectors = vectors / eigenvalue.clamp_min(torch.finfo(eigenvalue.dtype).tiny)
    if options.crop > 0:
        vectors = vectors * (eigenvalue >= options.crop)
    maps = vectors.permute(0, 3, 1, 2).to(kspace.dtype)
    # Eigenvectors are defined up to a phase per pixel: take the reference's (smooth) one.
    alignment = (maps.conj() * reference).sum(dim=1, keepdim=True)
    phase = alignment / alignment.abs().clamp_min(torch.finfo(alignment.real.dtype).tiny)
    return maps * phase


def _lowres_maps(kspace: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """The Hamming-windowed low-resolution estimate inside ``bounds``: complex (B, C, H, W)."""
    window = acs_window(bounds, kspace.shape[-2], kspace.shape[-1])
    return normalise_by_rss(ifft2c(kspace * window.to(kspace.real.dtype).unsqueeze(1)))


def _calibration_block(kspace: torch.Tensor, bounds: torch.Tensor) -> torch.Tensor:
    """complex (C, h, w): the calibration rectangle of one item's (C, H, W) k-space."""
    top, bottom, left, right = (int(value) for value in bounds.tolist())
    return kspace[:, top:bottom, left:right]


def _pixel_operators(
    block: torch.Tensor, kernel_width: int, singular_threshold: float, matrix: tuple[int, int]
) -> torch.Tensor:
    """ESPIRiT's per-pixel C x C matrices W(x)^H P W(x) / k^2: complex (H, W, C, C).

    P projects onto the signal subspace of the calibration matrix (right singular vectors
    above the threshold, from the eigen-decomposition of its Gram matrix, whose eigenvalues
    are the squared singular values). W(x) maps a coil vector to its k x k patch at pixel x.
    A block smaller than the kernel along an axis shrinks the kernel there; an empty block
    (no signal) gives all-zero matrices.
    """
    coils = block.shape[0]
    kernel = (min(kernel_width, block.shape[1]), min(kernel_width, block.shape[2]))
    patches = block.unfold(1, kernel[0], 1).unfold(2, kernel[1], 1)
    # (C, ny, nx, ky, kx) -> one row per patch position, coil-major columns.
    rows = patches.permute(1, 2, 0, 3, 4).reshape(-1, coils * kernel[0] * kernel[1])
    rows = rows.to(torch.complex128)
    gram = rows.conj().T @ rows
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    kept = eigenvalues > (singular_threshold**2) * eigenvalues[-1].clamp_min(0.0)
    if not bool(kept.any()):
        return block.new_zeros((*matrix, coils, coils), dtype=torch.complex64)
    # The patches are combinations of the conjugated right singular vectors (rows of V^H).
    subspace = eigenvectors[:, kept].conj().T.reshape(-1, coils, *kernel)
    # Kernel images q_ic(x) = sum_u V_i[c, u] exp(+2 pi i u x) on a grid that holds the
    # products' band (2k - 1 samples) without aliasing.
    grid = (2 * kernel[0], 2 * kernel[1])
    images = torch.fft.ifftshift(pad_kspace_centre(subspace, grid), dim=(-2, -1))
    images = torch.fft.fftshift(torch.fft.ifft2(images, norm="forward"), dim=(-2, -1))
    coarse = torch.einsum("icyx,idyx->cdyx", images, images.conj()) / (kernel[0] * kernel[1])
    # Double precision served the eigen-decomposition; the full-size work needs single.
    fine = _band_limited_on_matrix(coarse.to(torch.complex64), matrix)
    return fine.permute(2, 3, 0, 1).contiguous()


def _band_limited_on_matrix(coarse: torch.Tensor, matrix: tuple[int, int]) -> torch.Tensor:
    """Values on the full (H, W) matrix of a function sampled on a coarse centred grid whose
    band the grid holds: complex (..., h, w) -> complex (..., H, W), exact (sinc interpolation).

    The spectrum is formed and shifted on the coarse grid and zero-padded in the FFT's own
    order, so that the only full-size work is one inverse FFT (no shifts of C x C x H x W).
    """
    grid = coarse.shape[-2:]
    # Fourier coefficients c_f with coarse(y) = sum_f c_f exp(2 pi i f (y - h // 2) / h).
    coefficients = torch.fft.fft2(torch.fft.ifftshift(coarse, dim=(-2, -1)), norm="forward")
    for axis, (small, large) in enumerate(zip(grid, matrix, strict=True)):
        frequencies = torch.fft.fftfreq(small, 1.0 / small, device=coarse.device)
        # The full matrix's centre sits at index large // 2: a phase ramp, not a roll.
        ramp = torch.exp(-2j * torch.pi * frequencies * (large // 2) / large)
        shape = [1] * coefficients.ndim
        shape[coefficients.ndim - 2 + axis] = small
        coefficients = coefficients * ramp.to(coefficients.dtype).reshape(shape)
    padded = coefficients.new_zeros((*coefficients.shape[:-2], *matrix))
    for rows_from, rows_to in _wrapped_ranges(grid[0], matrix[0]):
        for columns_from, columns_to in _wrapped_ranges(grid[1], matrix[1]):
            padded[..., rows_to, columns_to] = coefficients[..., rows_from, columns_from]
    return torch.fft.ifft2(padded, norm="forward")


def _wrapped_ranges(small: int, large: int) -> list[tuple[slice, slice]]:
    """Where FFT-ordered frequencies of a ``small`` axis go on a ``large`` one: the
    non-negative ones first, the negative ones at the end."""
    non_negative = (small + 1) // 2
    return [
        (slice(0, non_negative), slice(0, non_negative)),
        (slice(non_negative, small), slice(large - (small - non_negative), large)),
    ]


def _calibration_block_bounds(bounds: torch.Tensor) -> torch.Tensor:
    """The centred part of each fully sampled rectangle that ESPIRiT calibrates on.

    Along the rectangle's shorter side, all of it (up to :data:`MAX_CALIBRATION_SIDE`);
    along the longer side, as much as the shorter side but at least
    :data:`MIN_CALIBRATION_SIDE` where the rectangle reaches that far. Measured on the cine
    phantom (tests/model/phantom.py): the central 20 x 20 square of 20 ACS lines gave maps
    2 % closer to the truth than the 20 x 32 strip (and exactly sigpy's on its 20 x 20
    square), while 13 lines needed the longer side: 13 x 13 had 0.19 relative error, 13 x 20
    0.13, sigpy on its 13 x 13 square 0.13.
    """
    extents = bounds[:, 1::2] - bounds[:, 0::2]
    shorter = extents.amin(dim=1, keepdim=True).clamp_max(MAX_CALIBRATION_SIDE)
    longer = shorter.clamp(MIN_CALIBRATION_SIDE, MAX_CALIBRATION_SIDE)
    is_shorter = extents == extents.amin(dim=1, keepdim=True)
    sides = torch.minimum(extents, torch.where(is_shorter, shorter, longer))
    starts = bounds[:, 0::2] + (extents - sides) // 2
    block = torch.empty_like(bounds)
    block[:, 0::2], block[:, 1::2] = starts, starts + sides
    return block


def _check_frames(masked_kspace: torch.Tensor, mask: torch.Tensor) -> None:
    if masked_kspace.ndim != 5 or not masked_kspace.is_complex():
        raise ValueError(
            "masked_kspace must be a complex tensor (batch, frames, coils, ky, kx), got dtype "
            f"{masked_kspace.dtype} and shape {tuple(masked_kspace.shape)}"
        )
    target = (masked_kspace.shape[0], masked_kspace.shape[1], *masked_kspace.shape[-2:])
    try:
        torch.broadcast_shapes(tuple(mask.shape), target)
    except RuntimeError:
        mask_ok = False
    else:
        mask_ok = mask.ndim == 4 and not mask.is_complex()
    if not mask_ok or torch.broadcast_shapes(tuple(mask.shape), target) != target:
        raise ValueError(
            f"mask shape {tuple(mask.shape)} does not broadcast to masked_kspace (batch, "
            f"frames, ky, kx) {target}"
        )
