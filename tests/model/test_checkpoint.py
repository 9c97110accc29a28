import pytest
import torch

from cardiomm.data.metadata import ScanMetadata
from cardiomm.model.checkpoint import read_checkpoint, save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network, reconstructor_from_checkpoint
from cardiomm.model.interface import ReconstructionInput
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.text import build_text_encoder
from tests.model.conftest import activate_adapters, undersampled_batch


@pytest.fixture(scope="module")
def minilm():
    return build_text_encoder("minilm")


def _inputs(metadata_text: str, batch: int = 1) -> ReconstructionInput:
    masked_kspace, mask = undersampled_batch(batch, 3, 24, 32)
    return ReconstructionInput(
        masked_kspace, mask, [metadata_text] * batch, ["Undersampling: 8x uniform."] * batch
    )


def test_a_checkpoint_round_trip_reproduces_outputs_exactly(minilm, tmp_path):
    network = build_network(ModelConfig(), minilm)
    activate_adapters(network)
    path = save_checkpoint(tmp_path / "model.pt", network, {"name": "minilm"}, minilm.dim)
    restored = reconstructor_from_checkpoint(read_checkpoint(path))
    inputs = _inputs(ScanMetadata(vendor="GE", modality="cine").to_text())
    original = NetworkReconstructor(network, minilm).reconstruct(inputs)
    assert torch.equal(restored.reconstruct(inputs), original)


def test_the_text_encoder_is_not_part_of_the_saved_weights(minilm, tmp_path):
    network = build_network(ModelConfig(), minilm)
    path = save_checkpoint(tmp_path / "model.pt", network, {"name": "minilm"}, minilm.dim)
    saved = read_checkpoint(path)["state_dict"]
    assert saved.keys() == network.state_dict().keys()
    # MiniLM alone has 22.7M weights; the tiny network has well under one million.
    assert sum(tensor.numel() for tensor in saved.values()) < 1_000_000


def test_a_scan_with_entirely_unknown_metadata_still_reconstructs(minilm):
    network = build_network(ModelConfig(), minilm)
    activate_adapters(network)
    inputs = _inputs(ScanMetadata().to_text(), batch=2)
    output = NetworkReconstructor(network, minilm).reconstruct(inputs)
    assert output.shape == (2, 24, 32)
    assert torch.isfinite(output).all()


def test_reading_something_that_is_not_a_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"weights": 1}, path)
    with pytest.raises(ValueError, match=r"weights\.pt: not a CardioMM-FL model checkpoint"):
        read_checkpoint(path)


def test_a_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"absent\.pt"):
        read_checkpoint(tmp_path / "absent.pt")


def test_dcunet_reconstructs_without_a_text_encoder(tmp_path):
    network = build_network(ModelConfig(architecture="dcunet"), None)
    path = save_checkpoint(tmp_path / "dcunet.pt", network, None, 0)
    restored = reconstructor_from_checkpoint(read_checkpoint(path))
    assert restored.name == "dcunet"
    assert restored.reconstruct(_inputs("ignored")).shape == (1, 24, 32)


def test_a_checkpoint_of_the_version_1_network_is_refused_with_the_reason(tmp_path):
    network = build_network(ModelConfig(architecture="dcunet"), None)
    path = save_checkpoint(tmp_path / "old.pt", network, None, 0)
    content = torch.load(path, weights_only=True)
    content["version"] = 1
    torch.save(content, path)
    with pytest.raises(ValueError, match=r"old\.pt: checkpoint version 1 is not 2: .*retrain"):
        read_checkpoint(path)
