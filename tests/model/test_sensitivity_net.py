"""The learned sensitivity net: where it works (the calibration grid) and how it starts."""

import dataclasses

import torch

from cardiomm.masks import make_mask
from cardiomm.model.calibration import estimate_sensitivities_from_frames
from cardiomm.model.config import ModelConfig
from cardiomm.model.sensitivities import acs_bounds, acs_region, normalise_by_rss
from cardiomm.model.sensitivity_net import (
    MIN_CALIBRATION_SIZE,
    SensitivityNetwork,
    calibration_grid,
)
from cardiomm.physics import crop_kspace_centre, ifft2c, pad_kspace_centre, rss
from tests.model.conftest import undersampled_batch
from tests.model.phantom import MATRIX, cine_mask, make_cine_problem


def _mask(pattern: str, matrix: tuple[int, int], acs_width: int) -> torch.Tensor:
    values = make_mask(pattern, 8, matrix, acs_width=acs_width).frame(0)
    return torch.from_numpy(values.astype("float32"))[None]


def _inside_centred_block(indices: torch.Tensor, size: int, side: int) -> bool:
    start = size // 2 - side // 2
    return start <= int(indices.min()) and int(indices.max()) < start + side


def test_the_calibration_grid_holds_the_acs_lines():
    mask = _mask("Uniform", (60, 64), acs_width=24)
    height, _ = calibration_grid(acs_bounds(mask), (60, 64))
    rows, _ = torch.nonzero(acs_region(mask)[0], as_tuple=True)
    assert _inside_centred_block(rows, 60, height)


def test_the_calibration_grid_holds_a_radial_acs_square_of_a_square_matrix():
    mask = torch.zeros(1, 64, 64)
    mask[:, 22:42, 22:42] = 1
    height, width = calibration_grid(acs_bounds(mask), (64, 64))
    rows, columns = torch.nonzero(acs_region(mask)[0], as_tuple=True)
    assert _inside_centred_block(rows, 64, height)
    assert _inside_centred_block(columns, 64, width)


def test_the_calibration_grid_is_at_least_the_minimum_size():
    mask = torch.zeros(1, 60, 64)
    mask[:, 28:32, 30:34] = 1
    assert calibration_grid(acs_bounds(mask), (60, 64)) == (
        MIN_CALIBRATION_SIZE,
        MIN_CALIBRATION_SIZE,
    )


def test_the_calibration_grid_never_exceeds_the_matrix():
    mask = _mask("Uniform", (12, 10), acs_width=4)
    assert calibration_grid(acs_bounds(mask), (12, 10)) == (12, 10)


def test_the_calibration_grid_spans_every_acs_region_of_a_batch():
    narrow, wide = _mask("Uniform", (60, 64), 4), _mask("Uniform", (60, 64), 30)
    bounds = acs_bounds(torch.cat((narrow, wide)))
    assert calibration_grid(bounds, (60, 64))[0] >= 30


def test_the_calibration_grid_has_the_same_resolution_along_both_axes():
    # 20 ACS lines of a 246 x 256 cine: a 20-sample block along ky, so 21 along kx.
    mask = torch.zeros(1, 246, 256)
    mask[:, 113:133] = 1
    assert calibration_grid(acs_bounds(mask), (246, 256)) == (20, 21)


def test_an_untrained_sensitivity_net_gives_the_low_resolution_acs_estimate():
    plain = {"use_prompts": False, "use_metadata": False}
    network = SensitivityNetwork(dataclasses.replace(ModelConfig().sensitivity_net, **plain))
    masked_kspace, mask = undersampled_batch(2, 4, 40, 36)
    grid = calibration_grid(acs_bounds(mask), (40, 36))
    calibration = crop_kspace_centre(masked_kspace * acs_region(mask).unsqueeze(1), grid)
    expected = normalise_by_rss(ifft2c(pad_kspace_centre(calibration, (40, 36))))
    torch.testing.assert_close(network(masked_kspace, mask), expected, rtol=1e-4, atol=1e-5)


def _plain_network(coil_batching: bool = True) -> SensitivityNetwork:
    plain = {"use_prompts": False, "use_metadata": False}
    config = dataclasses.replace(ModelConfig().sensitivity_net, **plain)
    return SensitivityNetwork(config, coil_batching)


def test_an_untrained_sensitivity_net_given_frames_gives_the_frame_estimate():
    cine = make_cine_problem(num_frames=4)
    mask = cine_mask("ktGaussian", 16, MATRIX, 4)[None]
    masked_kspace = cine.kspace[None] * mask[:, :, None]

    maps = _plain_network()(masked_kspace, mask)

    expected = estimate_sensitivities_from_frames(masked_kspace, mask)
    torch.testing.assert_close(maps, expected, rtol=1e-4, atol=1e-5)


def test_a_trained_sensitivity_net_given_frames_corrects_the_seed_and_keeps_unit_rss():
    cine = make_cine_problem(num_frames=2)
    mask = cine_mask("ktRadial", 24, MATRIX, 2)[None]
    masked_kspace = cine.kspace[None] * mask[:, :, None]
    network = _plain_network()
    torch.manual_seed(0)
    with torch.no_grad():
        for parameter in network.parameters():
            parameter.normal_(std=0.05)

    maps = network(masked_kspace, mask)

    seed = estimate_sensitivities_from_frames(masked_kspace, mask)
    assert float((maps - seed).abs().max()) > 1e-3
    torch.testing.assert_close(rss(maps), torch.ones(1, *MATRIX), rtol=0, atol=1e-4)
