"""A small cine phantom with known coil maps: what the classical methods are pinned on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from cardiomm.masks import make_mask


@dataclasses.dataclass(frozen=True)
class CinePhantom:
    """frames x coils x ky x kx k-space of a moving disc, its images, maps and masks."""

    images: np.ndarray  # complex (frames, ny, nx)
    maps: np.ndarray  # complex (coils, ny, nx), RSS 1
    kspace: np.ndarray  # complex64 (frames, coils, ny, nx), fully sampled
    support: np.ndarray  # bool (ny, nx), where the object is

    def masks(self, pattern: str, acceleration: int, acs: int = 12) -> np.ndarray:
        frames, _, ny, nx = self.kspace.shape
        mask = make_mask(pattern, acceleration, (ny, nx), num_frames=frames, acs_width=acs, seed=1)
        return mask.values.astype(np.float32)


def fft2c(values: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    shifted = np.fft.ifftshift(values, axes=axes)
    return np.fft.fftshift(np.fft.fft2(shifted, norm="ortho"), axes=axes)


def ifft2c(values: np.ndarray) -> np.ndarray:
    axes = (-2, -1)
    shifted = np.fft.ifftshift(values, axes=axes)
    return np.fft.fftshift(np.fft.ifft2(shifted, norm="ortho"), axes=axes)


def make_phantom(ny: int = 40, nx: int = 40, frames: int = 8, coils: int = 6) -> CinePhantom:
    y, x = np.mgrid[:ny, :nx]
    y = (y - ny / 2) / (ny / 2)
    x = (x - nx / 2) / (nx / 2)
    support = x**2 / 0.8 + y**2 / 0.6 <= 1
    images = []
    for frame in range(frames):
        radius = 0.25 + 0.08 * np.cos(2 * np.pi * frame / frames)
        image = 0.4 * support + 0.6 * ((x - 0.1) ** 2 + y**2 <= radius**2)
        images.append(image * np.exp(1j * 0.3 * x))
    maps = []
    for coil in range(coils):
        angle = 2 * np.pi * coil / coils
        centre = (1.2 * np.cos(angle), 1.2 * np.sin(angle))
        magnitude = np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / 1.5)
        maps.append(magnitude * np.exp(1j * (angle + 0.5 * x - 0.3 * y)))
    maps = np.stack(maps)
    maps /= np.sqrt((np.abs(maps) ** 2).sum(axis=0))
    images = np.stack(images)
    kspace = fft2c(images[:, None] * maps[None]).astype(np.complex64)
    return CinePhantom(images, maps.astype(np.complex64), kspace, support)


@pytest.fixture(scope="session")
def phantom() -> CinePhantom:
    return make_phantom()


@pytest.fixture(scope="session")
def small_phantom() -> CinePhantom:
    """Small enough for dense normal equations (16 x 16 pixels)."""
    return make_phantom(ny=16, nx=16, frames=4, coils=4)
