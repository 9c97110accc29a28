"""The local trainer: learning, determinism, FedProx, validation, clear failures."""

import copy

import pytest
import torch

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import TrainingMasks, evaluation_masks
from cardiomm.masks import MaskSampler
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.text import build_text_encoder
from cardiomm.train import TrainConfig, TrainingRun, train_model
from cardiomm.train.loop import TrainingStepError
from cardiomm.train.loss import proximal_term, reconstruction_loss
from tests.builders import write_site_file

SHAPE = (2, 2, 4, 24, 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    return [
        write_site_file(root, "Center001", "Siemens_30T_Vida", f"P00{i}", shape=SHAPE, seed=i)
        for i in range(2)
    ]


@pytest.fixture(scope="module")
def encoder():
    return build_text_encoder("none")


def _train(files, encoder, steps=6, seed=0, **changes):
    torch.manual_seed(seed)
    network = build_network(ModelConfig(), encoder)
    sampler = MaskSampler(patterns=["Uniform"], accelerations=[4], acs_width=6)
    dataset = SliceDataset(files, TrainingMasks(sampler, seed), show_progress=False)
    config = TrainConfig(max_steps=steps, seed=seed, learning_rate=1e-3, **changes)
    return network, train_model(TrainingRun(network, encoder, dataset, config, show_progress=False))


def _run_on(files, network, encoder, steps):
    dataset = SliceDataset(files, show_progress=False)
    return TrainingRun(network, encoder, dataset, TrainConfig(max_steps=steps), show_progress=False)


def test_training_takes_the_step_budget_and_counts_examples(files, encoder):
    _, result = _train(files, encoder, steps=5, batch_size=2)
    assert result.steps == 5
    assert result.examples == 10
    assert len(result.loss_history) == 5


def test_training_lowers_the_loss(files, encoder):
    _, result = _train(files, encoder, steps=40)
    first, last = result.loss_history[:5], result.loss_history[-5:]
    assert sum(last) / 5 < 0.8 * sum(first) / 5


def test_training_is_reproducible_for_a_seed(files, encoder):
    first_network, first = _train(files, encoder, steps=4, seed=3)
    second_network, second = _train(files, encoder, steps=4, seed=3)
    assert first.loss_history == second.loss_history
    for a, b in zip(first_network.parameters(), second_network.parameters(), strict=True):
        assert torch.equal(a, b)


def test_validation_scores_are_reported(files, encoder):
    network = build_network(ModelConfig(), encoder)
    train = SliceDataset(files[:1], show_progress=False)
    validation = SliceDataset(files[1:], evaluation_masks(("Uniform", 4)), show_progress=False)
    result = train_model(
        TrainingRun(
            network, encoder, train, TrainConfig(max_steps=2), validation, show_progress=False
        )
    )
    assert set(result.validation) == {"psnr", "ssim", "nmse"}
    assert result.validation["psnr"] > 0
    assert result.metrics()["val-psnr"] == result.validation["psnr"]


def test_proximal_term_is_zero_at_the_reference_and_grows_away_from_it(encoder):
    network = build_network(ModelConfig(), encoder)
    reference = copy.deepcopy(network.state_dict())
    assert proximal_term(network, reference, mu=1.0).item() == 0.0
    with torch.no_grad():
        next(network.parameters()).add_(1.0)
    assert proximal_term(network, reference, mu=1.0).item() > 0.0


def test_fedprox_keeps_weights_closer_to_the_reference(files, encoder):
    distances = {}
    for mu in (0.0, 100.0):
        torch.manual_seed(0)
        network = build_network(ModelConfig(), encoder)
        reference = {k: v.clone() for k, v in network.state_dict().items()}
        dataset = SliceDataset(files, show_progress=False)
        config = TrainConfig(max_steps=10, learning_rate=1e-3, proximal_mu=mu)
        train_model(
            TrainingRun(
                network, encoder, dataset, config, reference_weights=reference, show_progress=False
            )
        )
        distances[mu] = sum(
            (p - reference[n]).square().sum().item() for n, p in network.named_parameters()
        )
    assert distances[100.0] < distances[0.0]


def test_fedprox_without_reference_weights_is_refused(files, encoder):
    network = build_network(ModelConfig(), encoder)
    dataset = SliceDataset(files, show_progress=False)
    with pytest.raises(ValueError, match="reference"):
        train_model(
            TrainingRun(
                network, encoder, dataset, TrainConfig(proximal_mu=0.1), show_progress=False
            )
        )


def test_an_empty_training_set_is_refused_with_a_reason(encoder):
    network = build_network(ModelConfig(), encoder)
    with pytest.raises(ValueError, match="empty"):
        train_model(
            TrainingRun(network, encoder, SliceDataset([], show_progress=False), TrainConfig())
        )


def test_updates_with_non_finite_gradients_are_skipped_not_applied(files, encoder, monkeypatch):
    network = build_network(ModelConfig(), encoder)
    before = {n: p.detach().clone() for n, p in network.named_parameters()}
    monkeypatch.setattr(
        "cardiomm.train.loop.reconstruction_loss",
        lambda output, target, l1: output.sum() * float("nan"),
    )
    # The error names the last image it happened on, so the file can be looked at.
    with pytest.raises(FloatingPointError, match=r"consecutive steps .* on .*\.mat frame \d+"):
        train_model(_run_on(files, network, encoder, steps=20))
    for name, parameter in network.named_parameters():
        assert torch.equal(parameter, before[name]), name


def test_a_failing_step_names_the_step_and_the_image_it_was_on(files, encoder, monkeypatch):
    network = build_network(ModelConfig(), encoder)

    def broken(output, target, l1):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr("cardiomm.train.loop.reconstruction_loss", broken)
    with pytest.raises(TrainingStepError) as caught:
        train_model(_run_on(files, network, encoder, steps=3))
    assert caught.value.step == 1
    assert ".mat frame " in caught.value.where and " slice " in caught.value.where
    assert "RuntimeError: shape mismatch" in str(caught.value)


def test_loss_is_zero_for_a_perfect_reconstruction():
    target = torch.rand(2, 16, 16)
    assert reconstruction_loss(target, target).item() == pytest.approx(0.0, abs=1e-6)


def test_unknown_training_config_keys_are_named():
    with pytest.raises(ValueError, match="learning_rat"):
        TrainConfig.from_mapping({"learning_rat": 0.1})


def test_learning_rate_warms_up_linearly_then_decays_in_steps():
    from cardiomm.train.loop import learning_rate_factor

    config = TrainConfig(warmup_steps=4, lr_decay_steps=10, lr_decay_gamma=0.5)
    factors = [learning_rate_factor(config, step) for step in (0, 1, 3, 9, 10, 25)]
    assert factors == [0.25, 0.5, 1.0, 1.0, 0.5, 0.25]


def test_deterministic_kernels_train_the_same_bits_on_the_cpu_and_are_switched_off_after(
    files, encoder
):
    plain_network, plain = _train(files, encoder, steps=3, seed=4)
    strict_network, strict = _train(files, encoder, steps=3, seed=4, deterministic=True)
    assert strict.loss_history == plain.loss_history
    for a, b in zip(plain_network.parameters(), strict_network.parameters(), strict=True):
        assert torch.equal(a, b)
    assert not torch.are_deterministic_algorithms_enabled()


def test_a_frozen_backbone_trains_only_the_chosen_groups_and_gets_its_flags_back(files, encoder):
    torch.manual_seed(0)
    network = build_network(ModelConfig(), encoder)
    before = copy.deepcopy(network.state_dict())
    sampler = MaskSampler(patterns=["Uniform"], accelerations=[4], acs_width=6)
    dataset = SliceDataset(files, TrainingMasks(sampler, 0), show_progress=False)
    config = TrainConfig(max_steps=3, learning_rate=1e-2, trainable=("data_consistency",))
    result = train_model(TrainingRun(network, encoder, dataset, config, show_progress=False))
    changed = {
        key for key, value in network.state_dict().items() if not torch.equal(value, before[key])
    }
    assert changed and all("data_consistency" in key for key in changed)
    assert result.trainable_parameters == len(network.cascades)
    assert all(parameter.requires_grad for parameter in network.parameters())
