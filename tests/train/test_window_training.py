"""Training the frame-window CardioMM: it learns, reproducibly, validates, and its
checkpoint rebuilds it."""

import pytest
import torch

from cardiomm.data.dataset import SliceDataset
from cardiomm.data.masking import TrainingMasks, evaluation_masks
from cardiomm.masks import MaskSampler
from cardiomm.model.checkpoint import network_from_checkpoint, read_checkpoint, save_checkpoint
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network, reconstructor_from_checkpoint
from cardiomm.model.reconstructor import NetworkReconstructor, WindowReconstructor
from cardiomm.text import build_text_encoder
from cardiomm.train import TrainConfig, TrainingRun, train_model
from cardiomm.train.evaluate import evaluate_reconstructor
from tests.builders import write_site_file

SCANNER = "Siemens_30T_Vida"
SHAPE = (3, 2, 4, 24, 32)
WINDOW = ModelConfig(temporal="window", window_radius=1)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two patients' 3-frame cines: every radius-1 window holds three distinct frames."""
    root = tmp_path_factory.mktemp("window-site")
    patients = ("P001", "P002")
    return [
        write_site_file(root, "Center001", SCANNER, patient, shape=SHAPE, seed=seed)
        for seed, patient in enumerate(patients)
    ]


@pytest.fixture(scope="module")
def encoder():
    """The text encoder of no texts: the prompts and adapters still run, on fixed inputs."""
    return build_text_encoder("none")


def _train(files, encoder, steps, seed=0, validation=None):
    network = build_network(WINDOW, encoder, seed=seed)
    sampler = MaskSampler(patterns=["ktGaussian"], accelerations=[4], acs_width=6)
    dataset = SliceDataset(
        files, TrainingMasks(sampler, seed), show_progress=False, frame_window_radius=1
    )
    config = TrainConfig(max_steps=steps, seed=seed, learning_rate=1e-3)
    run = TrainingRun(network, encoder, dataset, config, validation, show_progress=False)
    return network, train_model(run)


def test_training_the_window_network_lowers_its_loss_on_fixed_masks(files, encoder):
    # The training masks change every step, so the loss is judged on fixed ones.
    fixed = SliceDataset(
        files, evaluation_masks(("ktGaussian", 4), acs_width=6), show_progress=False,
        frame_window_radius=1,
    )  # fmt: skip
    untrained = evaluate_reconstructor(
        NetworkReconstructor(build_network(WINDOW, encoder), encoder), fixed, show_progress=False
    ).mean()
    network, _ = _train(files, encoder, steps=40)
    trained = evaluate_reconstructor(
        NetworkReconstructor(network, encoder), fixed, show_progress=False
    ).mean()
    assert 1 - trained["ssim"] < 0.8 * (1 - untrained["ssim"])


def test_training_the_window_network_is_bitwise_reproducible_for_a_seed(files, encoder):
    runs = [_train(files, encoder, steps=3, seed=3) for _ in range(2)]
    (first_network, first), (second_network, second) = runs
    assert first.loss_history == second.loss_history
    first_weights, second_weights = first_network.state_dict(), second_network.state_dict()
    assert all(torch.equal(first_weights[key], second_weights[key]) for key in first_weights)


def test_the_window_network_validates_on_window_items(files, encoder):
    validation = SliceDataset(
        files[1:], evaluation_masks(("ktRadial", 8)), show_progress=False, frame_window_radius=1
    )
    _, result = _train(files[:1], encoder, steps=2, validation=validation)
    assert set(result.validation) == {"psnr", "ssim", "nmse"}


def test_a_window_checkpoint_rebuilds_the_window_network_and_its_cine_reconstructor(
    files, encoder, tmp_path
):
    network, _ = _train(files, encoder, steps=2)
    path = save_checkpoint(tmp_path / "window.pt", network, {"name": "none"}, encoder.dim)
    content = read_checkpoint(path)
    assert content["model_config"]["temporal"] == "window"
    rebuilt = network_from_checkpoint(content)
    assert rebuilt.config == network.config
    assert all(
        torch.equal(a, b)
        for a, b in zip(rebuilt.state_dict().values(), network.state_dict().values(), strict=True)
    )
    assert isinstance(reconstructor_from_checkpoint(content), WindowReconstructor)


def test_a_2d_checkpoint_without_the_temporal_option_stays_a_2d_network(encoder, tmp_path):
    network = build_network(ModelConfig(), encoder)
    path = save_checkpoint(tmp_path / "flat.pt", network, {"name": "none"}, encoder.dim)
    content = read_checkpoint(path)
    for key in ("temporal", "window_radius"):  # as written before the option existed
        del content["model_config"][key]
    assert not network_from_checkpoint(content).is_temporal
    assert not isinstance(reconstructor_from_checkpoint(content), WindowReconstructor)
