"""The CardioMM network: shapes, data consistency, conditioning, variants, Opacus."""

import dataclasses

import pytest
import torch
from opacus import GradSampleModule

from cardiomm.model.cascade import GradientDataConsistency
from cardiomm.model.config import ModelConfig
from cardiomm.model.factory import build_network
from cardiomm.model.network import CardioMMNet, count_parameters
from cardiomm.physics import ifft2c, rss
from cardiomm.train.loss import reconstruction_loss
from tests.conftest import requires_cuda
from tests.model.conftest import (
    TEXT_DIM,
    activate_adapters,
    embeddings,
    model_preset,
    tiny_network,
    undersampled_batch,
)


@pytest.mark.parametrize("matrix", [(24, 32), (25, 37), (33, 20)])
@pytest.mark.parametrize("coils", [1, 4, 32])
def test_output_is_a_finite_image_for_any_matrix_and_coil_count(network, matrix, coils):
    masked_kspace, mask = undersampled_batch(2, coils, *matrix)
    output = network(masked_kspace, mask, *embeddings(2))
    assert output.shape == (2, *matrix)
    assert output.dtype == torch.float32
    assert torch.isfinite(output).all()


def test_a_single_image_reconstructs(network):
    masked_kspace, mask = undersampled_batch(1, 3, 20, 24)
    assert network(masked_kspace, mask, *embeddings(1)).shape == (1, 20, 24)


def test_batch_elements_are_reconstructed_independently(network):
    activate_adapters(network)
    masked_kspace, mask = undersampled_batch(3, 4, 24, 32)
    undersampling, metadata = embeddings(3)
    network.eval()
    batched = network(masked_kspace, mask, undersampling, metadata)
    single = network(masked_kspace[1:2], mask[1:2], undersampling[1:2], metadata[1:2])
    torch.testing.assert_close(batched[1:2], single, rtol=1e-4, atol=1e-5)


def test_data_consistency_resets_sampled_kspace_to_the_measurement_at_unit_step():
    consistency = GradientDataConsistency()
    estimate = torch.randn(1, 2, 8, 8, dtype=torch.complex64)
    measured = torch.randn(1, 2, 8, 8, dtype=torch.complex64)
    mask = torch.zeros(1, 8, 8)
    mask[:, ::2] = 1
    result = consistency(estimate, measured, mask)
    sampled = mask.bool().unsqueeze(1).expand_as(result)
    torch.testing.assert_close(result[sampled], measured[sampled])
    assert torch.equal(result[~sampled], estimate[~sampled])


def test_data_consistency_moves_sampled_kspace_by_the_step_size():
    consistency = GradientDataConsistency()
    consistency.step.weight.data.fill_(0.25)
    estimate = torch.zeros(1, 1, 4, 4, dtype=torch.complex64)
    measured = torch.ones(1, 1, 4, 4, dtype=torch.complex64)
    result = consistency(estimate, measured, torch.ones(1, 4, 4))
    torch.testing.assert_close(result, torch.full_like(measured, 0.25))


ARCHITECTURES_AND_SIZES = [
    (architecture, size)
    for architecture in ("cardiomm", "dcunet")
    for size in ("tiny", "small", "paper")
]


@pytest.mark.parametrize(("architecture", "size"), ARCHITECTURES_AND_SIZES)
def test_an_untrained_network_returns_the_zero_filled_image(architecture, size):
    config = dataclasses.replace(model_preset(size), architecture=architecture)
    network = CardioMMNet(config, text_dim=TEXT_DIM)
    masked_kspace, mask = undersampled_batch(2, 3, 25, 37)
    texts = embeddings(2) if architecture == "cardiomm" else ()
    zero_filled = rss(ifft2c(masked_kspace)).to(torch.float32)
    torch.testing.assert_close(network(masked_kspace, mask, *texts), zero_filled, rtol=0, atol=0)


def test_an_untrained_network_returns_the_zero_filled_image_whatever_the_texts(network):
    masked_kspace, mask = undersampled_batch(1, 4, 24, 32)
    zero_filled = rss(ifft2c(masked_kspace)).to(torch.float32)
    for seed in (0, 5):
        torch.testing.assert_close(
            network(masked_kspace, mask, *embeddings(1, seed=seed)), zero_filled, rtol=0, atol=0
        )


