"""ESPIRiT calibration from the time-averaged k-space."""

from __future__ import annotations

import numpy as np
import pytest

from cardiomm.classical import (
    CalibrationError,
    EspiritSettings,
    calibration_width,
    espirit_maps,
    time_averaged_kspace,
)


def test_time_average_divides_by_how_often_a_sample_was_taken() -> None:
    kspace = np.ones((4, 1, 2, 2), dtype=np.complex64) * np.arange(1, 5)[:, None, None, None]
    masks = np.zeros((4, 2, 2), dtype=np.float32)
    masks[:2, 0, 0] = 1  # frames 1 and 2 (values 1, 2)
    masks[3, 1, 1] = 1  # frame 4 only
    average = time_averaged_kspace(kspace, masks)[0]
    assert average[0, 0] == pytest.approx(1.5)
    assert average[1, 1] == pytest.approx(4.0)
    assert average[0, 1] == 0


def test_calibration_square_is_the_centre_sampled_in_some_frame() -> None:
    masks = np.zeros((2, 40, 40), dtype=bool)
    masks[0, 14:26, :] = True  # 12 ACS lines in frame 0
    masks[1, 12:28, 12:28] = True  # a 16 x 16 square in frame 1
    assert calibration_width(masks) == 16


def test_a_centre_too_small_for_espirit_is_refused_by_name() -> None:
    masks = np.zeros((1, 40, 40), dtype=bool)
    masks[0, 18:22, :] = True
    with pytest.raises(CalibrationError, match="4 x 4"):
        calibration_width(masks)


@pytest.mark.parametrize(("pattern", "acceleration"), [("Uniform", 4), ("ktRadial", 8)])
def test_espirit_maps_match_the_true_coil_maps(phantom, pattern: str, acceleration: int) -> None:
    masks = phantom.masks(pattern, acceleration, acs=20)
    maps = espirit_maps(phantom.kspace * masks[:, None], masks, EspiritSettings(crop=0.0))
    inside = phantom.support
    # ESPIRiT fixes the phase relative to coil 0; put the truth in the same frame.
    truth = phantom.maps * np.exp(-1j * np.angle(phantom.maps[0]))[None]
    estimate = maps * np.exp(-1j * np.angle(maps[0]))[None]
    error = np.linalg.norm((estimate - truth)[:, inside]) / np.linalg.norm(truth[:, inside])
    assert error < 0.03
    rss = np.sqrt((np.abs(maps) ** 2).sum(axis=0))
    np.testing.assert_allclose(rss[inside], 1.0, atol=0.02)


def test_the_time_average_calibrates_better_than_one_kt_frame(phantom) -> None:
    masks = phantom.masks("ktGaussian", 8, acs=8)
    kspace = phantom.kspace * masks[:, None]
    inside = phantom.support
    truth = phantom.maps * np.exp(-1j * np.angle(phantom.maps[0]))[None]

    def error(maps: np.ndarray) -> float:
        estimate = maps * np.exp(-1j * np.angle(maps[0]))[None]
        return float(
            np.linalg.norm((estimate - truth)[:, inside]) / np.linalg.norm(truth[:, inside])
        )

    settings = EspiritSettings(kernel_width=4, crop=0.0)
    averaged = error(espirit_maps(kspace, masks, settings))
    one_frame = error(espirit_maps(kspace[:1], masks[:1], settings))
    assert averaged < one_frame
