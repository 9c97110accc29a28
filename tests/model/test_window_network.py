"""The frame-window CardioMM: frame t from frames t-r..t+r, each with its own mask."""

import dataclasses

import numpy as np
import pytest
import torch
from opacus import GradSampleModule

from cardiomm.data.frame_window import window_frames
from cardiomm.masks import make_mask
from cardiomm.model.cascade import Cascade
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.model.interface import CineTexts, TextConditionedCineReconstructor
from cardiomm.model.network import CardioMMNet
from cardiomm.model.reconstructor import NetworkReconstructor, WindowReconstructor
from cardiomm.model.window import WindowCascade
from cardiomm.physics import ifft2c, rss
from cardiomm.text import build_text_encoder
from cardiomm.train.loss import reconstruction_loss
from tests.conftest import requires_cuda
from tests.model.conftest import TEXT_DIM, activate_adapters, embeddings, model_preset

RADIUS = 1
FRAMES = 2 * RADIUS + 1


def window_network(**changes) -> CardioMMNet:
    torch.manual_seed(0)
    config = ModelConfig(temporal="window", window_radius=RADIUS, **changes)
    return CardioMMNet(config, text_dim=TEXT_DIM)


def window_batch(batch: int, coils: int, height: int, width: int, seed: int = 0):
    """(masked k-space complex64 (B, F, C, H, W), masks float32 (B, F, H, W)): a ktGaussian
    mask that samples other lines in every frame of the window."""
    generator = torch.Generator().manual_seed(seed)
    shape = (batch, FRAMES, coils, height, width)
    kspace = torch.randn(*shape, generator=generator, dtype=torch.complex64)
    values = make_mask("ktGaussian", 4, (height, width), num_frames=FRAMES, acs_width=6).values
    mask = torch.from_numpy(values.astype(np.float32)).expand(batch, FRAMES, height, width)
    return kspace * mask[:, :, None], mask.contiguous()


def test_window_frames_are_cyclic_around_the_centre():
    assert window_frames(0, 5, 2) == [3, 4, 0, 1, 2]
    assert window_frames(4, 5, 1) == [3, 4, 0]


def test_a_frameless_series_sees_its_one_frame_in_every_window_position():
    assert window_frames(0, 1, 2) == [0, 0, 0, 0, 0]


def test_a_frame_outside_the_series_is_refused():
    with pytest.raises(ValueError, match="frame 3 is not a frame of a 3-frame series"):
        window_frames(3, 3, 1)


@pytest.mark.parametrize("architecture", ["cardiomm", "dcunet"])
@pytest.mark.parametrize("size", ["tiny_window", "small_window"])
def test_an_untrained_window_network_returns_the_centre_frames_zero_filled_image(
    architecture, size
):
    config = dataclasses.replace(model_preset(size), architecture=architecture)
    network = CardioMMNet(config, text_dim=TEXT_DIM)
    radius = config.window_radius
    masked_kspace, mask = _preset_window_batch(2 * radius + 1)
    texts = embeddings(2) if architecture == "cardiomm" else ()
    zero_filled = rss(ifft2c(masked_kspace[:, radius])).to(torch.float32)
    torch.testing.assert_close(network(masked_kspace, mask, *texts), zero_filled, rtol=0, atol=0)


def _preset_window_batch(frames: int):
    generator = torch.Generator().manual_seed(0)
    kspace = torch.randn(2, frames, 3, 25, 37, generator=generator, dtype=torch.complex64)
    values = make_mask("ktRadial", 8, (25, 37), num_frames=frames, acs_width=6).values
    mask = torch.from_numpy(values.astype(np.float32)).expand(2, frames, 25, 37).contiguous()
    return kspace * mask[:, :, None], mask


def test_the_default_model_config_builds_the_2d_cascades():
    network = CardioMMNet(ModelConfig(), text_dim=TEXT_DIM)
    assert not network.is_temporal
    assert all(type(cascade) is Cascade for cascade in network.cascades)