def test_the_same_seed_builds_the_same_weights_whatever_ran_before():
    torch.manual_seed(123)
    first = build_network(ModelConfig(architecture="dcunet"), None, seed=7).state_dict()
    torch.rand(1000)  # another RNG state before the second build
    second = build_network(ModelConfig(architecture="dcunet"), None, seed=7).state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)


def test_another_seed_builds_other_weights():
    first = build_network(ModelConfig(architecture="dcunet"), None, seed=7).state_dict()
    second = build_network(ModelConfig(architecture="dcunet"), None, seed=8).state_dict()
    assert any(not torch.equal(first[key], second[key]) for key in first)


def test_changing_the_metadata_text_changes_the_output(network):
    activate_adapters(network)
    masked_kspace, mask = undersampled_batch(1, 4, 24, 32)
    undersampling, metadata = embeddings(1)
    _, other_metadata = embeddings(1, seed=5)
    first = network(masked_kspace, mask, undersampling, metadata)
    second = network(masked_kspace, mask, undersampling, other_metadata)
    assert (first - second).abs().max() > 1e-4


def test_changing_the_undersampling_text_changes_the_output(network):
    activate_adapters(network)
    masked_kspace, mask = undersampled_batch(1, 4, 24, 32)
    undersampling, metadata = embeddings(1)
    other_undersampling, _ = embeddings(1, seed=5)
    first = network(masked_kspace, mask, undersampling, metadata)
    second = network(masked_kspace, mask, other_undersampling, metadata)
    assert (first - second).abs().max() > 1e-4


def test_metadata_adapters_start_as_the_identity(network):
    activate_adapters(network)
    for name, parameter in network.named_parameters():
        if ".affine." in name:
            parameter.data.zero_()
    masked_kspace, mask = undersampled_batch(1, 4, 24, 32)
    undersampling, metadata = embeddings(1)
    _, other_metadata = embeddings(1, seed=5)
    torch.testing.assert_close(
        network(masked_kspace, mask, undersampling, metadata),
        network(masked_kspace, mask, undersampling, other_metadata),
    )


def test_a_text_conditioned_network_refuses_to_run_without_embeddings(network):
    masked_kspace, mask = undersampled_batch(1, 2, 16, 16)
    with pytest.raises(ValueError, match="embedding"):
        network(masked_kspace, mask)


def test_dcunet_variant_has_no_text_parameters_and_needs_no_texts():
    dcunet = tiny_network(architecture="dcunet")
    names = [name for name, _ in dcunet.named_parameters()]
    assert not any("projection" in n or "prompter" in n or "adapter" in n for n in names)
    masked_kspace, mask = undersampled_batch(2, 3, 24, 32)
    assert dcunet(masked_kspace, mask).shape == (2, 24, 32)


def test_metadata_free_variant_has_no_adapters_but_keeps_prompts():
    torch.manual_seed(0)
    cardiosm = CardioMMNet(ModelConfig(), text_dim=TEXT_DIM, use_metadata=False)
    names = [name for name, _ in cardiosm.named_parameters()]
    assert not any("adapter" in n or "metadata_projection" in n for n in names)
    assert any("prompter" in n for n in names)
    masked_kspace, mask = undersampled_batch(1, 3, 24, 32)
    undersampling, _ = embeddings(1)
    assert torch.isfinite(cardiosm(masked_kspace, mask, undersampling, None)).all()


def test_every_parameter_receives_a_gradient(network):
    activate_adapters(network)
    masked_kspace, mask = undersampled_batch(2, 3, 24, 32)
    network(masked_kspace, mask, *embeddings(2)).mean().backward()
    assert [n for n, p in network.named_parameters() if p.grad is None] == []


