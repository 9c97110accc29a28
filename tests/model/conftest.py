"""A small multi-coil problem and the tiny network for model tests."""

import dataclasses

import pytest
import torch

from cardiomm.masks import make_mask
from cardiomm.model.config import ModelConfig
from cardiomm.model.network import CardioMMNet
from tests.model.phantom import PhantomProblem, make_problem

TEXT_DIM = 12


def undersampled_batch(batch: int, coils: int, height: int, width: int, seed: int = 0):
    """(masked k-space complex64 (B, C, H, W), mask float32 (B, H, W)) with a real ACS block."""
    generator = torch.Generator().manual_seed(seed)
    kspace = torch.randn(batch, coils, height, width, generator=generator, dtype=torch.complex64)
    mask = torch.from_numpy(
        make_mask("Uniform", 4, (height, width), acs_width=6).frame(0).astype("float32")
    ).expand(batch, height, width)
    return kspace * mask[:, None], mask.contiguous()


def embeddings(batch: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (
        torch.randn(batch, TEXT_DIM, generator=generator),
        torch.randn(batch, TEXT_DIM, generator=generator),
    )


def model_preset(name: str) -> ModelConfig:
    """The model config of configs/model/<name>.yaml."""
    from cardiomm.config import load_config

    return ModelConfig.from_mapping(load_config([f"model={name}"]).model)


def tiny_network(**changes) -> CardioMMNet:
    torch.manual_seed(0)
    return CardioMMNet(dataclasses.replace(ModelConfig(), **changes), text_dim=TEXT_DIM)


def activate_adapters(network: CardioMMNet) -> None:
    """Metadata adapters, prompt fusions and U-Net heads start at zero (identity blocks);
    give them weight as training would, so every input reaches the output."""
    generator = torch.Generator().manual_seed(1)
    for name, parameter in network.named_parameters():
        if ".affine." in name:
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.5
        elif name.endswith(("head.weight", "fuse.weight")):
            parameter.data = torch.randn(parameter.shape, generator=generator) * 0.1


@pytest.fixture
def network() -> CardioMMNet:
    return tiny_network()


@pytest.fixture(scope="module")
def problem() -> PhantomProblem:
    """The phantom problem of tests/model/phantom.py, built once per module."""
    return make_problem()
