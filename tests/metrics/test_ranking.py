"""The ranking selection: which slices and frames count, and the centre crop."""

import numpy as np
import pytest

from cardiomm.metrics import (
    evaluate_image,
    evaluate_series,
    ranking_crop,
    ranking_crop_shape,
    ranking_frames,
    ranking_images,
    ranking_slices,
)


@pytest.mark.parametrize(
    ("num_slices", "expected"),
    [(1, [0]), (2, [0, 1]), (3, [0, 1]), (9, [3, 4]), (10, [3, 4]), (11, [4, 5])],
)
def test_ranking_slices_are_the_two_central_ones_as_matlab_picks_them(num_slices, expected):
    assert ranking_slices(num_slices) == expected


def test_ranking_frames_are_the_first_three_of_a_cine():
    assert ranking_frames(12, is_mapping=False) == [0, 1, 2]


def test_ranking_frames_are_all_frames_of_a_mapping_series():
    assert ranking_frames(9, is_mapping=True) == list(range(9))


def test_ranking_frames_of_a_single_image_series_are_that_image():
    assert ranking_frames(1, is_mapping=False) == [0]


def test_ranking_images_cross_slices_and_frames():
    assert ranking_images(12, 10, is_mapping=False) == [
        (0, 3),
        (1, 3),
        (2, 3),
        (0, 4),
        (1, 4),
        (2, 4),
    ]


@pytest.mark.parametrize(
    ("matrix", "expected"),
    [((246, 512), (123, 171)), ((87, 384), (44, 128)), ((149, 512), (75, 171))],
)
def test_ranking_crop_is_half_the_phase_encodes_and_a_third_of_the_readout(matrix, expected):
    assert ranking_crop_shape(*matrix) == expected


def test_ranking_crop_keeps_the_same_anatomy_when_oversampling_was_removed():
    assert ranking_crop_shape(246, 256, oversampling_removed=True) == ranking_crop_shape(246, 512)


def test_ranking_crop_keeps_the_image_centre():
    image = np.zeros((87, 384))
    image[87 // 2, 384 // 2] = 1.0
    cropped = ranking_crop(image)
    assert cropped.shape == (44, 128)
    assert cropped.sum() == 1.0


def test_evaluate_series_averages_the_ranked_cropped_images(rng):
    reference = rng.uniform(1, 2, size=(4, 5, 30, 36))
    reconstruction = reference + rng.normal(0, 0.1, size=reference.shape)
    scores = evaluate_series(reference, reconstruction, is_mapping=False)
    per_image = [
        evaluate_image(ranking_crop(reference[t, z]), ranking_crop(reconstruction[t, z]))
        for t, z in ranking_images(4, 5, is_mapping=False)
    ]
    assert scores.psnr == pytest.approx(np.mean([s.psnr for s in per_image]))
    assert scores.ssim == pytest.approx(np.mean([s.ssim for s in per_image]))
    assert scores.nmse == pytest.approx(np.mean([s.nmse for s in per_image]))


def test_evaluate_series_rejects_arrays_that_are_not_frames_slices_ky_kx():
    with pytest.raises(ValueError, match="frames, slices, ky, kx"):
        evaluate_series(np.ones((3, 30, 30)), np.ones((3, 30, 30)), is_mapping=False)
