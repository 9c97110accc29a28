"""Sample-level DP-SGD for the local trainer (Opacus): per-slice clipping, Gaussian noise,
and the accountant charged for every noisy step.

How it is put together:

- :class:`opacus.GradSampleModule` hooks the network's layers and computes a gradient per
  slice of the batch (``p.grad_sample``, ``(B, *p.shape)``). The network must run its
  sensitivity U-Net coil by coil (``coil_batching=False``): Opacus takes the first axis of
  every layer input as the example axis, and coil batching puts ``B * C`` there.
- :class:`opacus.optimizers.DPOptimizer` clips each slice's gradient to ``max_grad_norm``,
  sums, adds ``N(0, (noise_multiplier * max_grad_norm)^2)`` noise and divides by the batch
  size. Only ``pre_step`` (clip + noise) is used; the wrapped AdamW steps afterwards, so the
  trainer can add the data-free FedProx gradient and skip non-finite updates in between.
- :class:`~cardiomm.privacy.accountant.SiteAccountant` is charged one step per noisy
  gradient, skipped updates included (the noise was drawn; skipping is post-processing).

Sampling assumption of the accounting: the accountant treats every step as a Poisson
subsample with rate ``q = batch_size / dataset_size`` (Opacus' RDP analysis). The trainer
instead draws fixed-size batches from a shuffled pass over the site's slices (a batch must
share one matrix size, so variable Poisson batches do not fit the loader). This is the
usual practice (Opacus' own ``poisson_sampling=False``) but the analysis does not strictly
cover it: shuffled batches can leak more than the reported epsilon says. The order is
drawn from OS entropy, never from the run's seed: a server that knows the seed would know
which slices formed each batch, and the subsampling would then amplify nothing.

The unit of privacy here is one training slice (one frame of one slice position). A patient
contributes many slices, so a patient-level guarantee is weaker (group privacy); with
``privacy.dp_sgd.unit=patient`` the trainer uses cardiomm/privacy/patient_dp.py instead.
"""

from __future__ import annotations

import dataclasses
import secrets
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from opacus import GradSampleModule
from opacus.accountants.utils import get_noise_multiplier
from opacus.optimizers import DPOptimizer
from torch import nn

from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.errors import PrivacyBudgetSpentError
from cardiomm.privacy.settings import DPSGDSettings

# PyTorch warns on every backward pass that a full backward hook fires although the network's
# inputs need no gradient; that is what Opacus' hooks expect, not a problem.
_HOOK_WARNING = "Full backward hook is firing when gradients are computed with respect to module"


def sample_rate(batch_size: int, dataset_size: int) -> float:
    """The accountant's sampling rate ``q = batch_size / dataset_size`` (at most 1)."""
    if dataset_size < 1 or batch_size < 1:
        raise ValueError(
            f"DP-SGD needs a batch size and a data set of at least 1 slice, got {batch_size} "
            f"and {dataset_size}"
        )
    return min(1.0, batch_size / dataset_size)


def site_sample_rate(settings: DPSGDSettings, batch_size: int, train_data: Any) -> float:
    """The accountant's rate for the unit in force: batch size over slices (``slice``), or
    patients per step over the site's patients (``patient``)."""
    if settings.unit == "patient":
        from cardiomm.privacy.patient_dp import patient_groups, patient_sample_rate

        return patient_sample_rate(settings, len(patient_groups(train_data)))
    return sample_rate(batch_size, len(train_data))


def calibrated(settings: DPSGDSettings, rate: float, planned_steps: int) -> DPSGDSettings:
    """``settings`` with the noise multiplier that makes ``planned_steps`` steps at sampling
    rate ``rate`` spend ``target_epsilon`` (Opacus' search over its RDP accountant), and that
    epsilon as the budget unless a smaller one is set; unchanged without a target."""
    if settings.target_epsilon is None:
        return settings
    with warnings.catch_warnings():
        # Few steps at a high rate: Opacus suggests more RDP orders; the bound still holds.
        warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
        noise = get_noise_multiplier(
            target_epsilon=settings.target_epsilon,
            target_delta=settings.delta,
            sample_rate=rate,
            steps=max(1, planned_steps),
            accountant="rdp",
        )
    budgets = [b for b in (settings.epsilon_budget, settings.target_epsilon) if b is not None]
    return dataclasses.replace(settings, noise_multiplier=float(noise), epsilon_budget=min(budgets))


def affordable_steps(
    accountant: SiteAccountant, settings: DPSGDSettings, rate: float, wanted: int
) -> int:
    """How many of ``wanted`` steps at sampling rate ``rate`` the epsilon budget still allows."""
    return accountant.affordable_steps(
        settings.noise_multiplier, rate, settings.delta, settings.epsilon_budget, wanted
    )


def check_budget(accountant: SiteAccountant, settings: DPSGDSettings, rate: float) -> None:
    """Raise :class:`PrivacyBudgetSpentError` when not even one more step fits in the budget."""
    if settings.epsilon_budget is not None and not affordable_steps(accountant, settings, rate, 1):
        raise PrivacyBudgetSpentError(
            accountant.epsilon(settings.delta),
            settings.epsilon_budget,
            settings.delta,
            accountant.steps,
        )


def check_noise(settings: DPSGDSettings) -> None:
    """Refuse a negative noise multiplier or a clipping norm that is not positive."""
    if settings.noise_multiplier < 0 or settings.max_grad_norm <= 0:
        raise ValueError(
            "DP-SGD needs noise_multiplier >= 0 and max_grad_norm > 0, got "
            f"{settings.noise_multiplier} and {settings.max_grad_norm}"
        )


