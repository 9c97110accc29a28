"""The `none` text encoder: no metadata conditioning, parsed undersampling features."""

import pytest
import torch

from cardiomm.masks import MaskPattern, make_mask
from cardiomm.text import build_text_encoder, parse_undersampling_text

METADATA = (
    "Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida. Modality: cine, short-axis."
)


@pytest.fixture
def encoder():
    return build_text_encoder("none")


def test_none_encoder_does_not_condition_on_metadata(encoder):
    assert encoder.name == "none"
    assert not encoder.conditions_on_metadata


def test_none_encoder_turns_metadata_texts_into_zeros(encoder):
    other = METADATA.replace("Siemens", "Philips")
    assert torch.equal(encoder.encode([METADATA, other]), torch.zeros(2, encoder.dim))


def test_none_encoder_distinguishes_8x_uniform_from_16x_random(encoder):
    uniform8, random16 = encoder.encode(
        ["Undersampling: 8x uniform.", "Undersampling: 16x random."]
    )
    assert not torch.equal(uniform8, random16)
    assert uniform8[:3].tolist() == [1.0, 0.0, 0.0]
    assert random16[:3].tolist() == [0.0, 1.0, 0.0]


def test_none_encoder_features_grow_with_the_acceleration(encoder):
    features = encoder.encode([f"Undersampling: {r}x radial." for r in (4, 8, 16, 24)])
    assert (features[:, 3].diff() < 0).all()  # 1/R
    assert (features[:, 4].diff() > 0).all()  # R/24
    torch.testing.assert_close(features[-1, 4:], torch.ones(2))


def test_none_encoder_reads_the_masks_own_undersampling_text(encoder):
    mask = make_mask("ktRadial", 24, (32, 32))
    assert parse_undersampling_text(mask.text) == (MaskPattern.KT_RADIAL, 24.0)
    assert encoder.encode([mask.text])[0, 2] == 1.0


@pytest.mark.parametrize(
    "text", ["Undersampling: fast.", "Undersampling: 8x spiral.", "Undersampling: 0.5x uniform."]
)
def test_none_encoder_rejects_unparsable_undersampling_text_by_name(encoder, text):
    with pytest.raises(ValueError, match=text.replace(".", r"\.")):
        encoder.encode([text])


def test_none_encoder_output_is_float32_with_no_grad(encoder):
    with torch.enable_grad():
        features = encoder.encode(["Undersampling: 4x uniform.", METADATA])
    assert features.shape == (2, encoder.dim)
    assert features.dtype == torch.float32
    assert not features.requires_grad
