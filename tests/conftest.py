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


@pytest.fixture
def deny_access(monkeypatch: pytest.MonkeyPatch):
    """``deny_access(path)`` makes a file or folder unreadable: mode 000, and, when the tests
    run as root (whom mode bits do not stop), listing or opening that path raises
    ``PermissionError`` as it would for anyone else. Modes are restored afterwards."""
    import errno
    import os

    denied: dict[str, int] = {}

    def refuse(real):
        def call(path, *args, **kwargs):
            if os.fspath(path) in denied:
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real(path, *args, **kwargs)

        return call

    if os.geteuid() == 0:
        monkeypatch.setattr(os, "scandir", refuse(os.scandir))
        monkeypatch.setattr(os, "open", refuse(os.open))

    def deny(path) -> None:
        denied[os.fspath(path)] = path.stat().st_mode
        path.chmod(0)

    yield deny
    for path, mode in denied.items():
        os.chmod(path, mode)
