"""Privacy of a federated run: DP-SGD at the sites, central DP and secure aggregation."""

from cardiomm.privacy.settings import (
    CentralDPSettings,
    DPSGDSettings,
    PrivacySettings,
    SecureAggregationSettings,
)

__all__ = ["CentralDPSettings", "DPSGDSettings", "PrivacySettings", "SecureAggregationSettings"]
