"""The ``privacy`` block of a federated run's config (configs/privacy/*.yaml), typed and
checked; every default is the schema's (cardiomm/privacy/schema.py).

Both the ServerApp and the ClientApp read it, so both sides agree on what is in force.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

from cardiomm.config import config_section
from cardiomm.privacy.schema import (
    CentralDPConfig,
    DPSGDConfig,
    PrivacyConfig,
    SecureAggregationConfig,
)

CLIPPING_MODES = ("fixed", "adaptive")
PRIVACY_UNITS = ("slice", "patient")
CLIPPING_SIDES = ("server", "client")


@dataclasses.dataclass(frozen=True)
class DPSGDSettings:
    """DP-SGD at each site: per slice (Opacus) or per patient (cardiomm/privacy/patient_dp.py).

    Attributes:
        enabled: train every site with DP-SGD.
        unit: what the guarantee protects: ``slice`` (one image; Opacus' per-sample
            clipping over batches of ``train.batch_size``) or ``patient`` (all of one
            patient's images; Poisson-sampled patients, one clipped gradient each).
        patients_per_step: ``patient`` unit: the expected patients per step (the sampling
            rate is this over the site's patients).
        slices_per_patient: ``patient`` unit: images of a sampled patient whose mean loss
            gives its gradient.
        target_epsilon: when set, the site calibrates ``noise_multiplier`` so that the
            run's planned steps (rounds x local steps at its sampling rate) spend exactly
            this epsilon, and never spends more (it becomes the budget when none is set).
        noise_multiplier: std of the Gaussian noise over the clipping norm.
        max_grad_norm: per-sample gradient clipping norm.
        delta: the delta of the (epsilon, delta) guarantee each site reports.
        epsilon_budget: a site stops training once its cumulative epsilon over the run would
            exceed this (None: no budget).
    """

    enabled: bool = DPSGDConfig.enabled
    noise_multiplier: float = DPSGDConfig.noise_multiplier
    max_grad_norm: float = DPSGDConfig.max_grad_norm
    delta: float = DPSGDConfig.delta
    epsilon_budget: float | None = DPSGDConfig.epsilon_budget
    unit: str = DPSGDConfig.unit
    patients_per_step: float = DPSGDConfig.patients_per_step
    slices_per_patient: int = DPSGDConfig.slices_per_patient
    target_epsilon: float | None = DPSGDConfig.target_epsilon

    def validate(self) -> None:
        if not self.enabled:
            return
        _require_finite(self, "privacy.dp_sgd")
        if self.unit not in PRIVACY_UNITS:
            raise ValueError(
                f"privacy.dp_sgd.unit must be one of {', '.join(PRIVACY_UNITS)}, got {self.unit!r}"
            )
        if self.target_epsilon is not None and self.target_epsilon <= 0:
            raise ValueError(
                f"privacy.dp_sgd.target_epsilon must be > 0 or null, got {self.target_epsilon}"
            )
        if self.patients_per_step <= 0 or self.slices_per_patient < 1:
            raise ValueError(
                "privacy.dp_sgd needs patients_per_step > 0 and slices_per_patient >= 1, got "
                f"{self.patients_per_step} and {self.slices_per_patient}"
            )
        if self.noise_multiplier <= 0:
            raise ValueError(
                f"privacy.dp_sgd.noise_multiplier must be > 0, got {self.noise_multiplier}"
            )
        if self.max_grad_norm <= 0:
            raise ValueError(f"privacy.dp_sgd.max_grad_norm must be > 0, got {self.max_grad_norm}")
        if not 0 < self.delta < 1:
            raise ValueError(f"privacy.dp_sgd.delta must be in (0, 1), got {self.delta}")
        if self.epsilon_budget is not None and self.epsilon_budget <= 0:
            raise ValueError(
                f"privacy.dp_sgd.epsilon_budget must be > 0 or null, got {self.epsilon_budget}"
            )


@dataclasses.dataclass(frozen=True)
class CentralDPSettings:
    """Site-level DP through Flower's DifferentialPrivacy{Server,Client}Side*Clipping.

    Attributes:
        enabled: wrap the strategy.
        clipping: ``fixed`` or ``adaptive`` clipping of each site's update.
        side: ``server`` (the server clips) or ``client`` (the sites clip; needs the
            ClientApp's clipping mod).
        noise_multiplier: std of the noise added to the aggregate over the clipping norm.
        clipping_norm: the fixed clipping norm (the starting value when adaptive).
        num_sampled_sites: sites sampled per round (None: ``federation.min_sites``).
        delta: the delta Flower's accountant reports epsilon for.
    """

    enabled: bool = CentralDPConfig.enabled
    clipping: str = CentralDPConfig.clipping
    side: str = CentralDPConfig.side
    noise_multiplier: float = CentralDPConfig.noise_multiplier
    clipping_norm: float = CentralDPConfig.clipping_norm
    num_sampled_sites: int | None = CentralDPConfig.num_sampled_sites
    delta: float = CentralDPConfig.delta

    def validate(self) -> None:
        if not self.enabled:
            return
        _require_finite(self, "privacy.central_dp")
        if self.clipping not in CLIPPING_MODES:
            raise ValueError(
                f"privacy.central_dp.clipping must be one of {', '.join(CLIPPING_MODES)}, "
                f"got {self.clipping!r}"
            )
        if self.side not in CLIPPING_SIDES:
            raise ValueError(
                f"privacy.central_dp.side must be one of {', '.join(CLIPPING_SIDES)}, "
                f"got {self.side!r}"
            )
        if self.noise_multiplier < 0 or self.clipping_norm <= 0:
            raise ValueError(
                "privacy.central_dp needs noise_multiplier >= 0 and clipping_norm > 0, got "
                f"{self.noise_multiplier} and {self.clipping_norm}"
            )
        if self.num_sampled_sites is not None and self.num_sampled_sites < 1:
            raise ValueError(
                f"privacy.central_dp.num_sampled_sites must be >= 1, got {self.num_sampled_sites}"
            )


@dataclasses.dataclass(frozen=True)
class SecureAggregationSettings:
    """Flower's SecAgg+ protocol (the server only learns the sum of the sites' updates).

    Attributes:
        enabled: aggregate through SecAgg+.
        num_shares: shares each site's secrets are split into.
        reconstruction_threshold: shares needed to reconstruct a secret.
        clipping_range: update values are clipped to [-range, range] before quantisation.
        quantization_range: quantisation levels over the clipping range.
    """

    enabled: bool = SecureAggregationConfig.enabled
    num_shares: int = SecureAggregationConfig.num_shares
    reconstruction_threshold: int = SecureAggregationConfig.reconstruction_threshold
    clipping_range: float = SecureAggregationConfig.clipping_range
    quantization_range: int = SecureAggregationConfig.quantization_range

    def validate(self) -> None:
        if not self.enabled:
            return
        _require_finite(self, "privacy.secure_aggregation")
        if self.reconstruction_threshold < 2 or self.num_shares <= self.reconstruction_threshold:
            raise ValueError(
                "privacy.secure_aggregation needs 2 <= reconstruction_threshold < num_shares, "
                f"got {self.reconstruction_threshold} and {self.num_shares}"
            )
        if self.clipping_range <= 0 or self.quantization_range < 2:
            raise ValueError(
                "privacy.secure_aggregation needs clipping_range > 0 and quantization_range "
                f">= 2, got {self.clipping_range} and {self.quantization_range}"
            )


@dataclasses.dataclass(frozen=True)
class PrivacySettings:
    """The three privacy mechanisms, each on or off, and the site's policy file (None: no
    policy)."""

    dp_sgd: DPSGDSettings = dataclasses.field(default_factory=DPSGDSettings)
    central_dp: CentralDPSettings = dataclasses.field(default_factory=CentralDPSettings)
    secure_aggregation: SecureAggregationSettings = dataclasses.field(
        default_factory=SecureAggregationSettings
    )
    policy: str | None = PrivacyConfig.policy

    @classmethod
    def from_config(cls, config: Any) -> PrivacySettings:
        """Read ``config.privacy`` of a composed config (absent: the schema's defaults,
        everything off), with clear errors."""
        settings = cls.read(config)
        settings.validate()
        return settings

    @classmethod
    def read(cls, config: Any) -> PrivacySettings:
        """``config.privacy`` as typed settings, unchecked: for a reader that only asks what is
        on (absent: the schema's defaults, everything off). Unknown keys are still refused."""
        values = config_section(config, "privacy")
        return cls(
            dp_sgd=_build(DPSGDSettings, values.get("dp_sgd"), "privacy.dp_sgd"),
            central_dp=_build(CentralDPSettings, values.get("central_dp"), "privacy.central_dp"),
            secure_aggregation=_build(
                SecureAggregationSettings,
                values.get("secure_aggregation"),
                "privacy.secure_aggregation",
            ),
            policy=str(values["policy"]) if values.get("policy") else None,
        )

    def validate(self) -> None:
        """Raise ValueError for values or combinations that cannot work."""
        self.dp_sgd.validate()
        self.central_dp.validate()
        self.secure_aggregation.validate()
        if self.central_dp.enabled and self.secure_aggregation.enabled:
            if self.central_dp.side == "server":
                raise ValueError(
                    "privacy.central_dp.side=server clips each site's update on the server, "
                    "which privacy.secure_aggregation.enabled=true hides from it; turn one off"
                )
            # Flower's client-side wrapper needs equal site weights and the sites' clipping
            # mod; the SecAgg+ path (server/secure_rounds.py) provides neither yet.
            raise ValueError(
                "privacy.central_dp.side=client is not supported with "
                "privacy.secure_aggregation.enabled=true: the SecAgg+ path does not clip the "
                "sites' updates nor keep their weights equal, as Flower's client-side central "
                "DP needs; turn one off (privacy.dp_sgd combines with secure aggregation)"
            )

    @property
    def label(self) -> str:
        """Short description for logs and reports, e.g. ``dp-sgd+secagg`` or ``none``."""
        parts = [
            name
            for name, on in (
                ("dp-sgd", self.dp_sgd.enabled),
                (f"central-dp-{self.central_dp.side}", self.central_dp.enabled),
                ("secagg", self.secure_aggregation.enabled),
            )
            if on
        ]
        return "+".join(parts) or "none"


def _require_finite(settings: Any, where: str) -> None:
    """Refuse (ValueError naming the key) a numeric setting that is NaN, infinite or not a
    number: every range check below compares, and NaN passes every comparison (a NaN noise
    multiplier would reach the accountant, whose series never ends on it)."""
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        if field.name == "enabled" or value is None or isinstance(value, str):
            continue
        if (
            isinstance(value, bool)
            or not isinstance(value, numbers.Real)
            or not math.isfinite(value)
        ):
            raise ValueError(f"{where}.{field.name} must be a finite number, got {value!r}")


def _build(kind: type, values: dict[str, Any] | None, where: str) -> Any:
    values = dict(values or {})
    known = {field.name for field in dataclasses.fields(kind)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"unknown key(s) in {where}: {', '.join(unknown)}")
    return kind(**values)
