"""Data-parallel local training over torch.distributed (gloo on the CPU): the same global
batches and updates as one device, and clear refusals of what it cannot do."""

import pytest
import torch

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import TrainingMasks
from cardiomm.masks import MaskSampler
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.privacy.settings import DPSGDSettings
from cardiomm.text import build_text_encoder
from cardiomm.train import TrainConfig, TrainingRun, train_model
from cardiomm.train.data_parallel import check_data_parallel
from tests.builders import write_site_file

# 2 frames x 2 slices: with one file of 3 slices, (5 slices, batch 2) ends each epoch with a
# batch of one, which leaves the second process a stand-in slice of weight zero.
SHAPE = (1, 5, 4, 24, 32)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    return [write_site_file(root, "Center001", "Siemens_30T_Vida", "P001", shape=SHAPE, seed=1)]


def _train(files, steps, **changes):
    """(network, result) of ``steps`` steps from the same initial weights."""
    encoder = build_text_encoder("none")
    torch.manual_seed(0)
    network = build_network(ModelConfig(), encoder)
    sampler = MaskSampler(patterns=["Uniform"], accelerations=[4], acs_width=6)
    dataset = SliceDataset(files, TrainingMasks(sampler, 0), show_progress=False)
    settings = {"seed": 0, "learning_rate": 1e-3, "batch_size": 2, "num_threads": 1}
    config = TrainConfig(max_steps=steps, **{**settings, **changes})
    return network, train_model(TrainingRun(network, encoder, dataset, config, show_progress=False))


def test_two_gloo_processes_train_as_one_device_does_on_the_same_global_batches(files):
    # 4 steps over 5 slices in batches of 2: epoch 1 ends with a batch of one slice. The
    # summed gradients agree with one device's to float rounding; Adam turns the sign of a
    # rounding-level gradient element into a whole step, so weights may differ by up to
    # 2 x learning rate per step in such elements (a small rate keeps that visible).
    rate, steps = 1e-5, 4
    one_network, one = _train(files, steps, learning_rate=rate)
    two_network, two = _train(
        files, steps, learning_rate=rate, devices=2, distributed_backend="gloo"
    )
    assert two.steps == steps and two.examples == one.examples == 7
    assert two.loss_history == pytest.approx(one.loss_history, rel=1e-3)
    for name, weight in one_network.state_dict().items():
        torch.testing.assert_close(
            two_network.state_dict()[name], weight, rtol=0, atol=2 * rate * steps
        )


def test_a_batch_smaller_than_the_device_count_is_refused():
    with pytest.raises(ValueError, match="at least one slice per device"):
        check_data_parallel(TrainConfig(devices=2, batch_size=1), private=False)


def test_dp_sgd_on_several_devices_is_refused():
    with pytest.raises(ValueError, match="DP-SGD trains on one device"):
        check_data_parallel(TrainConfig(devices=2, batch_size=2), private=True)


def test_nccl_without_cuda_is_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="nccl needs CUDA"):
        check_data_parallel(
            TrainConfig(devices=2, batch_size=2, distributed_backend="nccl"), private=False
        )


def test_without_cuda_the_backend_is_gloo(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check_data_parallel(TrainConfig(devices=2, batch_size=2), private=False) == "gloo"


@pytest.mark.parametrize("devices", [0, -1, True])
def test_a_device_count_below_one_is_refused(devices):
    with pytest.raises(ValueError, match="devices must be a whole number"):
        TrainConfig(devices=devices)


def test_a_per_step_callback_with_several_devices_is_refused(files):
    encoder = build_text_encoder("none")
    network = build_network(ModelConfig(), encoder)
    dataset = SliceDataset(files, show_progress=False)
    config = TrainConfig(max_steps=1, batch_size=2, devices=2, distributed_backend="gloo")
    with pytest.raises(ValueError, match="per-step callbacks"):
        train_model(
            TrainingRun(network, encoder, dataset, config, show_progress=False, on_step=print)
        )


def test_dp_sgd_training_on_several_devices_is_refused_before_any_process_starts(files):
    encoder = build_text_encoder("none")
    network = build_network(ModelConfig(), encoder)
    dataset = SliceDataset(files, show_progress=False)
    config = TrainConfig(max_steps=1, batch_size=2, devices=2)
    with pytest.raises(ValueError, match="DP-SGD trains on one device"):
        train_model(
            TrainingRun(
                network,
                encoder,
                dataset,
                config,
                show_progress=False,
                privacy=DPSGDSettings(enabled=True),
                accountant=object(),
            )
        )


def test_more_cpu_processes_than_cores_are_refused(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    with pytest.raises(ValueError, match="each process needs a core"):
        check_data_parallel(TrainConfig(devices=3, batch_size=3), private=False)
