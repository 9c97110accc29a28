"""The classical reconstructor: one lambda for every unit, stored results, refusals."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardiomm.classical import (
    CalibrationError,
    ClassicalReconstructor,
    KTSparse,
    L1Wavelet,
    ResultCache,
)
from cardiomm.classical.reconstructor import CineJob, run_jobs


def _inputs(phantom, pattern="ktRadial", acceleration=8):
    masks = phantom.masks(pattern, acceleration)
    return phantom.kspace * masks[:, None], masks


def test_scaling_the_kspace_scales_the_images_and_nothing_else(phantom) -> None:
    kspace, masks = _inputs(phantom)
    reconstructor = ClassicalReconstructor(KTSparse(regularization=1e-2, max_iter=20))
    unit = reconstructor.reconstruct_cine(kspace, masks, [0, 1]).images
    vendor = reconstructor.reconstruct_cine(kspace * 1e4, masks, [0, 1]).images
    np.testing.assert_allclose(vendor, unit * 1e4, rtol=2e-3, atol=1e-3 * vendor.max())


def test_only_the_wanted_frames_come_back_with_their_timings(phantom) -> None:
    kspace, masks = _inputs(phantom)
    result = ClassicalReconstructor(L1Wavelet(max_iter=10)).reconstruct_cine(kspace, masks, [2, 5])
    assert result.images.shape == (2, *kspace.shape[-2:])
    assert result.images.dtype == np.float32
    assert result.frames_solved == 2 and result.solve_seconds > 0
    assert result.calibration_seconds > 0 and not result.cached


def test_a_kt_method_solves_every_frame_of_the_slice(phantom) -> None:
    kspace, masks = _inputs(phantom)
    result = ClassicalReconstructor(KTSparse(max_iter=5)).reconstruct_cine(kspace, masks, [0])
    assert result.frames_solved == kspace.shape[0]


def test_a_stored_result_is_reused_for_the_same_inputs_only(phantom, tmp_path: Path) -> None:
    kspace, masks = _inputs(phantom)
    cache = ResultCache(tmp_path)
    reconstructor = ClassicalReconstructor(KTSparse(max_iter=10), cache=cache)
    first = reconstructor.reconstruct_cine(kspace, masks, [0, 1, 2])
    again = ClassicalReconstructor(KTSparse(max_iter=10), cache=cache).reconstruct_cine(
        kspace, masks, [0, 1, 2]
    )
    assert again.cached
    np.testing.assert_array_equal(again.images, first.images)
    assert again.solve_seconds == pytest.approx(first.solve_seconds)
    other = ClassicalReconstructor(KTSparse(regularization=0.5, max_iter=10), cache=cache)
    assert not other.reconstruct_cine(kspace, masks, [0, 1, 2]).cached
    changed = kspace.copy()
    centre = (0, 0, kspace.shape[2] // 2, kspace.shape[3] // 2)
    changed[centre] += 1.0
    assert not reconstructor.reconstruct_cine(changed, masks, [0, 1, 2]).cached
    # What a mask leaves out is not part of the input: changing it changes nothing.
    unsampled = kspace.copy()
    unsampled[(0, 0, *np.argwhere(masks[0] == 0)[0])] += 1.0
    assert reconstructor.reconstruct_cine(unsampled, masks, [0, 1, 2]).cached


def test_a_damaged_stored_result_is_recomputed(phantom, tmp_path: Path) -> None:
    kspace, masks = _inputs(phantom)
    cache = ResultCache(tmp_path)
    reconstructor = ClassicalReconstructor(L1Wavelet(max_iter=5), cache=cache)
    reconstructor.reconstruct_cine(kspace, masks, [0])
    for stored in tmp_path.rglob("*.npz"):
        stored.write_bytes(b"not an npz file")
    result = ClassicalReconstructor(L1Wavelet(max_iter=5), cache=cache).reconstruct_cine(
        kspace, masks, [0]
    )
    assert not result.cached and np.isfinite(result.images).all()


def test_parallel_jobs_give_the_same_images_as_one_process(phantom, tmp_path: Path) -> None:
    kspace, masks = _inputs(phantom)
    jobs = [
        CineJob(
            ClassicalReconstructor(L1Wavelet(regularization=value, max_iter=5)), kspace, masks, (0,)
        )
        for value in (1e-3, 1e-2)
    ]
    serial = run_jobs(jobs, workers=1)
    parallel = run_jobs(jobs, workers=2)
    for one, other in zip(serial, parallel, strict=True):
        np.testing.assert_array_equal(one.images, other.images)


def test_frames_outside_the_slice_are_refused(phantom) -> None:
    kspace, masks = _inputs(phantom)
    with pytest.raises(ValueError, match=r"frames \[8\]"):
        ClassicalReconstructor(L1Wavelet()).reconstruct_cine(kspace, masks, [8])


def test_data_without_a_calibration_region_is_refused(phantom) -> None:
    kspace, masks = _inputs(phantom)
    masks = masks.copy()
    masks[:, :, :] = 0
    masks[:, ::4, :] = 1
    with pytest.raises(CalibrationError):
        ClassicalReconstructor(L1Wavelet()).reconstruct_cine(kspace, masks, [0])


def test_seconds_per_image_counts_calibration_and_solve_per_frame_solved(phantom) -> None:
    kspace, masks = _inputs(phantom)
    reconstructor = ClassicalReconstructor(L1Wavelet(max_iter=5))
    assert np.isnan(reconstructor.seconds_per_image())
    first = reconstructor.reconstruct_cine(kspace, masks, [0, 1])
    second = reconstructor.reconstruct_cine(kspace, masks, [3])
    assert second.calibration_seconds == pytest.approx(first.calibration_seconds)
    total = sum(r.calibration_seconds + r.solve_seconds for r in (first, second))
    assert reconstructor.seconds_per_image() == pytest.approx(total / 3)
