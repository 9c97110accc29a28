"""Shared fixtures: deterministic random tensors and the CUDA marker."""

import numpy as np
import pytest
import torch

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# Test tensors are tiny: one thread is as fast as two, and two OpenMP threads stall for
# seconds per convolution whenever another process holds the second core.
torch.set_num_threads(1)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def random_complex(
    shape: tuple[int, ...], generator: torch.Generator, dtype: torch.dtype = torch.complex128
) -> torch.Tensor:
    """Standard complex Gaussian tensor of ``shape``."""
    return torch.randn(shape, generator=generator, dtype=dtype)
