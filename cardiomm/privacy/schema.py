"""The typed schema of a run's ``privacy`` block: every default of configs/privacy/, stated
here once.

The dataclasses are Hydra structured configs: cardiomm/config.py stores :class:`PrivacyConfig`
as ``privacy/schema`` in Hydra's ConfigStore before it composes, configs/privacy/none.yaml
starts from it (``defaults: [schema, _self_]``) and the other presets switch one mechanism
on, so a preset that restates a default here is refused by tests/federation/test_schema.py.
Hydra checks the types when it composes (``privacy.dp_sgd.delta=abc`` is refused with the
key's name); cardiomm/privacy/settings.py checks the values and the combinations, and its
settings classes take their defaults from these.
"""

from __future__ import annotations

import dataclasses
from typing import Optional

# ConfigStore name and group, as configs/privacy/none.yaml selects them.
PRIVACY_GROUP = "privacy"
PRIVACY_SCHEMA = "schema"

# OmegaConf reads these annotations at runtime: typing's Optional, not ``X | None``.
# ruff: noqa: UP045


@dataclasses.dataclass
class DPSGDConfig:
    """``privacy.dp_sgd``: sample-level DP-SGD at every site (Opacus; cardiomm/privacy/
    patient_dp.py for the patient unit)."""

    enabled: bool = False
    noise_multiplier: float = 1.0  # Gaussian noise std / clipping norm (more: less epsilon)
    max_grad_norm: float = 1.0  # per-slice gradient clipping norm (replaces train.gradient_clip)
    delta: float = 1e-5  # keep it well below 1 / (training slices of a site)
    # A site stops training once one more step would pass it (null: never).
    epsilon_budget: Optional[float] = None
    # Set: the site calibrates the noise so the run spends this epsilon.
    target_epsilon: Optional[float] = None
    unit: str = "slice"  # slice (one image) | patient (all of a patient's images)
    patients_per_step: float = 4.0  # patient unit: expected patients per step (Poisson)
    slices_per_patient: int = 1  # patient unit: images per sampled patient (one gradient)


@dataclasses.dataclass
class CentralDPConfig:
    """``privacy.central_dp``: site-level DP through Flower's DifferentialPrivacy* wrappers."""

    enabled: bool = False
    clipping: str = "fixed"  # fixed | adaptive
    side: str = "server"  # server: the server clips each update; client: the sites do
    noise_multiplier: float = 1.0
    clipping_norm: float = 10.0  # fixed clipping; the adaptive start value
    num_sampled_sites: Optional[int] = None  # null: federation.min_sites
    delta: float = 1e-5


@dataclasses.dataclass
class SecureAggregationConfig:
    """``privacy.secure_aggregation``: Flower SecAgg+ (the server only sees the sum)."""

    enabled: bool = False
    num_shares: int = 3  # shares of each site's secret (>= 3; all sites when larger)
    reconstruction_threshold: int = 2  # shares needed to reconstruct (< num_shares)
    clipping_range: float = 8.0  # update values are clipped to +-this before quantisation
    quantization_range: int = 4194304  # 2**22 levels over the clipping range


@dataclasses.dataclass
class PrivacyConfig:
    """``privacy``: the three mechanisms, each off by default, and the site's policy file."""

    dp_sgd: DPSGDConfig = dataclasses.field(default_factory=DPSGDConfig)
    # A site's own privacy policy file (cardiomm/privacy/policy.py): caps per run and in
    # total, delta, minimum noise, allowed and required mechanisms, the ledger of spent
    # budget. Set in the site's file only; a coordinator cannot (client/site_config.py).
    policy: Optional[str] = None
    central_dp: CentralDPConfig = dataclasses.field(default_factory=CentralDPConfig)
    secure_aggregation: SecureAggregationConfig = dataclasses.field(
        default_factory=SecureAggregationConfig
    )
