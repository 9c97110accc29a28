"""Patient-level DP-SGD: patients as the unit, Poisson sampling, one clipped gradient per
patient, calibrated noise, the accountant's rate, and training through the trainer."""

import math

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant

from cardiomm.data.builders import training_dataset
from cardiomm.model.factory import network_from_config
from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.patient_dp import PatientUpdates, patient_groups, patient_sample_rate
from cardiomm.privacy.settings import DPSGDSettings
from cardiomm.train import TrainConfig, TrainingRun, train_model
from client.site import resolve_site


@pytest.fixture(scope="module")
def train_data(config):
    site = resolve_site({"partition-id": 0}, config)  # Center001: several patients
    return training_dataset(list(site.train_files), config, seed=0)


def _settings(**changes):
    values = {"enabled": True, "unit": "patient", "noise_multiplier": 1.0, "max_grad_norm": 1.0}
    return DPSGDSettings(**{**values, **changes})


def _network(config):
    torch.manual_seed(0)
    return network_from_config(config)


def _updates(config, train_data, accountant=None, **changes):
    network, _ = _network(config)
    optimiser = torch.optim.SGD([p for p in network.parameters() if p.requires_grad], lr=0.0)
    return PatientUpdates(
        network,
        optimiser,
        train_data,
        _settings(**changes),
        accountant or SiteAccountant(),
        noise_generator=torch.Generator().manual_seed(0),
        sampler=np.random.default_rng(0),
    )


def test_images_are_grouped_by_their_patient_folder(train_data):
    groups = patient_groups(train_data)
    folders = {
        str(train_data.index.files[train_data.index.images[item].file_number].path.parent)
        for item in range(len(train_data))
    }
    assert len(groups) == len(folders) > 1
    assert sorted(item for group in groups for item in group) == list(range(len(train_data)))


def test_the_sampling_rate_is_patients_per_step_over_the_sites_patients():
    assert patient_sample_rate(_settings(patients_per_step=2.0), 8) == 0.25
    assert patient_sample_rate(_settings(patients_per_step=20.0), 8) == 1.0


def test_each_patients_gradient_is_clipped_as_a_whole(config, train_data):
    updates = _updates(config, train_data, max_grad_norm=1e-3, slices_per_patient=3)

    def loss_of(sample):
        network = updates.network
        return sum(p.sum() for p in network.parameters()) * 1e3  # a large gradient

    contribution = updates._patient_gradient(updates.patients[0], loss_of)
    norm = math.sqrt(sum(float(g.pow(2).sum()) for g in contribution))
    assert norm == pytest.approx(1e-3, rel=1e-4)


class _NobodyDrawn:
    """A sampler whose draws never fall below a sampling rate."""

    def random(self):
        return 1.0


def test_without_sampled_patients_the_gradient_is_pure_calibrated_noise(config, train_data):
    updates = _updates(config, train_data, noise_multiplier=2.0, max_grad_norm=0.5)
    updates.sampler = _NobodyDrawn()
    updates.step(lambda sample: torch.zeros(()))
    noise = torch.cat([p.grad.reshape(-1) for p in updates.parameters]) * updates.expected_batch
    assert updates.last_batch == 0
    assert float(noise.std()) == pytest.approx(2.0 * 0.5, rel=0.02)


def test_every_step_is_charged_at_the_patient_rate(config, train_data):
    accountant = SiteAccountant()
    updates = _updates(config, train_data, accountant, patients_per_step=1.0)
    for _ in range(3):
        updates.step(lambda sample: torch.zeros((), requires_grad=True))
    reference = RDPAccountant()
    for _ in range(3):
        reference.step(noise_multiplier=1.0, sample_rate=updates.rate)
    assert accountant.epsilon(1e-5) == reference.get_epsilon(delta=1e-5)
    assert updates.rate == 1.0 / len(patient_groups(train_data))


def test_patients_are_poisson_sampled(config, train_data):
    updates = _updates(config, train_data, patients_per_step=1.0)
    sizes = []
    for _ in range(200):
        updates.step(lambda sample: torch.zeros((), requires_grad=True))
        sizes.append(updates.last_batch)
    assert len(set(sizes)) > 1  # the batch size varies, as Poisson sampling has it
    assert np.mean(sizes) == pytest.approx(1.0, abs=0.25)


def test_the_trainer_takes_patient_level_steps_and_reports_the_images(config, train_data):
    network, encoder = _network(config)
    before = {k: v.clone() for k, v in network.state_dict().items()}
    accountant = SiteAccountant()
    result = train_model(
        TrainingRun(
            network,
            encoder,
            train_data,
            TrainConfig(max_steps=3, learning_rate=1e-3, device="cpu", bf16=False),
            show_progress=False,
            privacy=_settings(patients_per_step=2.0),
            accountant=accountant,
        )
    )
    assert result.steps == 3 and accountant.steps == 3
    assert accountant.history[0].sample_rate == patient_sample_rate(
        _settings(patients_per_step=2.0), len(patient_groups(train_data))
    )
    assert any(not torch.equal(v, before[k]) for k, v in network.state_dict().items())
