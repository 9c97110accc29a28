"""No site counts for more than a set share of a round's examples.

FedAvg weights each site by the ``num-examples`` it reports, so a site that reports a huge
count (a lie, or a site far larger than the rest) sets the model alone. The counts of the
largest sites are lowered to a common level ``L`` chosen so that none holds more than
``max_share`` of the total (water-filling); sites below ``L`` keep their counts. The default
share is ``1 / vendors``: the most that vendor-balanced weighting would give one site.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from flwr.app import Message

from federation.protocol import METRICS, NUM_EXAMPLES, SiteRecord, vendor_of


def capped_counts(counts: Sequence[float], max_share: float) -> list[float]:
    """``counts`` with the largest lowered so that none exceeds ``max_share`` of the sum.

    Args:
        counts: positive example counts.
        max_share: in (0, 1]. Below ``1 / len(counts)`` no capping can reach it; the counts
            then all become the smallest (equal shares, the nearest possible).

    Example:
        ``capped_counts([100, 30, 20], 0.5)`` -> ``[50, 30, 20]``: the first site now holds
        exactly half; ``capped_counts([100, 90, 1], 1/3)`` -> ``[1, 1, 1]``.
    """
    total = float(sum(counts))
    if not counts or max(counts) <= max_share * total:
        return [float(count) for count in counts]
    ordered = sorted((float(count) for count in counts), reverse=True)
    level = ordered[-1]
    for capped in range(1, len(ordered)):
        if 1.0 - max_share * capped <= 0.0:
            break
        rest = sum(ordered[capped:])
        candidate = max_share * rest / (1.0 - max_share * capped)
        if ordered[capped] <= candidate <= ordered[capped - 1]:
            level = candidate
            break
    return [min(float(count), level) for count in counts]


def cap_example_shares(replies: Sequence[Message], max_share: float | None) -> list[dict[str, Any]]:
    """Lower, in the replies themselves, the ``num-examples`` of sites above the share.

    Args:
        replies: the round's admitted train replies.
        max_share: the most one site may count for; None: 1 / the number of vendors.

    Returns:
        One entry per capped site: site, node id, reported and counted examples.
    """
    if len(replies) < 2:
        return []
    if max_share is None:
        max_share = 1.0 / len({vendor_of(reply.content) for reply in replies})
    reported = [float(reply.content[METRICS][NUM_EXAMPLES]) for reply in replies]
    counted = capped_counts(reported, max_share)
    capped = []
    for reply, before, after in zip(replies, reported, counted, strict=True):
        if after == before:
            continue
        reply.content[METRICS][NUM_EXAMPLES] = after
        node = int(reply.metadata.src_node_id)
        capped.append(
            {
                "site": SiteRecord.of(reply.content, node).site_id,
                "node-id": node,
                "reported": before,
                "counted": after,
            }
        )
    return capped
