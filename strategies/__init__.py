"""Aggregation strategies beyond Flower's own, built on ``flwr.serverapp.strategy``."""

from strategies.reducers import REDUCERS, reduce_arrays
from strategies.vendor_aware import (
    VendorAwareFedAdam,
    VendorAwareFedAvg,
    VendorAwareFedProx,
    VendorAwareFedYogi,
)
from strategies.vendor_weights import VENDOR_WEIGHTINGS, vendor_balanced_weights

__all__ = [
    "REDUCERS",
    "VENDOR_WEIGHTINGS",
    "VendorAwareFedAdam",
    "VendorAwareFedAvg",
    "VendorAwareFedProx",
    "VendorAwareFedYogi",
    "reduce_arrays",
    "vendor_balanced_weights",
]