def secret_generator(device: torch.device | str = "cpu") -> torch.Generator:
    """A generator seeded from OS entropy (for DP noise and batch order).

    Never seed DP noise from the run's seed: the server sends that seed, and whoever can
    replay the noise can subtract it.
    """
    return torch.Generator(device=device).manual_seed(secrets.randbits(63))


class PrivateUpdates:
    """DP-SGD for one training run: owns the per-sample hooks and the noisy gradient.

    Use per step: :meth:`zero_grad`, forward through the network, :meth:`backward` on the
    batch-mean loss, then :meth:`update`. Call :meth:`close` at the end (also on errors) to
    take the hooks off the network, which stays the caller's.

    Args:
        network: the model; its state dict is untouched by wrapping.
        optimiser: the optimiser over ``network``'s trainable parameters (wrapped here).
        settings: noise multiplier and clipping norm.
        batch_size: the loader's batch size (the noisy sum is divided by it, as in Opacus).
        accountant: charged one step per :meth:`update`.
        rate: the accountant's sampling rate (:func:`sample_rate`).
        noise_generator: source of the noise (default: :func:`secret_generator`).
    """

    def __init__(
        self,
        network: nn.Module,
        optimiser: torch.optim.Optimizer,
        settings: DPSGDSettings,
        batch_size: int,
        accountant: SiteAccountant,
        rate: float,
        noise_generator: torch.Generator | None = None,
    ) -> None:
        config = getattr(network, "config", None)
        if getattr(config, "coil_batching", False):
            raise ValueError(
                "DP-SGD needs the network built with coil_batching=False (model.coil_batching): "
                "with coil batching Opacus would take each coil for a separate example and clip "
                "the wrong gradients"
            )
        check_noise(settings)
        self.settings = settings
        self.accountant = accountant
        self.rate = rate
        self.network = network
        # strict: refuse layers whose per-sample gradients Opacus cannot compute (BatchNorm).
        self.module = GradSampleModule(network, batch_first=True, loss_reduction="mean")
        device = next(network.parameters()).device
        self.optimiser = DPOptimizer(
            optimiser,
            noise_multiplier=settings.noise_multiplier,
            max_grad_norm=settings.max_grad_norm,
            expected_batch_size=batch_size,
            loss_reduction="mean",
            generator=noise_generator or secret_generator(device),
        )

    def apply(
        self,
        loss: torch.Tensor,
        reference_weights: Mapping[str, torch.Tensor] | None = None,
        proximal_mu: float = 0.0,
    ) -> bool:
        """One DP-SGD step from the batch-mean ``loss``: :meth:`zero_grad`, :meth:`backward`,
        :meth:`update` (the :class:`cardiomm.train.updates.Updates` interface)."""
        self.zero_grad()
        self.backward(loss)
        return self.update(reference_weights, proximal_mu)

    def zero_grad(self) -> None:
        """Clear gradients and per-sample gradients (Opacus otherwise accumulates them)."""
        self.optimiser.zero_grad(set_to_none=True)

    def backward(self, loss: torch.Tensor) -> None:
        """Backward pass of the batch-mean loss; fills ``p.grad_sample`` (B, *p.shape)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_HOOK_WARNING, category=UserWarning)
            loss.backward()

    def privatise(self) -> None:
        """Replace ``p.grad`` by the clipped, noised batch mean and charge the accountant."""
        self.optimiser.pre_step()
        self.accountant.step(self.settings.noise_multiplier, self.rate)

    def update(
        self,
        reference_weights: Mapping[str, torch.Tensor] | None = None,
        proximal_mu: float = 0.0,
    ) -> bool:
        """Privatise the gradient, add the FedProx gradient, and step if all is finite.

        The FedProx term mu/2 ||w - w_ref||^2 holds no data, so its gradient
        ``mu (w - w_ref)`` is added after the noise: it needs neither clipping nor noise
        (Opacus' hooks would silently drop it from the per-sample gradients anyway).

        Returns:
            whether the update was applied (False: a non-finite noisy gradient, skipped).
            The decision reads only the noisy gradient, so it is post-processing and costs
            no privacy; the step is charged either way.
        """
        self.privatise()
        if proximal_mu:
            if reference_weights is None:
                raise ValueError("proximal_mu > 0 needs the reference (global) weights")
            add_proximal_gradient(self.network, reference_weights, proximal_mu)
        if not all(torch.isfinite(gradient).all() for gradient in _gradients(self.network)):
            return False
        self.optimiser.original_optimizer.step()
        return True

    def close(self) -> None:
        """Take Opacus' hooks and per-sample attributes off the network."""
        self.optimiser.zero_grad(set_to_none=True)
        self.module._close()


def add_proximal_gradient(
    network: nn.Module, reference_weights: Mapping[str, torch.Tensor], mu: float
) -> None:
    """``p.grad += mu (p - p_ref)`` for every trainable parameter: the FedProx gradient."""
    with torch.no_grad():
        for name, parameter in network.named_parameters():
            if not parameter.requires_grad:
                continue
            pull = mu * (parameter - reference_weights[name].to(parameter.device))
            if parameter.grad is None:
                parameter.grad = pull
            else:
                parameter.grad.add_(pull)


def _gradients(network: nn.Module) -> Iterator[torch.Tensor]:
    return (p.grad for p in network.parameters() if p.grad is not None)
