"""Coil sensitivities, compression and noise."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.data.synthetic import sample_subject
from cardiomm.data.synthetic.acquisition import acquire, compression_matrix
from cardiomm.data.synthetic.coils import body_array, sensitivity_maps
from cardiomm.data.synthetic.shapes import ImageGrid

_GRID = ImageGrid(ny=48, nx=128, dy_mm=6.0, dx_mm=6.0)


def _array(coils: int = 24):
    subject = sample_subject(np.random.default_rng(2))
    return subject, body_array(coils, subject.body, np.random.default_rng(3))


def test_sensitivities_are_smooth_and_brightest_near_the_body_surface() -> None:
    subject, array = _array()
    maps = sensitivity_maps(array, _GRID, np.array([0.0]))[0]
    assert maps.shape == (24, 48, 128) and maps.dtype == np.complex64
    rss = np.sqrt(np.sum(np.abs(maps) ** 2, axis=0))
    centre_row = 24 + round(subject.body.offset_mm[1] / 6.0)
    centre_column = 64 + round(subject.body.offset_mm[0] / 6.0)
    front = centre_row - round(0.45 * subject.body.depth / 6.0)
    assert rss[front, centre_column] > 1.5 * rss[centre_row, centre_column]
    # Neighbouring pixels differ by a few percent of the local level: smooth maps.
    step = np.abs(np.diff(maps, axis=-1)) / (np.abs(maps[..., 1:]) + np.abs(maps[..., :-1]) + 1e-12)
    inside = slice(centre_row - 8, centre_row + 8), slice(centre_column - 20, centre_column + 20)
    assert np.median(step[:, inside[0], inside[1]]) < 0.05


def test_sensitivities_change_between_slices() -> None:
    _, array = _array()
    maps = sensitivity_maps(array, _GRID, np.array([-40.0, 40.0]))
    assert not np.allclose(maps[0], maps[1], rtol=0.05)


def test_noise_covariance_is_a_valid_correlated_covariance() -> None:
    _, array = _array()
    covariance = array.noise_covariance
    np.testing.assert_allclose(covariance, covariance.T)
    assert np.linalg.eigvalsh(covariance).min() > 0
    off_diagonal = covariance[~np.eye(24, dtype=bool)]
    assert off_diagonal.max() > 0.05


def test_compression_keeps_most_energy_with_orthonormal_rows() -> None:
    _, array = _array()
    maps = sensitivity_maps(array, _GRID, np.array([0.0]))
    power = np.ones((1, 48, 128))
    matrix, kept = compression_matrix(maps, power, np.eye(24) * 1e-6, 10)
    assert matrix.shape == (10, 24)
    np.testing.assert_allclose(matrix @ matrix.conj().T, np.eye(10), atol=1e-10)
    assert kept > 0.9


def test_noise_level_follows_the_requested_snr() -> None:
    _, array = _array()
    maps = sensitivity_maps(array, _GRID, np.array([0.0]))
    images = np.zeros((2, 1, 48, 128), dtype=np.complex64)
    images[:, :, 12:36, 40:88] = 1.0
    mask = np.abs(images) > 0
    measured, reported = [], []
    for snr in (10.0, 20.0):
        first, report = acquire(
            images, maps, array.noise_covariance, mask, snr, 8, 1.0, np.random.default_rng(0)
        )
        second, _ = acquire(
            images, maps, array.noise_covariance, mask, snr, 8, 1.0, np.random.default_rng(1)
        )
        # Same images, other noise draw: the difference is noise only.
        measured.append(np.std(first - second))
        reported.append(report.noise_std)
    assert reported[1] / reported[0] == pytest.approx(0.5)
    assert measured[1] / measured[0] == pytest.approx(0.5, rel=0.03)


def test_acquire_applies_the_intensity_scale() -> None:
    _, array = _array()
    maps = sensitivity_maps(array, _GRID, np.array([0.0]))
    images = np.ones((1, 1, 48, 128), dtype=np.complex64)
    mask = np.ones(images.shape, dtype=bool)
    unit, _ = acquire(
        images, maps, array.noise_covariance, mask, 20.0, 8, 1.0, np.random.default_rng(0)
    )
    scaled, _ = acquire(
        images, maps, array.noise_covariance, mask, 20.0, 8, 1e-4, np.random.default_rng(0)
    )
    np.testing.assert_allclose(scaled, unit * 1e-4, rtol=1e-5, atol=1e-12)
