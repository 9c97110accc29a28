"""How one training step changes the weights, behind one interface for plain and DP-SGD training.

An updater takes the step's loss (forward pass done) and does the rest: gradients, their
check, the optimiser step. :class:`PlainUpdates` is ordinary training with gradient clipping;
:class:`cardiomm.privacy.dp_sgd.PrivateUpdates` clips per example and adds noise. The trainer
(cardiomm/train/loop.py) calls :meth:`apply` once per step and :meth:`close` at the end.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Protocol

import torch
from torch import nn


class Updates(Protocol):
    """One training step's update, from the loss to the optimiser step."""

    def apply(
        self,
        loss: torch.Tensor,
        reference_weights: Mapping[str, torch.Tensor] | None = None,
        proximal_mu: float = 0.0,
    ) -> bool:
        """Backward pass of the batch-mean ``loss`` and, when everything is finite, one
        optimiser step; whether the step was applied (a skipped one changes nothing)."""
        ...

    def close(self) -> None:
        """Undo what the updater did to the network (hooks); called also on errors."""
        ...


class PlainUpdates:
    """Ordinary training: the gradient of the loss (FedProx's term included in it by the
    trainer), clipped to ``gradient_clip`` in norm (0: no clipping), one optimiser step when
    the loss and every gradient are finite.

    Args:
        network: the model.
        optimiser: the optimiser over its trainable parameters.
        gradient_clip: the largest gradient norm (0: no clipping).
        synchronise: data-parallel training's gradient all-reduce, called after the
            backward pass with (network, loss); returns the global batch's loss.

    Attributes:
        last_loss: the loss of the last step (the global batch's with ``synchronise``).
    """

    def __init__(
        self,
        network: nn.Module,
        optimiser: torch.optim.Optimizer,
        gradient_clip: float,
        synchronise: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.network = network
        self.optimiser = optimiser
        self.gradient_clip = gradient_clip
        self.synchronise = synchronise
        self.last_loss = math.nan

    def apply(
        self,
        loss: torch.Tensor,
        reference_weights: Mapping[str, torch.Tensor] | None = None,
        proximal_mu: float = 0.0,
    ) -> bool:
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if self.synchronise is not None:
            loss = self.synchronise(self.network, loss)
        self.last_loss = float(loss.detach())
        # One bad slice or an overflow must not poison the weights: skip the update.
        if not math.isfinite(self.last_loss) or not gradients_are_finite(self.network):
            return False
        if self.gradient_clip:
            torch.nn.utils.clip_grad_norm_(self.network.parameters(), self.gradient_clip)
        self.optimiser.step()
        return True

    def close(self) -> None:
        """Nothing to undo."""


def gradients_are_finite(network: nn.Module) -> bool:
    return all(
        torch.isfinite(parameter.grad).all()
        for parameter in network.parameters()
        if parameter.grad is not None
    )
