"""The local trainer with DP-SGD: the budget stop, secret randomness, no global clip on top,
and the non-DP path as it was."""

import pytest
import torch
from torch.utils.data import Subset, default_collate

from cardiomm.data.builders import training_dataset
from cardiomm.model.factory import network_from_config
from cardiomm.model.reconstructor import NetworkReconstructor
from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.dp_sgd import sample_rate
from cardiomm.privacy.errors import PrivacyBudgetSpentError
from cardiomm.privacy.settings import DPSGDSettings
from cardiomm.train import TrainConfig, TrainingRun, train_model
from cardiomm.train.loss import reconstruction_loss
from client.site import resolve_site

DELTA = 1e-5


@pytest.fixture(scope="module")
def train_data(config):
    site = resolve_site({"partition-id": 1}, config)  # Center002: the smallest site
    return training_dataset(list(site.train_files), config, seed=0)


def _network(config, coil_batching=False):
    torch.manual_seed(0)
    return network_from_config(config, coil_batching=coil_batching)


def _train_config(**changes):
    values = dict(max_steps=3, batch_size=1, learning_rate=1e-3, device="cpu", bf16=False)
    return TrainConfig(**{**values, **changes})


def _settings(**changes):
    return DPSGDSettings(**{"enabled": True, "noise_multiplier": 1.0, "delta": DELTA, **changes})


def _state(network):
    return {key: value.detach().clone() for key, value in network.state_dict().items()}


def test_training_stops_where_one_more_step_would_pass_the_budget(config, train_data):
    rate = sample_rate(1, len(train_data))
    four_steps, five_steps = SiteAccountant(), SiteAccountant()
    four_steps.step(1.0, rate, 4)
    five_steps.step(1.0, rate, 5)
    budget = (four_steps.epsilon(DELTA) + five_steps.epsilon(DELTA)) / 2
    network, encoder = _network(config)
    accountant = SiteAccountant()
    result = train_model(
        TrainingRun(
            network,
            encoder,
            train_data,
            _train_config(max_steps=10),
            show_progress=False,
            privacy=_settings(epsilon_budget=budget),
            accountant=accountant,
        )
    )
    assert result.steps == accountant.steps == 4
    assert len(result.loss_history) == 4
    assert accountant.epsilon(DELTA) <= budget


def test_a_spent_budget_trains_nothing(config, train_data):
    accountant = SiteAccountant()
    accountant.step(1.0, sample_rate(1, len(train_data)), 50)
    network, encoder = _network(config)
    before = _state(network)
    with pytest.raises(PrivacyBudgetSpentError, match=r"epsilon .* of 1 \(delta 1e-05\)"):
        train_model(
            TrainingRun(
                network,
                encoder,
                train_data,
                _train_config(),
                show_progress=False,
                privacy=_settings(epsilon_budget=1.0),
                accountant=accountant,
            )
        )
    assert all(torch.equal(value, before[key]) for key, value in network.state_dict().items())
    assert accountant.steps == 50


def test_noise_and_batch_order_do_not_follow_the_run_seed(config, train_data):
    states = []
    for _ in range(2):
        network, encoder = _network(config)
        train_model(
            TrainingRun(
                network,
                encoder,
                train_data,
                _train_config(seed=5),
                show_progress=False,
                privacy=_settings(),
                accountant=SiteAccountant(),
            )
        )
        states.append(_state(network))
    assert any(not torch.equal(states[0][key], states[1][key]) for key in states[0])


def test_dp_training_applies_no_global_gradient_clip_on_top(config, train_data):
    # Adam's first step moves a weight by about lr whatever the gradient's size, unless the
    # gradient is shrunk to the order of Adam's epsilon (1e-8) - as a 1e-12 clip would.
    network, encoder = _network(config)
    before = _state(network)
    train_model(
        TrainingRun(
            network,
            encoder,
            train_data,
            _train_config(max_steps=1, gradient_clip=1e-12, weight_decay=0.0),
            show_progress=False,
            privacy=_settings(noise_multiplier=0.0),
            accountant=SiteAccountant(),
        )
    )
    largest = max(float((network.state_dict()[key] - before[key]).abs().max()) for key in before)
    assert largest > 0.5e-3


@pytest.mark.parametrize("privacy", [None, DPSGDSettings(enabled=False)])
def test_the_non_dp_path_is_one_clipped_adamw_step_as_before(config, train_data, privacy):
    one_slice = Subset(train_data, [0])
    # A clip this small brings the gradient near Adam's epsilon, so the step shows whether it
    # was applied (Adam's first step is otherwise blind to the gradient's scale).
    train_config = _train_config(max_steps=1, gradient_clip=1e-7)
    # The reference: the trainer's step written out by hand.
    expected, encoder = _network(config, coil_batching=None)
    sample = default_collate([train_data[0]])
    undersampling, metadata = NetworkReconstructor(expected, encoder).embeddings(
        list(sample.metadata_text), list(sample.undersampling_text), torch.device("cpu")
    )
    output = expected(sample.masked_kspace, sample.mask, undersampling, metadata)
    reconstruction_loss(output, sample.target, train_config.l1_weight).backward()
    torch.nn.utils.clip_grad_norm_(expected.parameters(), train_config.gradient_clip)
    torch.optim.AdamW(
        expected.parameters(),
        lr=train_config.learning_rate,
        weight_decay=train_config.weight_decay,
    ).step()

    network, encoder = _network(config, coil_batching=None)
    train_model(
        TrainingRun(network, encoder, one_slice, train_config, show_progress=False, privacy=privacy)
    )
    for key, value in network.state_dict().items():
        torch.testing.assert_close(value, expected.state_dict()[key], rtol=1e-6, atol=1e-9)
    assert not any(hasattr(p, "grad_sample") for p in network.parameters())


def test_dp_sgd_fine_tunes_a_frozen_backbone(config, train_data):
    network, encoder = _network(config)
    before = _state(network)
    accountant = SiteAccountant()
    result = train_model(
        TrainingRun(
            network,
            encoder,
            train_data,
            _train_config(trainable=("data_consistency",)),
            show_progress=False,
            privacy=_settings(),
            accountant=accountant,
        )
    )
    changed = {
        key for key, value in network.state_dict().items() if not torch.equal(value, before[key])
    }
    assert changed and all("data_consistency" in key for key in changed)
    assert result.trainable_parameters == len(network.cascades)
    assert accountant.steps == 3
