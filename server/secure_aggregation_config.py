"""Whether a run aggregates through SecAgg+, and what it refuses to combine with it.

Under SecAgg+ the server sees only the weighted sum of the sites' updates, so whatever needs
each site's update (robust reducers, per-vendor copies, update validation) cannot work.
"""

from __future__ import annotations

from omegaconf import DictConfig

from cardiomm.privacy import PrivacySettings
from server.settings import FederationSettings

ENABLED_KEY = "privacy.secure_aggregation.enabled"


def secure_aggregation_enabled(config: DictConfig) -> bool:
    """Whether the composed config asks for secure aggregation."""
    return PrivacySettings.read(config).secure_aggregation.enabled


def check_secure_aggregation_config(config: DictConfig) -> None:
    """Refuse, naming both settings and why, what cannot work when the server sees only a sum.

    The settings are read as the round loop reads them (FederationSettings), so keys a
    config lacks count as their defaults: ``federation.validation.enabled`` defaults to true,
    and under secure aggregation it must be set false explicitly.
    """
    if not secure_aggregation_enabled(config):
        return
    PrivacySettings.from_config(config)  # DP combinations (PrivacySettings.validate)
    settings = FederationSettings.from_config(config)
    secure = f"{ENABLED_KEY}=true"
    sum_only = "under SecAgg+ the server sees only the weighted sum of the sites' updates"
    reducer = settings.aggregation.reducer
    if reducer != "mean":
        raise ValueError(
            f"strategy.reducer={reducer} cannot work with {secure}: a {reducer} needs every "
            f"site's value per coordinate, and {sum_only}; use strategy.reducer=mean"
        )
    transport = settings.transport
    if transport.active:
        raise ValueError(
            f"federation.transport (precision={transport.precision}, trainable_only="
            f"{str(transport.trainable_only).lower()}) cannot work with {secure}: SecAgg+ "
            "quantises and masks the float32 weights itself and sums whole models; use "
            "federation.transport.precision=float32 and trainable_only=false"
        )
    personalised = list(settings.aggregation.personalised)
    if personalised:
        raise ValueError(
            f"strategy.personalised={personalised} (vendor-personalised parameters) cannot "
            f"work with {secure}: a per-vendor average needs each vendor's updates apart, and "
            f"{sum_only}; use strategy.personalised=[]"
        )
    if settings.validation.enabled:
        raise ValueError(
            f"federation.validation.enabled=true (the default) cannot work with {secure}: "
            f"update validation inspects each site's update, and {sum_only} (the sites check "
            "their own for NaN and shape); set federation.validation.enabled=false"
        )
    min_sites = settings.min_sites
    if min_sites < 2:
        raise ValueError(
            f"federation.min_sites={min_sites} cannot work with {secure}: SecAgg+ needs at "
            "least 2 sites a round (the sum of one site is its update); set "
            "federation.min_sites>=2 (3 or more: with 2, each site can work out the other's)"
        )
