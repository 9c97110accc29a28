"""Sensitivities from all frames of a slice: time-averaged k-space and ESPIRiT in torch.

The reference is sigpy's ESPIRiT as the classical baselines run it
(cardiomm.classical.calibration.espirit_maps: the time-averaged k-space, its largest centred
fully sampled square), without its crop so that every pixel of the object has a map. Errors
are :func:`tests.model.phantom.map_error`: relative, inside the object, after removing the
per-pixel phase by which maps are defined.
"""

from __future__ import annotations

import pytest
import torch

from cardiomm.classical.calibration import EspiritSettings, espirit_maps
from cardiomm.masks.acs import acs_lines
from cardiomm.model.calibration import (
    EspiritOptions,
    estimate_sensitivities_from_frames,
    time_averaged_kspace,
)
from cardiomm.model.sensitivities import estimate_sensitivities
from cardiomm.physics import rss
from tests.conftest import requires_cuda
from tests.model.phantom import MATRIX, cine_mask, make_cine_problem, map_error

NUM_FRAMES = 8


@pytest.fixture(scope="module")
def cine():
    return make_cine_problem(num_frames=NUM_FRAMES)


def true_maps(problem) -> torch.Tensor:
    return problem.sensitivities / rss(problem.sensitivities, dim=0)


def sigpy_espirit_error(problem, mask: torch.Tensor) -> float:
    masked = (problem.kspace * mask[:, None]).numpy()
    maps = espirit_maps(masked, mask.numpy() > 0.5, EspiritSettings(crop=0.0))
    return map_error(torch.from_numpy(maps), true_maps(problem), problem.support)


def frames_error(problem, mask: torch.Tensor, **settings) -> float:
    masked = (problem.kspace * mask[:, None])[None]
    maps = estimate_sensitivities_from_frames(masked, mask[None], **settings)[0]
    return map_error(maps, true_maps(problem), problem.support)


def test_with_few_acs_lines_per_frame_the_frame_estimate_beats_sigpy_espirit(cine):
    # Eight ACS lines per frame and different Gaussian lines in every frame: the frames'
    # union fills a wider centre than one frame's ACS, and calibrating along its length
    # pays where sigpy's square cannot.
    mask = cine_mask("ktGaussian", 8, MATRIX, NUM_FRAMES, acs_width=8)

    assert frames_error(cine, mask) <= sigpy_espirit_error(cine, mask)


@pytest.mark.parametrize(
    ("pattern", "acceleration"), [("Uniform", 8), ("ktGaussian", 16), ("ktRadial", 24)]
)
def test_with_20_acs_lines_the_frame_estimate_is_as_accurate_as_sigpy_espirit(
    cine, pattern, acceleration
):
    mask = cine_mask(pattern, acceleration, MATRIX, NUM_FRAMES)

    # The same block and kernel as sigpy: equal up to float32 rounding (1e-6 measured).
    assert frames_error(cine, mask) <= 1.001 * sigpy_espirit_error(cine, mask)


@pytest.mark.parametrize(
    ("pattern", "acceleration"), [("Uniform", 8), ("ktGaussian", 16), ("ktRadial", 24)]
)
def test_the_frame_estimate_is_more_accurate_than_one_frames_low_resolution_estimate(
    cine, pattern, acceleration
):
    mask = cine_mask(pattern, acceleration, MATRIX, NUM_FRAMES)
    one_frame = estimate_sensitivities(cine.kspace[:1] * mask[:1, None], mask[:1])[0]

    old_error = map_error(one_frame, true_maps(cine), cine.support)

    assert frames_error(cine, mask) < 0.5 * old_error


@pytest.mark.parametrize("frames", ["one frame", "frameless"])
def test_a_single_frame_is_at_least_as_accurate_as_the_low_resolution_estimate(cine, frames):
    mask = cine_mask("ktGaussian", 8, MATRIX, 1)
    masked = cine.kspace[:1] * mask[:, None]
    if frames == "one frame":
        maps = estimate_sensitivities_from_frames(masked[None], mask[None])[0]
    else:
        maps = estimate_sensitivities_from_frames(masked, mask)[0]
    lowres = estimate_sensitivities(masked, mask)[0]

    truth = true_maps(cine)
    assert map_error(maps, truth, cine.support) <= map_error(lowres, truth, cine.support)


def test_acs_lines_alone_in_every_frame_give_accurate_maps(cine):
    lines = torch.from_numpy(acs_lines(*MATRIX, 20)).to(torch.float32)
    mask = lines.expand(NUM_FRAMES, *MATRIX).clone()

    assert frames_error(cine, mask) < 0.02


def test_the_frame_estimate_has_the_batch_coil_shape_and_unit_rss(cine):
    mask = cine_mask("ktRadial", 24, MATRIX, NUM_FRAMES)
    masked = (cine.kspace * mask[:, None]).expand(2, -1, -1, -1, -1)

    maps = estimate_sensitivities_from_frames(masked, mask.expand(2, -1, -1, -1))

    assert maps.shape == (2, cine.kspace.shape[1], *MATRIX) and maps.dtype == torch.complex64
    torch.testing.assert_close(rss(maps), torch.ones(2, *MATRIX), atol=1e-4, rtol=0)


