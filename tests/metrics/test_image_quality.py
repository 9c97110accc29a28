"""Metrics agree with the CMRxRecon 2025 evaluation, which calls scikit-image."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from cardiomm.metrics import evaluate_image, nmse, normalize_percentile, psnr, ssim


@pytest.fixture
def image_pair(rng):
    """A smooth magnitude 'anatomy' and a noisy, slightly blurred reconstruction of it."""
    ky, kx = np.mgrid[-1:1:61j, -1:1:83j]
    reference = np.exp(-(ky**2 + (kx / 0.7) ** 2) * 3) * 500 + 40 * (np.abs(kx) < 0.2)
    reconstruction = 0.9 * reference + rng.normal(0, 15, reference.shape)
    return reference, np.abs(reconstruction)


def test_psnr_matches_scikit_image_on_normalised_images(image_pair):
    reference, reconstruction = (normalize_percentile(image) for image in image_pair)
    expected = peak_signal_noise_ratio(reference, reconstruction, data_range=reference.max())
    assert psnr(reference, reconstruction) == pytest.approx(expected, rel=1e-12)


def test_ssim_matches_scikit_image_on_normalised_images(image_pair):
    reference, reconstruction = (normalize_percentile(image) for image in image_pair)
    expected = structural_similarity(reference, reconstruction, data_range=reference.max())
    assert ssim(reference, reconstruction) == pytest.approx(expected, rel=1e-10)


def test_evaluate_image_follows_the_official_recipe(image_pair):
    reference, reconstruction = image_pair
    reference_normalised = np.abs(reference) / np.percentile(np.abs(reference), 99.5)
    reconstruction_normalised = np.abs(reconstruction) / np.percentile(np.abs(reconstruction), 99.5)
    data_range = reference_normalised.max()
    scores = evaluate_image(reference, reconstruction)
    assert scores.psnr == pytest.approx(
        peak_signal_noise_ratio(
            reference_normalised, reconstruction_normalised, data_range=data_range
        )
    )
    assert scores.ssim == pytest.approx(
        structural_similarity(
            reference_normalised, reconstruction_normalised, data_range=data_range
        )
    )
    expected_nmse = np.sum((reference_normalised - reconstruction_normalised) ** 2) / np.sum(
        reference_normalised**2
    )
    assert scores.nmse == pytest.approx(expected_nmse)


def test_evaluate_image_ignores_the_intensity_scale(image_pair):
    reference, reconstruction = image_pair
    original = evaluate_image(reference, reconstruction)
    rescaled = evaluate_image(reference * 1e4, reconstruction * 1e-3)
    assert rescaled.psnr == pytest.approx(original.psnr, rel=1e-9)
    assert rescaled.ssim == pytest.approx(original.ssim, rel=1e-9)
    assert rescaled.nmse == pytest.approx(original.nmse, rel=1e-9)


def test_nmse_of_identical_images_is_zero(image_pair):
    reference, _ = image_pair
    assert nmse(reference, reference) == 0.0
    assert evaluate_image(reference, reference).nmse == 0.0


def test_ssim_of_identical_images_is_one(image_pair):
    reference, _ = image_pair
    assert evaluate_image(reference, reference).ssim == pytest.approx(1.0)


def test_psnr_of_identical_images_is_infinite(image_pair):
    reference, _ = image_pair
    assert psnr(reference, reference) == float("inf")


def test_percentile_normalisation_sends_the_995th_percentile_to_one(image_pair):
    reference, _ = image_pair
    assert np.percentile(normalize_percentile(reference), 99.5) == pytest.approx(1.0)


def test_percentile_normalisation_takes_the_magnitude_of_complex_images(rng):
    image = rng.normal(size=(16, 16)) + 1j * rng.normal(size=(16, 16))
    np.testing.assert_allclose(
        normalize_percentile(image), np.abs(image) / np.percentile(np.abs(image), 99.5)
    )


def test_ssim_rejects_images_smaller_than_its_window():
    with pytest.raises(ValueError, match="7x7"):
        ssim(np.ones((5, 9)), np.ones((5, 9)))


def test_metrics_reject_images_of_different_shapes():
    with pytest.raises(ValueError, match="shape"):
        psnr(np.ones((8, 8)), np.ones((8, 9)))