def test_a_window_cascade_resets_each_frame_only_where_its_own_mask_samples():
    plain = dataclasses.replace(ModelConfig().image_net, use_prompts=False, use_metadata=False)
    cascade = WindowCascade(plain, FRAMES)  # untrained: no refinement
    generator = torch.Generator().manual_seed(0)
    shape = (1, FRAMES, 2, 8, 8)
    estimate = torch.randn(*shape, generator=generator, dtype=torch.complex64)
    measured = torch.randn(*shape, generator=generator, dtype=torch.complex64)
    mask = torch.zeros(1, FRAMES, 8, 8)
    for frame in range(FRAMES):
        mask[0, frame, frame::FRAMES] = 1  # other lines in every frame
    maps = torch.ones(1, 2, 8, 8, dtype=torch.complex64) / 2**0.5
    result = cascade(estimate, measured, mask, maps, None, None)
    sampled = mask.bool().unsqueeze(2).expand_as(result)
    torch.testing.assert_close(result[sampled], measured[sampled])
    assert torch.equal(result[~sampled], estimate[~sampled])


def test_the_neighbouring_frames_change_the_reconstruction():
    network = window_network()
    activate_adapters(network)
    masked_kspace, mask = window_batch(1, 4, 24, 32)
    other = masked_kspace.clone()
    other[:, 0] = window_batch(1, 4, 24, 32, seed=5)[0][:, 0]
    first = network(masked_kspace, mask, *embeddings(1))
    second = network(other, mask, *embeddings(1))
    assert (first - second).abs().max() > 1e-4


@pytest.mark.parametrize("changed", ["undersampling", "metadata"])
def test_each_text_changes_the_window_reconstruction(changed):
    network = window_network()
    activate_adapters(network)
    masked_kspace, mask = window_batch(1, 4, 24, 32)
    texts = dict(zip(("undersampling", "metadata"), embeddings(1), strict=True))
    other = dict(texts)
    other[changed] = embeddings(1, seed=5)[("undersampling", "metadata").index(changed)]
    first = network(masked_kspace, mask, texts["undersampling"], texts["metadata"])
    second = network(masked_kspace, mask, other["undersampling"], other["metadata"])
    assert (first - second).abs().max() > 1e-4


def test_the_window_network_is_bitwise_deterministic():
    masked_kspace, mask = window_batch(2, 3, 24, 32)
    outputs = []
    for _ in range(2):
        network = window_network()
        activate_adapters(network)
        output = network(masked_kspace, mask, *embeddings(2))
        output.sum().backward()
        outputs.append((output, [p.grad.clone() for p in network.parameters()]))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(outputs[0][1], outputs[1][1], strict=True))


def test_gradient_checkpointing_gives_the_same_gradients_in_the_window_network():
    masked_kspace, mask = window_batch(1, 3, 24, 32)
    gradients = []
    for checkpointing in (False, True):
        network = window_network(gradient_checkpointing=checkpointing)
        activate_adapters(network)
        network.train()
        network(masked_kspace, mask, *embeddings(1)).sum().backward()
        gradients.append([p.grad for p in network.parameters()])
    for plain, recomputed in zip(*gradients, strict=True):
        torch.testing.assert_close(plain, recomputed, rtol=1e-5, atol=1e-6)


def test_a_window_network_refuses_single_frames_with_the_layout_it_needs():
    masked_kspace, mask = window_batch(1, 3, 24, 32)
    with pytest.raises(ValueError, match=r"3-frame window network needs complex masked_kspace"):
        window_network()(masked_kspace[:, 0], mask[:, 0], *embeddings(1))