def test_the_frame_estimate_gives_the_same_bits_twice(cine):
    mask = cine_mask("ktGaussian", 16, MATRIX, NUM_FRAMES)
    masked = (cine.kspace * mask[:, None])[None]

    first = estimate_sensitivities_from_frames(masked, mask[None])
    second = estimate_sensitivities_from_frames(masked, mask[None])

    assert torch.equal(first, second)


def test_a_batch_gives_each_item_its_own_maps(cine):
    masks = torch.stack(
        [cine_mask(p, r, MATRIX, NUM_FRAMES) for p, r in [("Uniform", 8), ("ktRadial", 24)]]
    )
    masked = cine.kspace[None] * masks[:, :, None]

    together = estimate_sensitivities_from_frames(masked, masks)

    for item in range(2):
        alone = estimate_sensitivities_from_frames(masked[item : item + 1], masks[item : item + 1])
        torch.testing.assert_close(together[item : item + 1], alone, atol=1e-5, rtol=0)


def test_one_mask_for_all_frames_broadcasts(cine):
    mask = cine_mask("Uniform", 8, MATRIX, 1)[None]
    masked = (cine.kspace * mask[0, :, None])[None]

    shared = estimate_sensitivities_from_frames(masked, mask)
    expanded = estimate_sensitivities_from_frames(masked, mask.expand(1, NUM_FRAMES, -1, -1))

    assert torch.equal(shared, expanded)


def test_the_time_average_divides_each_location_by_the_frames_that_sampled_it():
    frame_values = torch.arange(1, 4).view(1, 3, 1, 1, 1)
    kspace = torch.ones(1, 3, 1, 2, 2, dtype=torch.complex64) * frame_values
    mask = torch.tensor([[[[1, 0], [0, 0]], [[1, 1], [0, 0]], [[0, 1], [0, 0]]]]).float()

    average, sampled = time_averaged_kspace(kspace * mask[:, :, None], mask)

    expected = torch.tensor([[[1.5, 2.5], [0.0, 0.0]]], dtype=torch.complex64)
    torch.testing.assert_close(average[0], expected)
    assert torch.equal(sampled[0], torch.tensor([[1.0, 1.0], [0.0, 0.0]]))


def test_an_unsampled_centre_gives_all_zero_maps(cine):
    mask = torch.ones(NUM_FRAMES, *MATRIX)
    mask[:, MATRIX[0] // 2] = 0

    maps = estimate_sensitivities_from_frames((cine.kspace * mask[:, None])[None], mask[None])

    assert bool((maps == 0).all())


def test_lowres_method_is_the_windowed_estimate_of_the_average(cine):
    mask = cine_mask("Uniform", 8, MATRIX, NUM_FRAMES)
    masked = cine.kspace * mask[:, None]
    average, _ = time_averaged_kspace(masked[None], mask[None])

    lowres = estimate_sensitivities_from_frames(masked[None], mask[None], method="acs_lowres")

    # A Uniform mask's 20 ACS lines: the 20 x 20 block is narrower than the strip the
    # single-frame estimate windows, so only the coil-vector directions agree closely.
    single = estimate_sensitivities(average, mask[:1])
    assert map_error(lowres[0], single[0], cine.support) < 0.1


def test_an_unknown_method_is_refused(cine):
    mask = cine_mask("Uniform", 8, MATRIX, NUM_FRAMES)
    with pytest.raises(ValueError, match="unknown frame sensitivity method 'sense'"):
        estimate_sensitivities_from_frames(cine.kspace[None], mask[None], method="sense")


def test_a_mask_that_does_not_match_the_frames_is_refused(cine):
    mask = cine_mask("Uniform", 8, MATRIX, NUM_FRAMES)
    with pytest.raises(ValueError, match=r"mask shape \(1, 7, 64, 80\) does not broadcast"):
        estimate_sensitivities_from_frames(cine.kspace[None], mask[None, :7])


@requires_cuda
def test_the_frame_estimate_agrees_on_cpu_and_gpu(cine):
    mask = cine_mask("ktRadial", 24, MATRIX, NUM_FRAMES)
    masked = (cine.kspace * mask[:, None])[None]

    on_cpu = estimate_sensitivities_from_frames(masked, mask[None])
    on_gpu = estimate_sensitivities_from_frames(masked.cuda(), mask[None].cuda())

    torch.testing.assert_close(on_gpu.cpu(), on_cpu, atol=1e-4, rtol=0)


def test_a_crop_zeros_the_background_and_keeps_the_object(cine):
    mask = cine_mask("ktRadial", 24, MATRIX, NUM_FRAMES)
    masked = (cine.kspace * mask[:, None])[None]

    uncropped = estimate_sensitivities_from_frames(masked, mask[None])[0]
    crop = EspiritOptions(crop=0.95)
    cropped = estimate_sensitivities_from_frames(masked, mask[None], options=crop)[0]

    assert bool((rss(cropped)[0, 0] == 0) and (rss(cropped)[-1, -1] == 0))
    torch.testing.assert_close(cropped[:, cine.support], uncropped[:, cine.support])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"kernel_width": 1}, "kernel_width must be >= 2, got 1"),
        ({"singular_threshold": 1.0}, r"singular_threshold must be in \(0, 1\), got 1.0"),
        ({"power_iterations": 0}, "power_iterations must be >= 1, got 0"),
        ({"crop": -0.1}, r"crop must be in \[0, 1\), got -0.1"),
    ],
)
def test_espirit_options_out_of_range_are_refused(setting, message):
    with pytest.raises(ValueError, match=message):
        EspiritOptions(**setting)