def test_gradient_checkpointing_gives_the_same_gradients():
    masked_kspace, mask = undersampled_batch(1, 3, 24, 32)
    undersampling, metadata = embeddings(1)
    gradients = []
    for checkpointing in (False, True):
        network = tiny_network(gradient_checkpointing=checkpointing)
        activate_adapters(network)
        network(masked_kspace, mask, undersampling, metadata).square().mean().backward()
        gradients.append([p.grad.clone() for p in network.parameters()])
    for plain, checkpointed in zip(*gradients, strict=True):
        torch.testing.assert_close(plain, checkpointed)


def test_coil_loop_and_coil_batching_give_the_same_image():
    masked_kspace, mask = undersampled_batch(2, 5, 24, 32)
    undersampling, metadata = embeddings(2)
    batched = tiny_network(coil_batching=True).eval()
    looped = tiny_network(coil_batching=False).eval()
    activate_adapters(batched)
    activate_adapters(looped)
    torch.testing.assert_close(
        batched(masked_kspace, mask, undersampling, metadata),
        looped(masked_kspace, mask, undersampling, metadata),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_opacus_per_sample_gradients_match_one_example_at_a_time():
    network = tiny_network(coil_batching=False)
    activate_adapters(network)
    masked_kspace, mask = undersampled_batch(3, 3, 24, 20)
    undersampling, metadata = embeddings(3)
    target = torch.rand(3, 24, 20, generator=torch.Generator().manual_seed(2))
    private = GradSampleModule(network, batch_first=True, loss_reduction="sum")
    output = private(masked_kspace, mask, undersampling, metadata)
    sum(reconstruction_loss(output[i : i + 1], target[i : i + 1]) for i in range(3)).backward()
    per_sample = {name: p.grad_sample.clone() for name, p in network.named_parameters()}
    private.disable_hooks()
    for index in range(3):
        output = network(
            masked_kspace[index : index + 1],
            mask[index : index + 1],
            undersampling[index : index + 1],
            metadata[index : index + 1],
        )
        loss = reconstruction_loss(output, target[index : index + 1])
        names, parameters = zip(*network.named_parameters(), strict=True)
        single = torch.autograd.grad(loss, parameters)
        for name, gradient in zip(names, single, strict=True):
            scale = gradient.abs().max().clamp_min(1e-8)
            assert (per_sample[name][index] - gradient).abs().max() / scale < 1e-2, name


def test_paper_size_has_about_sixty_million_parameters():
    from cardiomm.config import load_config

    config = ModelConfig.from_mapping(load_config(["model=paper"]).model)
    paper = CardioMMNet(config, text_dim=512)
    assert 55e6 < count_parameters(paper) < 70e6


def test_unknown_model_config_keys_are_named():
    with pytest.raises(ValueError, match="cascades_count"):
        ModelConfig.from_mapping({"cascades_count": 3})


@requires_cuda
def test_forward_and_backward_run_on_cuda_in_bf16():
    network = tiny_network().cuda()
    masked_kspace, mask = undersampled_batch(2, 4, 24, 32)
    undersampling, metadata = embeddings(2)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        output = network(masked_kspace.cuda(), mask.cuda(), undersampling.cuda(), metadata.cuda())
    assert output.dtype == torch.float32
    output.mean().backward()
    assert torch.isfinite(output).all()


def test_model_presets_build(tmp_path):
    from cardiomm.config import load_config

    for preset in ("tiny", "small"):
        config = ModelConfig.from_mapping(load_config([f"model={preset}"]).model)
        assert dataclasses.is_dataclass(config)


def test_the_unet_depth_follows_its_widths():
    shallow = dataclasses.replace(
        ModelConfig().image_net,
        widths=(8, 12, 16),
        prompt_channels=(4, 6),
        prompt_sizes=(8, 4),
    )
    network = CardioMMNet(dataclasses.replace(ModelConfig(), image_net=shallow), TEXT_DIM)
    assert len(network.cascades[0].image_net.unet.down) == 2
    masked_kspace, mask = undersampled_batch(1, 3, 21, 30)
    assert network(masked_kspace, mask, *embeddings(1)).shape == (1, 21, 30)


def test_prompt_settings_must_match_the_unet_depth():
    with pytest.raises(ValueError, match=r"prompt_channels must give one value per level \(2"):
        dataclasses.replace(ModelConfig().image_net, widths=(8, 12, 16))
