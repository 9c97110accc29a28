"""The three CMRxRecon 2025 pattern families, as the challenge defines them."""

import math

import numpy as np
import pytest

from cardiomm.masks import MaskPattern, make_mask
from cardiomm.masks.acs import centred_block
from cardiomm.masks.patterns import radial_beam_count

ACCELERATIONS = [4, 8, 16, 24]
CARTESIAN = [MaskPattern.UNIFORM, MaskPattern.KT_GAUSSIAN]
ALL_PATTERNS = [*CARTESIAN, MaskPattern.KT_RADIAL]
# A cine short-axis matrix: 2x oversampled readout, as distributed.
CINE_MATRIX = (204, 512)


@pytest.mark.parametrize("pattern", CARTESIAN)
@pytest.mark.parametrize("acceleration", ACCELERATIONS)
def test_cartesian_masks_hit_the_nominal_acceleration_within_the_acs_allowance(
    pattern, acceleration
):
    num_ky, acs_width = CINE_MATRIX[0], 20
    mask = make_mask(pattern, acceleration, CINE_MATRIX, num_frames=6, acs_width=acs_width)
    # Pattern lines: ceil(ny / R) (Uniform) or round(ny / R) (ktGaussian), give or take one;
    # the ACS block may add up to acs_width lines on top.
    lowest = (num_ky / acceleration - 1) / num_ky
    highest = (num_ky / acceleration + 1 + acs_width) / num_ky
    assert lowest <= mask.sampling_fraction <= highest


@pytest.mark.parametrize("pattern", CARTESIAN)
@pytest.mark.parametrize("acceleration", ACCELERATIONS)
def test_cartesian_masks_without_acs_sample_one_line_in_r(pattern, acceleration):
    mask = make_mask(pattern, acceleration, CINE_MATRIX, num_frames=4, acs_width=0)
    lines_per_frame = mask.values.any(axis=2).sum(axis=1)
    assert np.all(np.abs(lines_per_frame - CINE_MATRIX[0] / acceleration) <= 1)


@pytest.mark.parametrize("num_ky", [144, 162, 204, 246])
@pytest.mark.parametrize("acceleration", ACCELERATIONS)
def test_radial_masks_hit_the_nominal_acceleration_on_challenge_matrices(num_ky, acceleration):
    # The 0.6 R rule calibrates the beam count for 2x-oversampled matrices (kx = 512);
    # on such matrices the rate without ACS lies within 20 % of nominal.
    mask = make_mask(MaskPattern.KT_RADIAL, acceleration, (num_ky, 512), num_frames=3, acs_width=0)
    assert 0.8 * acceleration <= mask.true_acceleration <= 1.2 * acceleration


@pytest.mark.parametrize("acceleration", ACCELERATIONS)
def test_radial_masks_have_floor_180_over_0_6r_beams(acceleration):
    assert radial_beam_count(acceleration) == math.floor(180 / (0.6 * acceleration))


@pytest.mark.parametrize("pattern", CARTESIAN)
@pytest.mark.parametrize("matrix", [CINE_MATRIX, (87, 384), (33, 48)])
def test_cartesian_masks_include_the_acs_lines_in_every_frame(pattern, matrix):
    mask = make_mask(pattern, 16, matrix, num_frames=5, acs_width=20)
    acs = centred_block(matrix[0], 20)
    assert mask.values[:, acs, :].all()


@pytest.mark.parametrize("matrix", [CINE_MATRIX, (87, 384), (33, 48)])
def test_radial_masks_include_the_acs_square_in_every_frame(matrix):
    mask = make_mask(MaskPattern.KT_RADIAL, 24, matrix, num_frames=5, acs_width=20)
    square = (slice(None), centred_block(matrix[0], 20), centred_block(matrix[1], 20))
    assert mask.values[square].all()


