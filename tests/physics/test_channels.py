import pytest
import torch

from cardiomm.physics import channels_to_complex, complex_to_channels
from tests.conftest import random_complex


def test_complex_to_channels_puts_real_and_imag_on_their_own_axis(generator):
    data = random_complex((2, 5, 7), generator)
    channels = complex_to_channels(data)
    assert channels.shape == (2, 2, 5, 7)
    torch.testing.assert_close(channels[:, 0], data.real)
    torch.testing.assert_close(channels[:, 1], data.imag)


def test_complex_to_channels_returns_contiguous_memory(generator):
    # A transposed view is the case that gives Opacus wrong per-sample gradients.
    data = random_complex((3, 6, 5), generator).transpose(-1, -2)
    assert complex_to_channels(data).is_contiguous()


def test_channels_to_complex_inverts_complex_to_channels(generator):
    data = random_complex((4, 9, 8), generator)
    restored = channels_to_complex(complex_to_channels(data))
    assert restored.is_contiguous()
    torch.testing.assert_close(restored, data)


def test_channel_axis_can_be_chosen(generator):
    data = random_complex((4, 9, 8), generator)
    channels = complex_to_channels(data, channel_dim=1)
    assert channels.shape == (4, 2, 9, 8)
    torch.testing.assert_close(channels_to_complex(channels, channel_dim=1), data)


def test_channels_to_complex_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match="2 channels"):
        channels_to_complex(torch.zeros(3, 3, 8, 8))
