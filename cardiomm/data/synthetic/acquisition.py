"""From object images to what a scanner stores: resolution, coils, compression, noise, scale.

- Resolution: the object is rendered at twice the resolution and its k-space cropped to the
  acquired matrix, so edges carry the partial-volume blur and Gibbs ringing of a real
  acquisition (not the perfect steps of a label map).
- Coils: each image is multiplied by the raw coil sensitivities; raw coils are compressed to
  the distributed count with the SVD of the expected data covariance (signal plus noise), the
  compression real pipelines compute from the data themselves.
- Noise: complex Gaussian, correlated between raw coils, white in k-space, at the level that
  gives the series its SNR (mean soft-tissue RSS signal / per-coil noise standard deviation).
- Heartbeats: a segmented cine stitches each frame from several heartbeats; what moved
  between them (:mod:`.breath_hold`) multiplies each beat's lines of the signal.
- Raw filter: the vendor's export chain apodises the stored k-space, noise included
  (:mod:`.vendors`).
- Scale: a vendor's receive chain and reconstruction put k-space in its own units.
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import fft

_AXES = (-2, -1)


def fft2c(image: np.ndarray) -> np.ndarray:
    """Centred orthonormal 2D FFT over the last two axes (numpy twin of the physics module)."""
    return fft.fftshift(fft.fft2(fft.ifftshift(image, axes=_AXES), norm="ortho"), axes=_AXES)


def ifft2c(kspace: np.ndarray) -> np.ndarray:
    """Centred orthonormal inverse 2D FFT over the last two axes."""
    return fft.fftshift(fft.ifft2(fft.ifftshift(kspace, axes=_AXES), norm="ortho"), axes=_AXES)


def truncate_resolution(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Keep the central ``shape`` of the images' k-space: (..., NY, NX) -> (..., ny, nx).

    The amplitude is preserved (a constant image stays the same constant).
    """
    kspace = fft2c(images)
    ny, nx = shape
    big_y, big_x = images.shape[-2:]
    start_y = big_y // 2 - ny // 2
    start_x = big_x // 2 - nx // 2
    cropped = kspace[..., start_y : start_y + ny, start_x : start_x + nx]
    return ifft2c(cropped) * np.sqrt(ny * nx / (big_y * big_x))


@dataclasses.dataclass(frozen=True)
class AcquisitionReport:
    """What the acquisition did to one series (written to the sidecar).

    Attributes:
        noise_std: per-raw-coil complex noise standard deviation before scaling, in units of
            the mean soft-tissue RSS signal (so ``1 / noise_std`` is the SNR).
        intensity_scale: factor applied to all k-space.
        compression_energy: share of the expected data energy the compressed coils keep.
    """

    noise_std: float
    intensity_scale: float
    compression_energy: float


def compression_matrix(
    sensitivities: np.ndarray, power: np.ndarray, noise_covariance: np.ndarray, num_virtual: int
) -> tuple[np.ndarray, float]:
    """SVD coil compression from the expected data covariance.

    Args:
        sensitivities: complex (slices, raw coils, ny, nx).
        power: (slices, ny, nx) mean squared image magnitude over frames.
        noise_covariance: (raw, raw) covariance of the noise (same units as the signal).
        num_virtual: coils kept.

    Returns:
        (num_virtual, raw) complex matrix with orthonormal rows, and the energy share kept.
    """
    raw = sensitivities.shape[1]
    if num_virtual > raw:
        raise ValueError(f"cannot compress {raw} coils to {num_virtual}")
    # Every second pixel along each axis is plenty for a raw x raw covariance.
    weighted = sensitivities[..., ::2, ::2] * np.sqrt(power[:, None, ::2, ::2])
    samples = np.moveaxis(weighted, 1, 0).reshape(raw, -1)
    # Products here use einsum, not BLAS: multithreaded BLAS on a loaded small machine spins
    # and makes generation 10x slower, and these matrices are too thin to gain from it.
    covariance = (
        np.einsum("in,jn->ij", samples, samples.conj()) + samples.shape[1] * noise_covariance
    )
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    order = np.argsort(eigenvalues)[::-1][:num_virtual]
    kept = float(eigenvalues[order].sum() / eigenvalues.sum())
    return eigenvectors[:, order].conj().T, kept


