"""ACS detection from masks and the low-resolution coil sensitivity estimate.

The phantom problem built here (an ellipse torso and heart seen by eight smooth coils) is the
test problem of the baseline reconstructions too (tests/model/test_baselines.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cardiomm.masks.acs import acs_lines, acs_square
from cardiomm.model.sensitivities import (
    acs_bounds,
    acs_region,
    acs_window,
    estimate_sensitivities,
)
from cardiomm.physics import ifft2c, rss
from tests.conftest import requires_cuda
from tests.model.phantom import (
    MATRIX,
    coil_correlation,
    make_inputs,
    make_problem,
    pattern_mask,
)


def central_sampled_run(values: np.ndarray) -> np.ndarray:
    """Indices of the contiguous run of fully sampled ky lines through the centre line."""
    full = values.all(axis=1)
    top = bottom = values.shape[0] // 2
    while top > 0 and full[top - 1]:
        top -= 1
    while bottom + 1 < values.shape[0] and full[bottom + 1]:
        bottom += 1
    return np.arange(top, bottom + 1)


def is_maximal_sampled_rectangle(values: np.ndarray, region: np.ndarray) -> bool:
    """Whether ``region`` is a sampled rectangle that no extra row or column keeps sampled."""
    rows, columns = np.flatnonzero(region.any(axis=1)), np.flatnonzero(region.any(axis=0))
    top, bottom, left, right = rows[0], rows[-1] + 1, columns[0], columns[-1] + 1
    if not values[top:bottom, left:right].all() or region.sum() != rows.size * columns.size:
        return False
    ky, kx = values.shape
    return not (
        (top > 0 and values[top - 1, left:right].all())
        or (bottom < ky and values[bottom, left:right].all())
        or (left > 0 and values[top:bottom, left - 1].all())
        or (right < kx and values[top:bottom, right].all())
    )


@pytest.mark.parametrize("matrix", [(48, 64), (47, 63), (64, 48), (51, 40)])
def test_acs_region_is_exactly_the_acs_lines_of_uniform_masks(matrix):
    values = pattern_mask("Uniform", 8, matrix)

    region = acs_region(torch.from_numpy(values)[None])

    assert torch.equal(region[0], torch.from_numpy(acs_lines(*matrix, width=20)))


@pytest.mark.parametrize("matrix", [(48, 64), (47, 63), (64, 48), (51, 40)])
@pytest.mark.parametrize(
    ("pattern", "acceleration"), [("Uniform", 4), ("ktGaussian", 4), ("ktGaussian", 8)]
)
def test_acs_region_is_the_run_of_full_lines_through_the_centre(matrix, pattern, acceleration):
    # Sampled lines that touch the ACS block are calibration data too and join the region.
    values = pattern_mask(pattern, acceleration, matrix)
    expected = np.zeros_like(values)
    expected[central_sampled_run(values)] = True

    region = acs_region(torch.from_numpy(values)[None])

    assert torch.equal(region[0], torch.from_numpy(expected))
    assert expected[acs_lines(*matrix, width=20)].all()


def test_acs_region_takes_in_a_sampled_line_next_to_the_acs_lines():
    # Uniform 4x on 47 lines samples line 12, right above the ACS block 13..32.
    values = pattern_mask("Uniform", 4, (47, 40))

    region = acs_region(torch.from_numpy(values)[None])[0]

    assert torch.equal(region.all(dim=1).nonzero().flatten(), torch.arange(12, 33))
    assert bool(region.any(dim=0).all())


@pytest.mark.parametrize("matrix", [(48, 64), (47, 63), (64, 48), (51, 40)])
@pytest.mark.parametrize("acceleration", [16, 24])
def test_acs_region_is_exactly_the_acs_square_of_sparse_radial_masks(matrix, acceleration):
    values = pattern_mask("ktRadial", acceleration, matrix)

    region = acs_region(torch.from_numpy(values)[None])

    assert torch.equal(region[0], torch.from_numpy(acs_square(*matrix, width=20)))


@pytest.mark.parametrize("matrix", [(48, 64), (47, 63), (64, 48), (51, 40)])
@pytest.mark.parametrize("acceleration", [4, 8])
def test_acs_region_of_dense_radial_masks_is_a_maximal_block_around_the_square(
    matrix, acceleration
):
    # At low R the beams fill rows and columns next to the square, which then join it.
    values = pattern_mask("ktRadial", acceleration, matrix)

    region = acs_region(torch.from_numpy(values)[None])[0].numpy()

    assert region[acs_square(*matrix, width=20)].all()
    assert is_maximal_sampled_rectangle(values, region)


def test_acs_region_is_the_centre_sample_when_the_centre_is_not_sampled():
    mask = torch.ones(1, 9, 10)
    mask[0, 4, 5] = 0

    region = acs_region(mask)

    assert region.sum() == 1 and bool(region[0, 4, 5])


def test_acs_region_covers_everything_for_a_fully_sampled_mask():
    assert bool(acs_region(torch.ones(2, 7, 12)).all())


def test_acs_region_is_found_per_batch_element():
    masks = [pattern_mask("Uniform", 8), pattern_mask("ktRadial", 16)]

    region = acs_region(torch.from_numpy(np.stack(masks)))

    assert torch.equal(region[0], torch.from_numpy(acs_lines(*MATRIX, 20)))
    assert torch.equal(region[1], torch.from_numpy(acs_square(*MATRIX, 20)))


def test_acs_bounds_are_top_bottom_left_right_exclusive():
    bounds = acs_bounds(torch.from_numpy(pattern_mask("ktRadial", 16, (48, 64)))[None])

    assert bounds.tolist() == [[14, 34, 22, 42]]


def test_acs_window_is_zero_outside_the_region_and_peaks_at_its_middle():
    bounds = torch.tensor([[14, 34, 0, 64]])

    window = acs_window(bounds, 48, 64)[0]

    assert bool((window[:14] == 0).all()) and bool((window[34:] == 0).all())
    assert window[14:34].min() > 0
    assert float(window.max()) == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(
    ("pattern", "acceleration"), [("Uniform", 4), ("ktGaussian", 8), ("ktRadial", 8)]
)
def test_sensitivities_have_unit_rss_inside_the_object(problem, pattern, acceleration):
    inputs = make_inputs(problem, [pattern_mask(pattern, acceleration)])

    maps = estimate_sensitivities(inputs.masked_kspace, inputs.mask)

    assert torch.allclose(rss(maps[0])[problem.support], torch.ones(()), atol=1e-4)


@pytest.mark.parametrize(
    ("pattern", "acceleration"), [("Uniform", 4), ("ktGaussian", 8), ("ktRadial", 8)]
)
def test_sensitivities_correlate_with_the_true_maps_inside_the_object(
    problem, pattern, acceleration
):
    inputs = make_inputs(problem, [pattern_mask(pattern, acceleration)])

    maps = estimate_sensitivities(inputs.masked_kspace, inputs.mask)

    correlation = coil_correlation(maps[0].to(torch.complex128), problem.sensitivities)
    assert float(correlation[problem.support].min()) > 0.95


def test_sensitivities_with_a_threshold_are_zero_in_the_background(problem):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4)])

    maps = estimate_sensitivities(inputs.masked_kspace, inputs.mask, object_threshold=0.05)

    corners = rss(maps[0])[[0, 0, -1, -1], [0, -1, 0, -1]]
    assert bool((corners == 0).all())


def test_sensitivities_without_threshold_have_unit_rss_everywhere(problem):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4)])

    maps = estimate_sensitivities(inputs.masked_kspace, inputs.mask, object_threshold=0.0)

    assert torch.allclose(rss(maps[0]), torch.ones(()), atol=1e-4)


@pytest.mark.parametrize("num_coils", [1, 2, 32])
def test_sensitivities_work_for_any_number_of_coils(num_coils):
    problem = make_problem(num_coils=num_coils)
    inputs = make_inputs(problem, [pattern_mask("ktGaussian", 8)])

    maps = estimate_sensitivities(inputs.masked_kspace, inputs.mask)

    assert maps.shape == (1, num_coils, *MATRIX) and maps.dtype == torch.complex64
    # With few coils part of the object is barely seen; test where the coils see it.
    seen = problem.reference > 0.1 * problem.reference.max()
    assert torch.allclose(rss(maps[0])[seen], torch.ones(()), atol=1e-4)


def test_sensitivities_of_a_single_coil_are_its_phase():
    single = make_problem(num_coils=1)
    inputs = make_inputs(single, [pattern_mask("Uniform", 4)])

    maps = estimate_sensitivities(inputs.masked_kspace, inputs.mask)[0, 0]

    seen = single.reference > 0.1 * single.reference.max()
    phase_error = (maps * ifft2c(single.kspace[0]).conj()).angle()
    assert torch.allclose(maps.abs()[seen], torch.ones(()), atol=1e-4)
    assert float(phase_error[seen].abs().max()) < 0.2


def test_sensitivities_are_constant_maps_when_only_the_centre_is_calibrated(problem):
    # A checkerboard samples the centre but none of its neighbours: one calibration sample.
    rows, columns = torch.meshgrid(torch.arange(MATRIX[0]), torch.arange(MATRIX[1]), indexing="ij")
    mask = ((rows + columns) % 2 == sum(size // 2 for size in MATRIX) % 2).float()[None]
    centre = problem.kspace[:, MATRIX[0] // 2, MATRIX[1] // 2]

    maps = estimate_sensitivities(problem.kspace[None] * mask[:, None], mask)[0]

    expected = centre / torch.linalg.vector_norm(centre)
    assert torch.allclose(maps, expected[:, None, None].expand_as(maps), atol=1e-5)


def test_sensitivities_are_zero_when_the_centre_is_not_sampled(problem):
    mask = torch.ones(1, *MATRIX)
    mask[0, MATRIX[0] // 2, MATRIX[1] // 2] = 0

    maps = estimate_sensitivities(problem.kspace[None] * mask[:, None], mask)

    assert bool((maps == 0).all())


def test_sensitivities_of_a_batch_equal_those_of_single_calls(problem):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 8), pattern_mask("ktRadial", 8)])

    together = estimate_sensitivities(inputs.masked_kspace, inputs.mask)
    apart = [
        estimate_sensitivities(inputs.masked_kspace[i : i + 1], inputs.mask[i : i + 1])
        for i in range(2)
    ]

    assert torch.allclose(together, torch.cat(apart), atol=1e-6)


def test_sensitivities_reject_an_unknown_method(problem):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 8)])

    with pytest.raises(ValueError, match="unknown sensitivity method"):
        estimate_sensitivities(inputs.masked_kspace, inputs.mask, method="espirit")


def test_sensitivities_reject_a_mask_of_the_wrong_shape(problem):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 8)])

    with pytest.raises(ValueError, match="does not match"):
        estimate_sensitivities(inputs.masked_kspace, inputs.mask[:, :-1])


@requires_cuda
def test_sensitivities_on_cuda_match_the_cpu(problem):
    inputs = make_inputs(problem, [pattern_mask("Uniform", 4), pattern_mask("ktRadial", 8)])

    on_cpu = estimate_sensitivities(inputs.masked_kspace, inputs.mask)
    on_gpu = estimate_sensitivities(inputs.masked_kspace.cuda(), inputs.mask.cuda())

    assert on_gpu.device.type == "cuda"
    assert torch.allclose(on_gpu.cpu(), on_cpu, atol=1e-5)
