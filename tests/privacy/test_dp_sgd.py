"""DP-SGD building blocks on the tiny network: per-slice clipping, calibrated noise, FedProx
after the noise, skipping non-finite updates, and the coil-batching guard."""

import math

import pytest
import torch

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.dp_sgd import PrivateUpdates, sample_rate
from cardiomm.privacy.settings import DPSGDSettings
from cardiomm.train.loss import reconstruction_loss
from tests.model.conftest import activate_adapters, embeddings, tiny_network, undersampled_batch

BATCH = 3
CLIP = 1e-4  # far below the per-slice gradient norms of the tiny network


def _problem():
    masked_kspace, mask = undersampled_batch(BATCH, 3, 24, 20)
    target = torch.rand(BATCH, 24, 20, generator=torch.Generator().manual_seed(2))
    return masked_kspace, mask, *embeddings(BATCH), target


def _network():
    network = tiny_network(coil_batching=False)
    activate_adapters(network)
    return network


def _private(network, noise=0.0, generator=None, accountant=None, lr=1e-3):
    optimiser = torch.optim.AdamW(network.parameters(), lr=lr)
    settings = DPSGDSettings(enabled=True, noise_multiplier=noise, max_grad_norm=CLIP)
    return PrivateUpdates(
        network,
        optimiser,
        settings,
        batch_size=BATCH,
        accountant=accountant if accountant is not None else SiteAccountant(),
        rate=sample_rate(BATCH, 30),
        noise_generator=generator,
    )


def _backward(network, updates, scale=1.0):
    masked_kspace, mask, undersampling, metadata, target = _problem()
    updates.zero_grad()
    output = network(masked_kspace, mask, undersampling, metadata)
    updates.backward(scale * reconstruction_loss(output, target))


def _flat_gradient(network):
    return torch.cat([p.grad.flatten() for p in network.parameters()])


def test_each_slice_gradient_is_clipped_before_the_batch_mean():
    masked_kspace, mask, undersampling, metadata, target = _problem()
    network = _network()
    expected, norms = 0, []
    for i in range(BATCH):
        one = slice(i, i + 1)
        output = network(masked_kspace[one], mask[one], undersampling[one], metadata[one])
        loss = reconstruction_loss(output, target[one])
        single = torch.cat([g.flatten() for g in torch.autograd.grad(loss, network.parameters())])
        norms.append(float(single.norm()))
        expected = expected + single * min(1.0, CLIP / (norms[-1] + 1e-6)) / BATCH
    updates = _private(network)
    _backward(network, updates)
    updates.privatise()
    clipped = _flat_gradient(network)
    assert min(norms) > 100 * CLIP  # clipping is active for every slice
    assert float(clipped.norm()) <= CLIP * (1 + 1e-4)
    assert float((clipped - expected).norm() / expected.norm()) < 1e-2


def test_the_noise_has_the_calibrated_standard_deviation():
    noise = 0.5
    clean_network, noisy_network = _network(), _network()
    clean = _private(clean_network)
    noisy = _private(noisy_network, noise, torch.Generator().manual_seed(3))
    for network, updates in ((clean_network, clean), (noisy_network, noisy)):
        _backward(network, updates)
        updates.privatise()
    difference = _flat_gradient(noisy_network) - _flat_gradient(clean_network)
    expected = noise * CLIP / BATCH  # Opacus divides the noisy sum by the batch size
    assert difference.numel() > 10_000
    assert abs(float(difference.std()) / expected - 1) < 0.03
    assert abs(float(difference.mean())) < 0.05 * expected


def test_every_noisy_step_is_charged_to_the_accountant():
    network, accountant = _network(), SiteAccountant()
    updates = _private(network, 1.0, accountant=accountant)
    for _ in range(2):
        _backward(network, updates)
        assert updates.update()
    assert accountant.steps == 2
    assert accountant.history[0].sample_rate == pytest.approx(BATCH / 30)


def test_the_fedprox_gradient_is_added_after_the_noise_unclipped():
    mu = 0.3
    plain_network, prox_network = _network(), _network()
    reference = {name: p.detach() + 0.01 for name, p in prox_network.named_parameters()}
    before = {name: p.detach().clone() for name, p in prox_network.named_parameters()}
    plain, prox = _private(plain_network), _private(prox_network)
    _backward(plain_network, plain)
    plain.privatise()
    _backward(prox_network, prox)
    assert prox.update(reference, mu)
    for (name, p_plain), p_prox in zip(
        plain_network.named_parameters(), prox_network.parameters(), strict=True
    ):
        pull = mu * (before[name] - reference[name])
        torch.testing.assert_close(p_prox.grad, p_plain.grad + pull)


def test_a_non_finite_noisy_gradient_skips_the_update_but_is_charged():
    network, accountant = _network(), SiteAccountant()
    before = {name: p.detach().clone() for name, p in network.named_parameters()}
    updates = _private(network, 1.0, accountant=accountant)
    _backward(network, updates, scale=math.nan)
    assert not updates.update()
    assert all(torch.equal(p, before[name]) for name, p in network.named_parameters())
    assert accountant.steps == 1


def test_closing_takes_opacus_off_the_network():
    network = _network()
    updates = _private(network, 1.0)
    _backward(network, updates)
    updates.update()
    updates.close()
    assert not any(hasattr(p, "grad_sample") for p in network.parameters())
    masked_kspace, mask, undersampling, metadata, target = _problem()
    reconstruction_loss(network(masked_kspace, mask, undersampling, metadata), target).backward()
    assert not any(hasattr(p, "grad_sample") for p in network.parameters())


def test_a_network_that_batches_coils_is_refused():
    with pytest.raises(ValueError, match="coil_batching=False"):
        _private(tiny_network())


def test_the_sample_rate_is_the_batch_share_of_the_site_slices():
    assert sample_rate(2, 18) == pytest.approx(1 / 9)
    assert sample_rate(4, 2) == 1.0
    with pytest.raises(ValueError, match="at least 1 slice"):
        sample_rate(1, 0)


def test_a_target_epsilon_calibrates_the_noise_for_the_planned_steps():
    from opacus.accountants import RDPAccountant

    from cardiomm.privacy.dp_sgd import calibrated

    settings = calibrated(DPSGDSettings(enabled=True, target_epsilon=2.0), 0.1, 50)
    accountant = RDPAccountant()
    accountant.history = [(settings.noise_multiplier, 0.1, 50)]
    assert 1.95 <= accountant.get_epsilon(delta=1e-5) <= 2.0
    assert settings.epsilon_budget == 2.0


def test_without_a_target_the_settings_are_left_as_they_are():
    from cardiomm.privacy.dp_sgd import calibrated

    settings = DPSGDSettings(enabled=True, noise_multiplier=1.3)
    assert calibrated(settings, 0.1, 50) is settings
