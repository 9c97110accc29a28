"""CG-SENSE, L1-wavelet and k-t sparse CS, pinned on a phantom against closed-form solutions
and sigpy's own applications."""

from __future__ import annotations

import numpy as np
import pytest
import sigpy.mri.app

from cardiomm.classical import CGSense, KTSparse, L1Wavelet, method_from_name
from tests.classical.conftest import fft2c, ifft2c


def _problem(phantom, pattern="ktGaussian", acceleration=4):
    masks = phantom.masks(pattern, acceleration)
    return phantom.kspace * masks[:, None], masks


def _dense_sense(maps: np.ndarray, mask: np.ndarray, kspace: np.ndarray, lamda: float):
    """min ||M F S x - y||^2 + lamda ||x||^2 by the dense normal equations."""
    ny, nx = mask.shape
    columns = []
    for index in range(ny * nx):
        unit = np.zeros(ny * nx, dtype=complex)
        unit[index] = 1
        columns.append((mask * fft2c(maps * unit.reshape(ny, nx))).ravel())
    matrix = np.stack(columns, axis=1)
    normal = matrix.conj().T @ matrix + lamda * np.eye(ny * nx)
    rhs = matrix.conj().T @ (mask * kspace).ravel()
    return np.linalg.solve(normal, rhs).reshape(ny, nx)


def test_cg_sense_reaches_the_regularised_least_squares_solution(small_phantom) -> None:
    kspace, masks = _problem(small_phantom, "Uniform", 2)
    lamda = 1e-2
    image = CGSense(regularization=lamda, max_iter=200).solve(
        kspace, masks, small_phantom.maps, [0]
    )[0]
    exact = _dense_sense(small_phantom.maps, masks[0], kspace[0], lamda)
    assert np.linalg.norm(image - exact) / np.linalg.norm(exact) < 1e-3


def test_l1_wavelet_is_sigpys_application_with_the_same_settings(phantom) -> None:
    kspace, masks = _problem(phantom)
    ours = L1Wavelet(regularization=1e-3, max_iter=30).solve(kspace, masks, phantom.maps, [2])[0]
    theirs = sigpy.mri.app.L1WaveletRecon(
        kspace[2],
        phantom.maps,
        lamda=1e-3,
        weights=masks[2],
        wave_name="db4",
        max_iter=30,
        alpha=1.0,
        show_pbar=False,
    ).run()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


def test_l1_wavelet_beats_zero_filling_on_undersampled_data(phantom) -> None:
    kspace, masks = _problem(phantom, "Uniform", 4)
    image = L1Wavelet(regularization=1e-3).solve(kspace, masks, phantom.maps, [0])[0]
    zero_filled = (ifft2c(kspace[0]) * phantom.maps.conj()).sum(axis=0)
    truth = phantom.images[0]
    assert np.linalg.norm(image - truth) < 0.7 * np.linalg.norm(zero_filled - truth)


def test_kt_sparse_without_a_penalty_is_per_frame_least_squares(small_phantom) -> None:
    kspace, masks = _problem(small_phantom, "ktGaussian", 2)
    joint = KTSparse(regularization=0.0, max_iter=300).solve(
        kspace, masks, small_phantom.maps, range(kspace.shape[0])
    )
    for frame in (0, 3):
        exact = _dense_sense(small_phantom.maps, masks[frame], kspace[frame], 0.0)
        assert np.linalg.norm(joint[frame] - exact) / np.linalg.norm(exact) < 5e-3


def test_kt_sparse_leaves_the_temporal_mean_unpenalised(phantom) -> None:
    kspace, masks = _problem(phantom)
    frames = range(kspace.shape[0])
    images = KTSparse(regularization=1e3, max_iter=60).solve(kspace, masks, phantom.maps, frames)
    # Every temporal frequency but the mean is thresholded away: one image in every frame ...
    np.testing.assert_allclose(
        images, np.broadcast_to(images.mean(axis=0), images.shape), atol=1e-5
    )
    # ... and it is the moving object's temporal mean, not zero.
    mean_truth = phantom.images.mean(axis=0)
    inside = phantom.support
    error = np.linalg.norm((images[0] - mean_truth)[inside]) / np.linalg.norm(mean_truth[inside])
    assert error < 0.1


def test_kt_sparse_uses_the_other_frames_where_one_frame_is_undersampled(phantom) -> None:
    kspace, masks = _problem(phantom, "ktGaussian", 8)
    frames = list(range(kspace.shape[0]))
    joint = KTSparse(regularization=1e-3).solve(kspace, masks, phantom.maps, frames)
    alone = CGSense(regularization=1e-3).solve(kspace, masks, phantom.maps, frames)
    joint_error = float(np.linalg.norm(joint - phantom.images))
    alone_error = float(np.linalg.norm(alone - phantom.images))
    assert joint_error < 0.8 * alone_error


def test_methods_are_found_by_name_and_an_unknown_one_is_named() -> None:
    assert isinstance(method_from_name("kt-sparse", regularization=0.1), KTSparse)
    with pytest.raises(ValueError, match="unknown classical method 'grappa'"):
        method_from_name("grappa")