def test_acs_block_is_centred_on_the_zero_frequency():
    block = centred_block(246, 20)
    assert (block.start, block.stop) == (246 // 2 - 10, 246 // 2 + 10)
    odd = centred_block(87, 20)
    assert odd.start <= 87 // 2 < odd.stop


def test_uniform_samples_every_rth_line_from_index_zero():
    mask = make_mask(MaskPattern.UNIFORM, 8, (100, 16), acs_width=0)
    assert np.flatnonzero(mask.frame(0)[:, 0]).tolist() == list(range(0, 100, 8))


def test_uniform_is_the_same_in_every_frame():
    mask = make_mask(MaskPattern.UNIFORM, 8, CINE_MATRIX, num_frames=4)
    assert all(np.array_equal(mask.frame(0), mask.frame(t)) for t in range(4))


@pytest.mark.parametrize("pattern", [MaskPattern.KT_GAUSSIAN, MaskPattern.KT_RADIAL])
def test_kt_masks_differ_across_frames(pattern):
    mask = make_mask(pattern, 8, CINE_MATRIX, num_frames=6)
    frames = [mask.frame(t) for t in range(6)]
    assert all(not np.array_equal(frames[0], frame) for frame in frames[1:])


def test_cartesian_masks_sample_whole_readout_lines():
    mask = make_mask(MaskPattern.KT_GAUSSIAN, 8, CINE_MATRIX, num_frames=3)
    per_line = mask.values.sum(axis=2)
    assert set(np.unique(per_line)) <= {0, CINE_MATRIX[1]}


def test_gaussian_samples_the_centre_more_densely_than_the_edges():
    mask = make_mask(MaskPattern.KT_GAUSSIAN, 8, (200, 8), num_frames=200, acs_width=0)
    line_rate = mask.values[:, :, 0].mean(axis=0)
    centre, edges = line_rate[80:120].mean(), np.r_[line_rate[:40], line_rate[160:]].mean()
    assert centre > 1.5 * edges


def test_radial_beams_pass_through_the_zero_frequency():
    mask = make_mask(MaskPattern.KT_RADIAL, 24, CINE_MATRIX, num_frames=4, acs_width=0)
    assert mask.values[:, CINE_MATRIX[0] // 2, CINE_MATRIX[1] // 2].all()


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_masks_are_reproducible_for_a_seed(pattern):
    first = make_mask(pattern, 16, (87, 96), num_frames=4, seed=7)
    second = make_mask(pattern, 16, (87, 96), num_frames=4, seed=7)
    assert np.array_equal(first.values, second.values)


def test_gaussian_masks_change_with_the_seed():
    first = make_mask(MaskPattern.KT_GAUSSIAN, 8, CINE_MATRIX, num_frames=2, seed=1)
    second = make_mask(MaskPattern.KT_GAUSSIAN, 8, CINE_MATRIX, num_frames=2, seed=2)
    assert not np.array_equal(first.values, second.values)


@pytest.mark.parametrize("pattern", ALL_PATTERNS)
def test_a_single_frame_can_be_regenerated_from_its_index(pattern):
    series = make_mask(pattern, 8, (87, 96), num_frames=8, seed=3)
    single = make_mask(pattern, 8, (87, 96), num_frames=1, seed=3, first_frame=5)
    assert np.array_equal(series.frame(5), single.frame(0))


@pytest.mark.parametrize(
    ("pattern", "acceleration", "text"),
    [
        (MaskPattern.UNIFORM, 8, "Undersampling: 8x uniform."),
        (MaskPattern.KT_GAUSSIAN, 16, "Undersampling: 16x random."),
        (MaskPattern.KT_RADIAL, 24, "Undersampling: 24x radial."),
    ],
)
def test_masks_produce_their_undersampling_text(pattern, acceleration, text):
    assert make_mask(pattern, acceleration, (64, 64)).text == text


def test_mask_reports_its_true_sampling_fraction():
    mask = make_mask(MaskPattern.UNIFORM, 4, (100, 10), acs_width=0)
    assert mask.sampling_fraction == pytest.approx(25 / 100)
    assert mask.true_acceleration == pytest.approx(4.0)


def test_mask_name_follows_the_official_file_naming():
    assert make_mask("ktGaussian", 16, (64, 64)).name == "ktGaussian16"


@pytest.mark.parametrize("name", ["ktGaussian", "random", "RANDOM", "KTGAUSSIAN"])
def test_pattern_names_accept_official_and_text_spellings(name):
    assert MaskPattern.parse(name) is MaskPattern.KT_GAUSSIAN


def test_unknown_pattern_names_are_rejected_with_the_choices():
    with pytest.raises(ValueError, match="ktRadial"):
        MaskPattern.parse("spiral")


@pytest.mark.parametrize("acceleration", [0, -4, 2.5])
def test_invalid_accelerations_are_rejected(acceleration):
    with pytest.raises(ValueError, match="acceleration"):
        make_mask(MaskPattern.UNIFORM, acceleration, (64, 64))


def test_mask_tensor_is_float_zero_one_with_frames_first():
    mask = make_mask(MaskPattern.UNIFORM, 4, (16, 12), num_frames=2, acs_width=2)
    tensor = mask.to_tensor()
    assert tensor.shape == (2, 16, 12)
    assert set(tensor.unique().tolist()) == {0.0, 1.0}
