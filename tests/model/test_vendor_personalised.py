"""A vendor-personalised model reconstructs each scan with its vendor's parameters."""

import pytest
import torch

from cardiomm.data.metadata import ScanMetadata, vendor_from_text
from cardiomm.model.checkpoint import read_checkpoint, save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network, reconstructor_from_checkpoint
from cardiomm.model.interface import ReconstructionInput
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.model.vendor_personalised import VENDOR_PARTS_KEY, VendorPartsReconstructor
from cardiomm.text import build_text_encoder
from tests.model.conftest import undersampled_batch

HEAD = "cascades.0.image_net.unet.head.weight"


@pytest.fixture(scope="module")
def encoder():
    return build_text_encoder("none")


def _network(encoder, seed: int):
    torch.manual_seed(seed)
    network = build_network(ModelConfig(), encoder)
    # A non-zero head, so the part makes a visible difference (heads start at zero).
    with torch.no_grad():
        network.state_dict()[HEAD].normal_(std=0.1)
    return network


def _inputs(*vendors: str | None) -> ReconstructionInput:
    masked_kspace, mask = undersampled_batch(len(vendors), 3, 24, 32)
    texts = [ScanMetadata(vendor=vendor).to_text() for vendor in vendors]
    return ReconstructionInput(
        masked_kspace, mask, texts, ["Undersampling: 8x uniform."] * len(texts)
    )


def _siemens_part(network) -> dict[str, torch.Tensor]:
    return {HEAD: torch.randn_like(network.state_dict()[HEAD]) * 0.1}


def _with(network, encoder, part):
    copy = _network(encoder, 0)
    copy.load_state_dict(network.state_dict())
    copy.load_state_dict(part, strict=False)
    return NetworkReconstructor(copy, encoder)


def test_the_vendor_is_read_back_from_the_metadata_text():
    assert vendor_from_text(ScanMetadata(vendor="siemens").to_text()) == "Siemens"
    assert vendor_from_text(ScanMetadata().to_text()) is None


def test_a_scan_of_a_known_vendor_gets_its_vendors_part(encoder):
    network = _network(encoder, 0)
    part = _siemens_part(network)
    personalised = VendorPartsReconstructor(
        NetworkReconstructor(network, encoder), {"Siemens": part}
    )
    inputs = _inputs("Siemens")
    expected = _with(network, encoder, part).reconstruct(inputs)
    assert torch.equal(personalised.reconstruct(inputs), expected)


def test_an_unseen_or_unknown_vendor_gets_the_shared_fallback(encoder):
    network = _network(encoder, 0)
    plain = _with(network, encoder, {})
    personalised = VendorPartsReconstructor(
        NetworkReconstructor(network, encoder), {"Siemens": _siemens_part(network)}
    )
    personalised.reconstruct(_inputs("Siemens"))  # load the Siemens part first
    for vendor in ("GE", None):
        inputs = _inputs(vendor)
        assert torch.equal(personalised.reconstruct(inputs), plain.reconstruct(inputs))


def test_a_batch_mixing_vendors_is_reconstructed_per_vendor(encoder):
    network = _network(encoder, 0)
    part = _siemens_part(network)
    mixed = _inputs("GE", "Siemens")
    first, second = (
        mixed._replace(
            masked_kspace=mixed.masked_kspace[index],
            mask=mixed.mask[index],
            metadata_text=mixed.metadata_text[index],
            undersampling_text=mixed.undersampling_text[index],
        )
        for index in (slice(0, 1), slice(1, 2))
    )
    expected = torch.cat(
        [
            _with(network, encoder, {}).reconstruct(first),
            _with(network, encoder, part).reconstruct(second),
        ]
    )
    personalised = VendorPartsReconstructor(
        NetworkReconstructor(network, encoder), {"Siemens": part}
    )
    torch.testing.assert_close(personalised.reconstruct(mixed), expected)


def test_a_checkpoint_with_vendor_parts_loads_as_a_personalised_reconstructor(encoder, tmp_path):
    network = _network(encoder, 0)
    part = _siemens_part(network)
    path = save_checkpoint(
        tmp_path / "model.pt",
        network,
        {"name": "none"},
        encoder.dim,
        extra={VENDOR_PARTS_KEY: {"Siemens": part}},
    )
    loaded = reconstructor_from_checkpoint(read_checkpoint(path))
    assert isinstance(loaded, VendorPartsReconstructor)
    assert loaded.vendors == ["Siemens"]
    inputs = _inputs("Siemens")
    assert torch.equal(
        loaded.reconstruct(inputs), _with(network, encoder, part).reconstruct(inputs)
    )


def test_parts_naming_parameters_the_network_lacks_are_refused(encoder):
    network = _network(encoder, 0)
    with pytest.raises(ValueError, match="lacks"):
        VendorPartsReconstructor(
            NetworkReconstructor(network, encoder), {"GE": {"no.such.weight": torch.zeros(1)}}
        )