def test_the_window_reconstructor_returns_the_zero_filled_frames_of_a_slice_untrained():
    encoder = build_text_encoder("none")
    network = build_network(model_preset("tiny_window"), encoder)
    reconstructor = WindowReconstructor(
        NetworkReconstructor(network, encoder), network, windows_per_call=2
    )
    masked_kspace, masks = _slice(frames=4)
    result = reconstructor.reconstruct_cine(masked_kspace, masks, [0, 2, 3], CineTexts("a", "b"))
    zero_filled = rss(ifft2c(torch.from_numpy(masked_kspace[[0, 2, 3]]))).numpy()
    np.testing.assert_array_equal(result.images, zero_filled)


@pytest.mark.parametrize("frames", [1, 2])
def test_the_window_reconstructor_takes_series_shorter_than_its_window(frames):
    encoder = build_text_encoder("none")
    network = build_network(model_preset("small_window"), encoder)  # a 5-frame window
    reconstructor = WindowReconstructor(NetworkReconstructor(network, encoder), network)
    masked_kspace, masks = _slice(frames=frames)
    result = reconstructor.reconstruct_cine(
        masked_kspace, masks, range(frames), CineTexts("a", "b")
    )
    assert result.images.shape == (frames, 24, 32)
    assert np.isfinite(result.images).all()


def test_the_window_reconstructor_asks_for_the_slices_texts():
    encoder = build_text_encoder("none")
    network = build_network(model_preset("tiny_window"), encoder)
    reconstructor = WindowReconstructor(NetworkReconstructor(network, encoder), network)
    assert isinstance(reconstructor, TextConditionedCineReconstructor)
    masked_kspace, masks = _slice(frames=3)
    with pytest.raises(ValueError, match="needs the slice's texts"):
        reconstructor.reconstruct_cine(masked_kspace, masks, [0])


def _slice(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """complex64 (frames, 3, 24, 32) masked k-space and float32 (frames, 24, 32) kt masks."""
    rng = np.random.default_rng(0)
    shape = (frames, 3, 24, 32)
    kspace = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)
    masks = make_mask("ktGaussian", 4, (24, 32), num_frames=frames, acs_width=6).values
    return kspace * masks[:, None], masks.astype(np.float32)


@requires_cuda
def test_the_window_network_runs_forward_and_backward_on_cuda_in_bf16_with_checkpointing():
    network = window_network(gradient_checkpointing=True).cuda().train()
    activate_adapters(network)
    masked_kspace, mask = window_batch(2, 4, 24, 32)
    undersampling, metadata = (text.cuda() for text in embeddings(2))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = network(masked_kspace.cuda(), mask.cuda(), undersampling, metadata)
    assert output.dtype == torch.float32
    output.mean().backward()
    assert torch.isfinite(output).all()
    assert all(torch.isfinite(p.grad).all() for p in network.parameters() if p.grad is not None)


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_opacus_per_window_gradients_match_each_window_alone():
    network = window_network(coil_batching=False)  # as DP-SGD builds it
    activate_adapters(network)
    masked_kspace, mask = window_batch(3, 3, 24, 20)
    texts = embeddings(3)
    target = torch.rand(3, 24, 20, generator=torch.Generator().manual_seed(2))
    private = GradSampleModule(network, batch_first=True, loss_reduction="sum")
    output = private(masked_kspace, mask, *texts)
    sum(reconstruction_loss(output[i : i + 1], target[i : i + 1]) for i in range(3)).backward()
    per_window = {name: p.grad_sample.clone() for name, p in network.named_parameters()}
    private.disable_hooks()
    names, parameters = zip(*network.named_parameters(), strict=True)
    for index in range(3):
        alone = (masked_kspace, mask, *texts, target)
        inputs = [tensor[index : index + 1] for tensor in alone]
        loss = reconstruction_loss(network(*inputs[:-1]), inputs[-1])
        gradients = dict(zip(names, torch.autograd.grad(loss, parameters), strict=True))
        errors = {
            name: float((per_window[name][index] - gradient).abs().max())
            / float(gradient.abs().max().clamp_min(1e-8))
            for name, gradient in gradients.items()
        }
        assert max(errors.values()) < 1e-2, max(errors, key=errors.get)
