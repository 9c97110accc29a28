"""Device choice, mixed precision and seeding."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import numpy as np
import torch


def select_device(name: str = "auto") -> torch.device:
    """``auto``: the first CUDA device if there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} was asked for but torch sees no CUDA device")
    return device


@contextlib.contextmanager
def autocast(device: torch.device, bf16: bool) -> Iterator[None]:
    """bf16 autocast on CUDA when asked; full precision on CPU."""
    if device.type == "cuda" and bf16:
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


@contextlib.contextmanager
def deterministic_kernels(enabled: bool) -> Iterator[None]:
    """Deterministic kernels while training, when asked; the previous settings afterwards.

    On the CPU the same seed, data and thread count give the same bits already. On CUDA,
    cuDNN picks convolution algorithms by timing them and several kernels add with atomics,
    so two runs differ in the last bits and then drift apart; this switch makes torch use
    deterministic algorithms (and refuse an operation that has none), turns cuDNN's
    benchmarking off and sets the cuBLAS workspace that deterministic matrix products need
    (only where CUBLAS_WORKSPACE_CONFIG is unset; cuBLAS reads it when CUDA starts, so set
    it yourself if CUDA ran before training). It costs speed on a GPU.
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.backends.cudnn.benchmark,
        torch.backends.cudnn.deterministic,
    )
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = previous[1:]


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, numpy and torch; returns a generator for data order."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
