"""Smooth random fields in scanner space: B1+ transmit shading, B0 off-resonance, background
phase and tissue texture.

A field is a sum of random plane waves in 3D (random Fourier features), so it is smooth,
cheap to evaluate on any grid, and consistent between the slices of a stack: slice ``z``
samples the same 3D field at its own position.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class SmoothField:
    """f(x, y, z) = sum_k a_k cos(k_k . r + p_k), about unit variance.

    Attributes:
        wavevectors: (terms, 3) in rad/mm.
        phases: (terms,) rad.
        amplitudes: (terms,).
    """

    wavevectors: np.ndarray
    phases: np.ndarray
    amplitudes: np.ndarray

    def __call__(self, y: np.ndarray, x: np.ndarray, z: float = 0.0) -> np.ndarray:
        """The field on a grid: y (ny, 1) and x (1, nx) in mm -> (ny, nx)."""
        kx, ky, kz = self.wavevectors.T
        # cos(kx x + ky y + c) = Re(e^{i ky y} e^{i c} e^{i kx x}): a rank-`terms` product.
        along_y = np.exp(1j * np.outer(np.ravel(y), ky))
        along_x = np.exp(1j * np.outer(kx, np.ravel(x)))
        weights = self.amplitudes * np.exp(1j * (kz * z + self.phases))
        return np.real(np.einsum("yk,kx->yx", along_y * weights, along_x))


def random_field(rng: np.random.Generator, length_scale_mm: float, terms: int = 8) -> SmoothField:
    """A smooth field whose features are about ``length_scale_mm`` across."""
    directions = rng.normal(size=(terms, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    magnitudes = 2 * np.pi / length_scale_mm * rng.uniform(0.5, 1.5, size=(terms, 1))
    return SmoothField(
        wavevectors=directions * magnitudes,
        phases=rng.uniform(0, 2 * np.pi, terms),
        amplitudes=np.full(terms, np.sqrt(2.0 / terms)),
    )


@dataclasses.dataclass(frozen=True)
class FieldMaps:
    """The smooth physical maps of one patient's exam.

    Attributes:
        b1_amplitude: peak relative B1+ deviation (0.05 at 1.5 T, 0.3 at 3 T ...).
        off_resonance_hz: peak B0 off-resonance after shimming.
        b1, off_resonance, phase, texture, fine_texture: the underlying fields.
        hot_spot_hz: extra off-resonance at the heart-lung interface (posterolateral wall).
    """

    b1_amplitude: float
    off_resonance_hz: float
    b1: SmoothField
    off_resonance: SmoothField
    phase: SmoothField
    texture: SmoothField
    fine_texture: SmoothField
    hot_spot_hz: float

    def b1_map(self, y: np.ndarray, x: np.ndarray, z: float) -> np.ndarray:
        """Relative flip angle (1 = nominal), within 1 +/- ``b1_amplitude``: (ny, nx)."""
        return 1.0 + self.b1_amplitude * np.tanh(self.b1(y, x, z) / 1.5)

    def off_resonance_map(
        self, y: np.ndarray, x: np.ndarray, z: float, hot_spot: tuple[float, float]
    ) -> np.ndarray:
        """Off-resonance in Hz: (ny, nx); ``hot_spot`` = (x, y) mm of the susceptibility peak."""
        smooth = self.off_resonance_hz * np.tanh(self.off_resonance(y, x, z) / 1.5)
        distance2 = (x - hot_spot[0]) ** 2 + (y - hot_spot[1]) ** 2
        return smooth + self.hot_spot_hz * np.exp(-distance2 / (2 * 30.0**2))

    def phase_map(self, y: np.ndarray, x: np.ndarray, z: float) -> np.ndarray:
        """Smooth background phase in rad (transmit / receive chain), (ny, nx)."""
        return 1.2 * np.pi * np.tanh(self.phase(y, x, z) / 2.0)

    def texture_map(self, y: np.ndarray, x: np.ndarray, z: float) -> np.ndarray:
        """Multiplicative proton-density texture, about 1 +/- 5 %: (ny, nx)."""
        return 1.0 + 0.04 * self.texture(y, x, z) + 0.02 * self.fine_texture(y, x, z)


def sample_field_maps(rng: np.random.Generator, field_strength: float) -> FieldMaps:
    """One exam's maps. Dielectric B1+ shading grows with field (strong from 3 T up) and
    B0 inhomogeneity scales with field, which is what puts bSSFP bands into high-field cines."""
    b1_amplitude = float(np.interp(field_strength, (0.55, 1.5, 3.0, 5.0), (0.03, 0.07, 0.28, 0.42)))
    off_resonance = 55.0 * field_strength * rng.uniform(0.8, 1.5)
    return FieldMaps(
        b1_amplitude=b1_amplitude,
        off_resonance_hz=off_resonance,
        b1=random_field(rng, length_scale_mm=220.0, terms=6),
        off_resonance=random_field(rng, length_scale_mm=160.0, terms=8),
        phase=random_field(rng, length_scale_mm=300.0, terms=4),
        texture=random_field(rng, length_scale_mm=30.0, terms=12),
        fine_texture=random_field(rng, length_scale_mm=7.0, terms=16),
        hot_spot_hz=0.6 * off_resonance * rng.choice((-1.0, 1.0)),
    )
