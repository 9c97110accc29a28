"""What seeds CardioMM's sensitivity net (model.calibration): one frame's ACS region, or
ESPIRiT on the time-averaged k-space of the frames the network sees."""

import numpy as np
import pytest
import torch

from cardiomm.masks import make_mask
from cardiomm.model.calibration import estimate_sensitivities_from_frames
from cardiomm.model.config import ModelConfig
from cardiomm.model.network import CardioMMNet
from cardiomm.physics import ifft2c, rss
from tests.model.conftest import TEXT_DIM, embeddings

RADIUS = 1
FRAMES = 2 * RADIUS + 1
SHAPE = (24, 32)


def _network(temporal: str, calibration: str) -> CardioMMNet:
    torch.manual_seed(0)
    config = ModelConfig(temporal=temporal, window_radius=RADIUS, calibration=calibration)
    return CardioMMNet(config, text_dim=TEXT_DIM).eval()


def _window(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """masked k-space complex64 (1, F, 4, H, W) and masks (1, F, H, W): a ktGaussian mask
    that samples other lines in every frame, a few ACS lines."""
    generator = torch.Generator().manual_seed(seed)
    kspace = torch.randn(1, FRAMES, 4, *SHAPE, generator=generator, dtype=torch.complex64)
    values = make_mask("ktGaussian", 4, SHAPE, num_frames=FRAMES, acs_width=6).values
    mask = torch.from_numpy(values.astype(np.float32)).unsqueeze(0).contiguous()
    return kspace * mask[:, :, None], mask


def _maps(network: CardioMMNet, masked_kspace: torch.Tensor, mask: torch.Tensor):
    undersampling, metadata = embeddings(1)
    return network.window_sensitivities(
        masked_kspace,
        mask,
        network._project(network.undersampling_projection, undersampling),
        network._project(network.metadata_projection, metadata),
    )


def test_an_unknown_calibration_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"calibration must be one of .*espirit-frames"):
        ModelConfig(calibration="walsh")


def test_the_default_calibration_is_the_released_one_frame_acs_seed():
    assert ModelConfig().calibration == "acs"


def test_untrained_espirit_frames_maps_are_espirit_on_the_windows_time_average():
    masked_kspace, mask = _window()
    network = _network("window", "espirit-frames")
    with torch.no_grad():
        maps = _maps(network, masked_kspace, mask)
    expected = estimate_sensitivities_from_frames(masked_kspace, mask)
    torch.testing.assert_close(maps, expected)


def test_espirit_frames_maps_use_the_neighbouring_frames_samples():
    masked_kspace, mask = _window()
    other = masked_kspace.clone()
    other[:, 0] = _window(seed=3)[0][:, 0]
    network = _network("window", "espirit-frames")
    with torch.no_grad():
        change = (_maps(network, masked_kspace, mask) - _maps(network, other, mask)).abs().max()
    assert change > 1e-4


def test_acs_maps_of_a_window_read_only_its_centre_frame():
    masked_kspace, mask = _window()
    other = masked_kspace.clone()
    other[:, 0] = _window(seed=3)[0][:, 0]
    network = _network("window", "acs")
    with torch.no_grad():
        assert torch.equal(_maps(network, masked_kspace, mask), _maps(network, other, mask))


@pytest.mark.parametrize("temporal", ["none", "window"])
def test_an_espirit_seeded_network_still_returns_the_zero_filled_image_untrained(temporal):
    masked_kspace, mask = _window()
    network = _network(temporal, "espirit-frames")
    if temporal == "none":
        masked_kspace, mask = masked_kspace[:, RADIUS], mask[:, RADIUS]
        centre = masked_kspace
    else:
        centre = masked_kspace[:, RADIUS]
    with torch.no_grad():
        image = network(masked_kspace, mask, *embeddings(1))
    torch.testing.assert_close(image, rss(ifft2c(centre)).to(torch.float32), rtol=0, atol=1e-6)
