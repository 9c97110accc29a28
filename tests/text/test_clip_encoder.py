"""The CLIP text encoder, read from a local checkpoint only.

The checkpoints are tiny randomly initialised CLIP models written into tmp_path; the tokenizer
is built from a vocab.json and merges.txt written here (byte-level alphabet, one merge), in the
same two-file format as openai/clip-vit-base-patch16, so nothing is downloaded.
"""

import json
from pathlib import Path

import pytest
import torch
from tokenizers.pre_tokenizers import ByteLevel
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPTextModel,
    CLIPTextModelWithProjection,
)

from cardiomm.text import build_text_encoder
from cardiomm.text.clip import CLIPEncoder

TEXTS = [
    "Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida. Modality: cine, short-axis.",
    "Undersampling: 16x random.",
]
HIDDEN, PROJECTION = 32, 24


def _write_tokenizer(folder: Path) -> dict[str, int]:
    alphabet = sorted(ByteLevel.alphabet())
    tokens = alphabet + [f"{character}</w>" for character in alphabet]
    tokens += ["un", "<|startoftext|>", "<|endoftext|>"]
    vocab = {token: index for index, token in enumerate(tokens)}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\nu n\n")
    return vocab


def _text_config(vocab: dict[str, int]) -> dict:
    return dict(
        vocab_size=len(vocab),
        hidden_size=HIDDEN,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        projection_dim=PROJECTION,
        bos_token_id=vocab["<|startoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"],
    )


def _save_text_checkpoint(folder: Path, model_class) -> Path:
    vocab = _write_tokenizer(folder)
    torch.manual_seed(0)
    model_class(CLIPTextConfig(**_text_config(vocab))).save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_clip(tmp_path) -> Path:
    return _save_text_checkpoint(tmp_path / "tiny-clip", CLIPTextModelWithProjection)


def test_clip_missing_folder_error_names_the_path(tmp_path):
    missing = tmp_path / "no-such-clip"
    with pytest.raises(FileNotFoundError, match="no-such-clip"):
        build_text_encoder("clip", clip_path=missing)


def test_clip_folder_without_a_clip_model_error_names_the_path(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(ValueError, match=f"{tmp_path}.*model_type 'bert'"):
        build_text_encoder("clip", clip_path=tmp_path)


def test_clip_folder_without_tokenizer_files_is_rejected(tiny_clip):
    (tiny_clip / "vocab.json").unlink()
    with pytest.raises(ValueError, match="tokenizer"):
        build_text_encoder("clip", clip_path=tiny_clip)


def test_clip_folder_without_weights_is_rejected(tiny_clip):
    (tiny_clip / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=str(tiny_clip)):
        build_text_encoder("clip", clip_path=tiny_clip)


def test_clip_without_a_path_is_rejected():
    with pytest.raises(ValueError, match=r"text\.path"):
        build_text_encoder("clip")


def test_tiny_local_clip_encodes_to_its_projection_dim(tiny_clip):
    encoder = build_text_encoder("clip", clip_path=tiny_clip)
    embeddings = encoder.encode(TEXTS)
    assert encoder.dim == PROJECTION
    assert embeddings.shape == (2, PROJECTION)
    assert embeddings.dtype == torch.float32
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_clip_embedding_is_the_checkpoints_projected_text_embedding(tiny_clip):
    reference = CLIPTextModelWithProjection.from_pretrained(tiny_clip).eval()
    tokens = CLIPEncoder(tiny_clip).tokenizer(TEXTS[1:], return_tensors="pt")
    with torch.no_grad():
        expected = reference(**tokens).text_embeds
    torch.testing.assert_close(CLIPEncoder(tiny_clip).encode(TEXTS[1:]), expected)


def test_clip_padding_in_a_batch_does_not_change_a_texts_embedding(tiny_clip):
    together = CLIPEncoder(tiny_clip).encode(TEXTS)
    alone = torch.cat([CLIPEncoder(tiny_clip).encode([text]) for text in TEXTS])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_clip_without_projection_uses_the_pooled_output(tmp_path):
    folder = _save_text_checkpoint(tmp_path / "no-projection", CLIPTextModel)
    encoder = CLIPEncoder(folder)
    assert not encoder.has_projection
    assert encoder.encode(TEXTS).shape == (2, HIDDEN)


def test_full_clip_checkpoint_uses_the_top_level_projection_dim(tmp_path):
    folder = tmp_path / "full-clip"
    vocab = _write_tokenizer(folder)
    vision = dict(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        image_size=32,
        patch_size=16,
    )
    text = {key: value for key, value in _text_config(vocab).items() if key != "projection_dim"}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=20)
    CLIPModel(config).save_pretrained(folder)
    encoder = CLIPEncoder(folder)
    assert encoder.has_projection
    assert encoder.encode(TEXTS).shape == (2, 20)


def test_clip_parameters_are_frozen_and_output_has_no_grad(tiny_clip):
    encoder = CLIPEncoder(tiny_clip)
    with torch.enable_grad():
        embeddings = encoder.encode(TEXTS)
    assert not any(parameter.requires_grad for parameter in encoder.backbone.parameters())
    assert not encoder.backbone.training
    assert not embeddings.requires_grad


def test_clip_disk_cache_file_is_reused_by_a_fresh_encoder(tiny_clip, tmp_path):
    cache_dir = tmp_path / "cache"
    written = CLIPEncoder(tiny_clip, cache_dir=cache_dir).encode(TEXTS)
    fresh = CLIPEncoder(tiny_clip, cache_dir=cache_dir)
    assert len(fresh.cache) == 2
    assert torch.equal(fresh.encode(TEXTS), written)
