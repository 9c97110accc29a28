"""Masks scaled to a reference matrix: as hard on a small matrix as on full-size data."""

import pytest

from cardiomm.masks import MaskSampler, make_mask
from cardiomm.masks.scaling import matched_radial_beams, scaled_acs_width

FULL_SIZE = (246, 512)
HEADLINE = [("Uniform", 8), ("ktGaussian", 16), ("ktRadial", 24)]


@pytest.mark.parametrize(("pattern", "acceleration"), HEADLINE)
@pytest.mark.parametrize("matrix", [(48, 56), (54, 60), (80, 88)])
def test_a_scaled_mask_is_within_20_percent_of_the_full_size_true_acceleration(
    pattern, acceleration, matrix
):
    reference = make_mask(pattern, acceleration, FULL_SIZE, num_frames=12).true_acceleration
    scaled = make_mask(
        pattern, acceleration, matrix, num_frames=12, reference_matrix=FULL_SIZE
    ).true_acceleration
    assert abs(scaled / reference - 1) < 0.2


@pytest.mark.parametrize(("pattern", "acceleration"), HEADLINE)
def test_an_unscaled_mask_on_a_small_matrix_is_far_easier(pattern, acceleration):
    reference = make_mask(pattern, acceleration, FULL_SIZE, num_frames=12).true_acceleration
    small = make_mask(pattern, acceleration, (54, 60), num_frames=12).true_acceleration
    assert small < 0.6 * reference


def test_the_acs_width_scales_with_the_phase_encode_lines():
    assert scaled_acs_width(20, 54, 246) == 4
    assert scaled_acs_width(20, 246, 246) == 20
    assert scaled_acs_width(20, 5, 246) == 1
    assert scaled_acs_width(0, 54, 246) == 0


def test_a_scaled_mask_records_the_acs_width_it_used():
    mask = make_mask("Uniform", 8, (54, 60), reference_matrix=FULL_SIZE)
    assert mask.acs_width == 4


def test_on_the_reference_matrix_itself_nothing_changes():
    plain = make_mask("ktRadial", 24, FULL_SIZE, num_frames=3)
    scaled = make_mask("ktRadial", 24, FULL_SIZE, num_frames=3, reference_matrix=FULL_SIZE)
    assert (plain.values == scaled.values).all()


def test_radial_beams_are_never_fewer_than_one_nor_more_than_nominal():
    assert matched_radial_beams(24, (20, 20), FULL_SIZE) == 1
    assert matched_radial_beams(4, FULL_SIZE, FULL_SIZE) == 75


def test_a_scaled_mask_keeps_the_nominal_undersampling_text():
    mask = make_mask("ktRadial", 24, (54, 60), reference_matrix=FULL_SIZE)
    assert mask.text == "Undersampling: 24x radial."


def test_the_training_sampler_draws_scaled_masks():
    sampler = MaskSampler(["Uniform"], [8], seed=0, reference_matrix=FULL_SIZE)
    assert sampler.sample((54, 60)).acs_width == 4
