"""Aggregation strategies beyond Flower's own, built on ``flwr.serverapp.strategy``."""

from strategies.vendor_balanced import VendorBalancedFedAvg
from strategies.vendor_weights import VENDOR_WEIGHTINGS, vendor_balanced_weights

__all__ = ["VENDOR_WEIGHTINGS", "VendorBalancedFedAvg", "vendor_balanced_weights"]
