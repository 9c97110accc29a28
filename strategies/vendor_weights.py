"""Two-level aggregation weights: by examples within a vendor, by a chosen rule across vendors.

Plain FedAvg weights each site by its examples, so a vendor with most of a consortium's data
sets the model for everyone. Here each vendor first gets a share of the total weight, and
its sites split that share in proportion to their examples.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

# How the vendors' shares are set: equal, proportional to sqrt(examples), or to examples
# (the last is plain FedAvg).
VENDOR_WEIGHTINGS = ("equal", "sqrt", "examples")


def vendor_balanced_weights(
    vendors: Sequence[str], examples: Sequence[float], weighting: str = "equal"
) -> list[float]:
    """Aggregation weight of each site, summing to 1.

    Args:
        vendors: each site's vendor.
        examples: each site's examples (slices) this round; all >= 0, some > 0.
        weighting: ``equal``, ``sqrt`` or ``examples`` across vendors.

    Example:
        Three sites of vendor A with 100 slices each and one of vendor B with 10: under
        ``equal`` B gets 0.5 and each A site 1/6; under ``examples`` (FedAvg) B gets 10/310.
    """
    if weighting not in VENDOR_WEIGHTINGS:
        raise ValueError(
            f"vendor weighting must be one of {', '.join(VENDOR_WEIGHTINGS)}, got {weighting!r}"
        )
    if len(vendors) != len(examples):
        raise ValueError(f"{len(vendors)} vendors but {len(examples)} example counts")
    if any(count < 0 for count in examples) or not any(count > 0 for count in examples):
        raise ValueError(f"example counts must be >= 0 with at least one > 0, got {examples}")
    per_vendor: dict[str, float] = defaultdict(float)
    for vendor, count in zip(vendors, examples, strict=True):
        per_vendor[vendor] += count
    # A vendor whose sites trained on nothing this round gets no share.
    active = {vendor: total for vendor, total in per_vendor.items() if total > 0}
    if weighting == "equal":
        share = {vendor: 1.0 for vendor in active}
    elif weighting == "sqrt":
        share = {vendor: math.sqrt(total) for vendor, total in active.items()}
    else:
        share = dict(active)
    norm = sum(share.values())
    return [
        share[vendor] / norm * count / active[vendor] if vendor in active else 0.0
        for vendor, count in zip(vendors, examples, strict=True)
    ]
