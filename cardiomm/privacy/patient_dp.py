"""Patient-level DP-SGD: the unit of privacy is a patient, all of whose slices and frames
may change at once.

Each step (:class:`PatientUpdates`):

1. **Poisson sampling of patients**: every patient of the site is in the step's batch with
   probability ``q = patients_per_step / patients`` (independently, from OS entropy), so the
   batch size varies and may be 0;
2. **one clipped contribution per patient**: ``slices_per_patient`` of the patient's
   images (drawn without replacement) are reconstructed one at a time (a patient's series
   differ in matrix size) and the gradient of their mean loss is clipped to
   ``max_grad_norm`` as a whole: however many slices a patient has, it moves the sum by at
   most the clipping norm;
3. **Gaussian noise** of ``noise_multiplier x max_grad_norm`` per coordinate is added to the
   sum, which is divided by the expected batch ``q x patients``;
4. the accountant is charged one step of the subsampled Gaussian mechanism at rate ``q``
   (Opacus' RDP analysis, exactly the sampling it assumes).

Who is a patient: the folder holding the files (``Center001/<scanner>/P007/``, the layout
the cohort manifest splits patients by). Files that share a folder count as one patient,
which only widens the unit (a stronger guarantee).

The per-patient gradients come from ordinary backward passes (micro-batches), so the
network needs no per-sample hooks and may batch its coils; the cost is one backward pass per
sampled slice (benchmarks/dp_step_cost.py measures it against Opacus' per-slice DP-SGD and
plain training).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import nn

from cardiomm.data.dataset import SliceDataset, SliceSample
from cardiomm.privacy.accountant import SiteAccountant
from cardiomm.privacy.dp_sgd import add_proximal_gradient, check_noise, secret_generator
from cardiomm.privacy.settings import DPSGDSettings


def patient_groups(dataset: SliceDataset) -> list[list[int]]:
    """The dataset's items grouped by patient (the folder of their file), in folder order.

    Raises:
        TypeError: ``dataset`` is not a :class:`SliceDataset` (patients come from its index).
    """
    if not isinstance(dataset, SliceDataset):
        raise TypeError(
            f"patient-level DP-SGD needs a SliceDataset to find each image's patient, got "
            f"{type(dataset).__name__}"
        )
    groups: dict[str, list[int]] = {}
    for item, image in enumerate(dataset.index.images):
        folder = str(dataset.index.files[image.file_number].path.parent)
        groups.setdefault(folder, []).append(item)
    return [groups[folder] for folder in sorted(groups)]


def patient_sample_rate(settings: DPSGDSettings, patients: int) -> float:
    """The accountant's rate ``q = patients_per_step / patients`` (at most 1)."""
    if patients < 1:
        raise ValueError("patient-level DP-SGD needs at least one patient with training images")
    return min(1.0, settings.patients_per_step / patients)


class PatientUpdates:
    """Patient-level DP-SGD steps over ``dataset`` (module docstring).

    Args:
        network: the model (its trainable parameters are updated).
        optimiser: the optimiser over them.
        dataset: the site's training images.
        settings: noise multiplier, clipping norm, patients per step, slices per patient.
        accountant: charged one step per :meth:`step`.
        noise_generator: source of the noise (default: OS entropy).
        sampler: source of the patient and slice draws (default: OS entropy); never the
            run's seed, which the server knows.
    """

    def __init__(
        self,
        network: nn.Module,
        optimiser: torch.optim.Optimizer,
        dataset: SliceDataset,
        settings: DPSGDSettings,
        accountant: SiteAccountant,
        noise_generator: torch.Generator | None = None,
        sampler: np.random.Generator | None = None,
    ) -> None:
        check_noise(settings)
        self.network = network
        self.optimiser = optimiser
        self.dataset = dataset
        self.settings = settings
        self.accountant = accountant
        self.patients = patient_groups(dataset)
        self.rate = patient_sample_rate(settings, len(self.patients))
        self.expected_batch = self.rate * len(self.patients)
        device = next(network.parameters()).device
        self.noise = noise_generator or secret_generator(device)
        self.sampler = sampler or np.random.default_rng(secrets.randbits(128))
        self.parameters = [p for p in network.parameters() if p.requires_grad]
        self.images = 0  # slices reconstructed so far (the trainer's "examples")
        self.last_batch = 0  # patients in the last step

    def step(
        self,
        loss_of: Callable[[SliceSample], torch.Tensor],
        reference_weights: Mapping[str, torch.Tensor] | None = None,
        proximal_mu: float = 0.0,
    ) -> bool:
        """One patient-level DP-SGD step; ``loss_of`` maps one (collated, batch 1) sample to
        its loss. Returns whether the update was applied (a non-finite noisy gradient is
        skipped; the step is charged either way)."""
        chosen = [
            group for group in self.patients if self.sampler.random() < self.rate
        ]  # Poisson: each patient independently
        total = [torch.zeros_like(p) for p in self.parameters]
        for group in chosen:
            contribution = self._patient_gradient(group, loss_of)
            for running, gradient in zip(total, contribution, strict=True):
                running.add_(gradient)
        self.last_batch = len(chosen)
        std = self.settings.noise_multiplier * self.settings.max_grad_norm
        with torch.no_grad():
            for parameter, running in zip(self.parameters, total, strict=True):
                noise = torch.normal(
                    0.0, std, size=running.shape, generator=self.noise, device=running.device
                )
                parameter.grad = (running + noise) / self.expected_batch
        self.accountant.step(self.settings.noise_multiplier, self.rate)
        if proximal_mu:
            if reference_weights is None:
                raise ValueError("proximal_mu > 0 needs the reference (global) weights")
            add_proximal_gradient(self.network, reference_weights, proximal_mu)
        if not all(torch.isfinite(p.grad).all() for p in self.parameters):
            return False
        self.optimiser.step()
        return True

    def _patient_gradient(
        self, group: Sequence[int], loss_of: Callable[[SliceSample], torch.Tensor]
    ) -> list[torch.Tensor]:
        """The patient's clipped gradient: its drawn slices' mean loss, clipped as a whole.
        A non-finite gradient contributes nothing (still at most the clipping norm)."""
        count = min(self.settings.slices_per_patient, len(group))
        items = self.sampler.choice(len(group), size=count, replace=False)
        self.optimiser.zero_grad(set_to_none=True)
        for index in items:
            sample = _batch_of_one(self.dataset[group[int(index)]])
            (loss_of(sample) / count).backward()
        self.images += count
        gradients = [
            p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            for p in self.parameters
        ]
        norm = math.sqrt(sum(float(g.double().pow(2).sum()) for g in gradients))
        if not math.isfinite(norm):
            return [torch.zeros_like(g) for g in gradients]
        scale = min(1.0, self.settings.max_grad_norm / (norm + 1e-12))
        return [g.mul_(scale) for g in gradients]

    def close(self) -> None:
        """Nothing hooked: only the gradients to clear."""
        self.optimiser.zero_grad(set_to_none=True)


def _batch_of_one(sample: SliceSample) -> SliceSample:
    """``sample`` as a collated batch of one, as a DataLoader would give it."""
    return torch.utils.data.default_collate([sample])