def acquire(
    images: np.ndarray,
    sensitivities: np.ndarray,
    noise_covariance: np.ndarray,
    tissue_mask: np.ndarray,
    snr: float,
    num_virtual: int,
    intensity_scale: float,
    rng: np.random.Generator,
    modulation: np.ndarray | None = None,
    raw_filter: np.ndarray | None = None,
) -> tuple[np.ndarray, AcquisitionReport]:
    """Multi-coil k-space of a series.

    Args:
        images: complex (frames, slices, ny, nx) object images on the acquired grid.
        sensitivities: complex (slices, raw coils, ny, nx).
        noise_covariance: (raw, raw) relative noise covariance (unit mean diagonal).
        tissue_mask: bool (frames, slices, ny, nx), soft tissue (SNR reference region).
        snr: mean soft-tissue RSS signal / per-coil noise standard deviation.
        num_virtual: coils after compression.
        intensity_scale: vendor units.
        rng: draws the noise.
        modulation: complex (slices, ny, nx) factor of each slice's signal k-space (the
            heartbeats of a segmented acquisition); None: none.
        raw_filter: real (ny, nx) apodisation of the stored k-space, noise included; None:
            none.

    Returns:
        complex64 (frames, slices, coils, ny, nx) centred k-space, and a report.
    """
    frames, slices, ny, nx = images.shape
    images, magnitude, sensitivities, signal = _soft_tissue_units(
        images, sensitivities, tissue_mask
    )
    noise_std = float(signal / snr)
    noise_covariance = noise_covariance * noise_std**2
    power = np.mean(magnitude**2, axis=0)
    matrix, kept = compression_matrix(sensitivities, power, noise_covariance, num_virtual)
    virtual = np.einsum("vr,sryx->svyx", matrix, sensitivities).astype(np.complex64)
    cholesky = np.linalg.cholesky(matrix @ noise_covariance @ matrix.conj().T)
    cholesky = cholesky.astype(np.complex64)
    images = images.astype(np.complex64)
    kspace = np.empty((frames, slices, num_virtual, ny, nx), dtype=np.complex64)
    for index in range(slices):
        coil_images = images[:, index, None] * virtual[index][None]
        noise = _correlated_noise(rng, cholesky, frames, ny, nx)
        signal = fft2c(coil_images)
        if modulation is not None:
            signal = signal * modulation[index]
        stored = signal + noise
        if raw_filter is not None:
            stored = stored * raw_filter
        kspace[:, index] = stored * np.float32(intensity_scale)
    return kspace, AcquisitionReport(noise_std, intensity_scale, kept)


def _soft_tissue_units(
    images: np.ndarray, sensitivities: np.ndarray, tissue_mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Object and coils scaled to average 1 over soft tissue (before the vendor's scale).

    Returns:
        the scaled images (frames, slices, ny, nx), their magnitude, the scaled sensitivities
        (slices, raw coils, ny, nx) and the mean soft-tissue RSS signal.
    """
    magnitude = np.abs(images)
    images = images / magnitude[tissue_mask].mean()
    magnitude = magnitude / magnitude[tissue_mask].mean()
    coil_rss = np.sqrt(np.sum(np.abs(sensitivities) ** 2, axis=1))  # (slices, ny, nx)
    coil_rss_mean = coil_rss[tissue_mask.any(axis=0)].mean()
    sensitivities = sensitivities / coil_rss_mean
    signal = (magnitude * coil_rss[None] / coil_rss_mean)[tissue_mask].mean()
    return images, magnitude, sensitivities, signal


def _correlated_noise(
    rng: np.random.Generator, cholesky: np.ndarray, frames: int, ny: int, nx: int
) -> np.ndarray:
    """complex64 (frames, coils, ny, nx) noise of one slice, coils correlated by ``cholesky``
    (coils, coils), the factor of their noise covariance."""
    num_virtual = cholesky.shape[0]
    white = rng.standard_normal((2, num_virtual, frames * ny * nx), dtype=np.float32)
    white = (white[0] + 1j * white[1]) * np.float32(np.sqrt(0.5))
    noise = np.einsum("ij,jn->in", cholesky, white).reshape(num_virtual, frames, ny, nx)
    return noise.swapaxes(0, 1)
