"""Which parameters a run trains: groups of the network, the rest frozen."""

import pytest
import torch

from cardiomm.config import load_config
from cardiomm.model.factory import network_from_config
from cardiomm.model.trainable import select_trainable


@pytest.fixture(scope="module")
def network():
    network, _ = network_from_config(load_config(["model=tiny", "text=minilm"]))
    return network


def _trained(network):
    return {name for name, p in network.named_parameters() if p.requires_grad}


def test_all_trains_every_parameter(network):
    count = select_trainable(network, ["all"])
    assert count == sum(p.numel() for p in network.parameters())


def test_data_consistency_trains_one_step_per_cascade(network):
    count = select_trainable(network, ["data_consistency"])
    assert count == len(network.cascades)
    assert all("data_consistency" in name for name in _trained(network))


def test_prompts_and_adapters_are_a_small_share_of_the_network(network):
    count = select_trainable(network, ["prompts", "adapters"])
    total = sum(p.numel() for p in network.parameters())
    assert 0 < count < total / 2
    assert all(
        ".prompters." in n or ".adapters." in n or "projection" in n for n in _trained(network)
    )


def test_an_unknown_group_is_an_error_naming_the_known_ones(network):
    with pytest.raises(ValueError, match="choose from all, prompts, adapters, data_consistency"):
        select_trainable(network, ["backbone"])


def test_groups_the_network_does_not_have_are_an_error():
    network = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="no parameter in the trainable groups"):
        select_trainable(network, ["prompts"])
