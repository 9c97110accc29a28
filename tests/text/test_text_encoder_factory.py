"""Building text encoders by name or from configs/text, and keeping them out of model state."""

import copy
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from cardiomm.text import (
    TEXT_ENCODER_NAMES,
    StructuredEncoder,
    build_text_encoder,
    build_text_encoder_from_config,
)

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "text"


def test_unknown_encoder_name_is_rejected_with_the_choices():
    with pytest.raises(ValueError, match="minilm"):
        build_text_encoder("bert")


def test_clip_path_given_to_another_encoder_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="only used by the clip"):
        build_text_encoder("none", clip_path=tmp_path)


def test_every_encoder_has_a_config_named_after_it():
    for name in TEXT_ENCODER_NAMES:
        assert OmegaConf.load(CONFIGS / f"{name}.yaml").name == name


def test_clip_config_requires_a_path():
    config = OmegaConf.load(CONFIGS / "clip.yaml")
    assert OmegaConf.is_missing(config, "path")


def test_clip_config_without_a_path_fails_before_loading_anything():
    with pytest.raises(ValueError, match=r"text\.path"):
        build_text_encoder_from_config(OmegaConf.load(CONFIGS / "clip.yaml"))


def test_none_config_builds_the_structured_encoder():
    encoder = build_text_encoder_from_config(OmegaConf.load(CONFIGS / "none.yaml"))
    assert isinstance(encoder, StructuredEncoder)


def test_minilm_config_builds_a_384_d_encoder_with_its_cache_dir(tmp_path):
    config = OmegaConf.load(CONFIGS / "minilm.yaml")
    config.cache_dir = str(tmp_path)
    encoder = build_text_encoder_from_config(config)
    encoder.encode(["Undersampling: 8x uniform."])
    assert encoder.dim == 384
    assert list(tmp_path.glob("minilm-*.pt"))


class _Model(torch.nn.Module):
    def __init__(self, encoder):
        super().__init__()
        self.text_encoder = encoder
        self.head = torch.nn.Linear(encoder.dim, 4)


def test_an_encoder_held_by_a_model_stays_out_of_its_state_dict():
    model = _Model(build_text_encoder("minilm"))
    assert set(model.state_dict()) == {"head.weight", "head.bias"}
    assert len(list(model.parameters())) == 2


def test_copying_a_model_shares_its_frozen_encoder():
    model = _Model(build_text_encoder("none"))
    assert copy.deepcopy(model).text_encoder is model.text_encoder


def test_encode_takes_a_sequence_not_a_single_string():
    with pytest.raises(TypeError, match="sequence"):
        build_text_encoder("none").encode("Undersampling: 8x uniform.")


def test_encode_of_no_texts_is_an_empty_batch():
    assert build_text_encoder("none").encode([]).shape == (0, 6)
